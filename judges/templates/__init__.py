"""Versioned judge prompt templates.

A template is identified by ``"<name>@<sha8>"`` where sha8 hashes everything that shapes the
prompt (name, version, system, user, item), so any wording change gets a new id and every stored
judgment says exactly which prompt produced it.

Layout rules the built-in templates follow:
- the fixed instructions come first (system message, then the start of the user message), so
  vLLM's prefix cache reuses them across every item of a run;
- untrusted text (prompts, responses, candidates) goes inside fixed fenced blocks
  ``<<<BEGIN X>>> ... <<<END X>>>``; the delimiters are constant (no random nonce, which would
  defeat the prefix cache and the request cache) and ``fence`` neutralises any ``<<<``/``>>>``
  inside the text so it cannot close its block early.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


_RUN = re.compile(r"<{3,}|>{3,}")


def fence(text: str) -> str:
    """Make untrusted text safe inside a ``<<<BEGIN ..>>>``/``<<<END ..>>>`` block: runs of three
    or more ``<``/``>`` get zero-width spaces between their characters, so no delimiter can appear
    (``<<`` as in code stays untouched; blocks start and end on their own line)."""
    return _RUN.sub(lambda m: "\u200b".join(m.group(0)), str(text))


def _fill(tmpl: str, values: dict[str, str]) -> str:
    # One pass over the template only: values are never re-scanned, so text containing
    # "{{x}}" cannot pull in another field.
    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key not in values:
            raise KeyError(f"template field {key!r} not given")
        return values[key]

    return _PLACEHOLDER.sub(sub, tmpl)


@dataclass(frozen=True)
class Template:
    name: str
    version: int
    system: str
    user: str
    # Sub-template for list fields (e.g. ranking candidates); gets {{index}} and {{text}}.
    item: str = ""
    # Fields inserted verbatim (numbers we produce ourselves); all others are fenced.
    trusted: frozenset[str] = field(default_factory=frozenset)

    @property
    def sha(self) -> str:
        payload = "\x00".join([self.name, str(self.version), self.system, self.user, self.item])
        return hashlib.sha256(payload.encode()).hexdigest()[:8]

    @property
    def id(self) -> str:
        return f"{self.name}@{self.sha}"

    @property
    def fields(self) -> set[str]:
        return set(_PLACEHOLDER.findall(self.system + self.user))

    def render(self, **fields: object) -> list[dict]:
        """Chat messages with every field filled in; list values use ``item`` per element."""
        values: dict[str, str] = {}
        for key, val in fields.items():
            if isinstance(val, (list, tuple)):
                values[key] = "\n".join(
                    _fill(self.item, {"index": str(i), "text": fence(v)}) for i, v in enumerate(val, 1)
                )
            elif key in self.trusted:
                values[key] = str(val)
            else:
                values[key] = fence(str(val))
        msgs = []
        if self.system:
            msgs.append({"role": "system", "content": _fill(self.system, values)})
        msgs.append({"role": "user", "content": _fill(self.user, values)})
        return msgs


REGISTRY: dict[str, Template] = {}


def register(t: Template) -> Template:
    REGISTRY[t.name] = t
    REGISTRY[t.id] = t
    return t


def get(name_or_id: str) -> Template:
    """Look a template up by plain name (the current version) or by its full id."""
    try:
        return REGISTRY[name_or_id]
    except KeyError:
        raise KeyError(
            f"unknown template {name_or_id!r}; known: {sorted(k for k in REGISTRY if '@' not in k)}"
        ) from None


from judges.templates import builtin  # noqa: E402  (registers the built-in templates)

PAIRWISE: Template = builtin.PAIRWISE

__all__ = ["Template", "fence", "register", "get", "REGISTRY", "PAIRWISE"]
