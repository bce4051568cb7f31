"""Shared bits of the synthetic-preference generators: the result type, provenance, drop counting, cost.

Conventions every generator follows:
- one entry point ``run_<method>(...) -> GeneratorResult``;
- rows are built with ``schemas.records`` builders (``pairs``: pairwise rows, ``listwise``: listwise rows,
  ``sft``: *binary rows with ``label=True``* — a kept (prompt, completion) to fine-tune on — with
  ``policy="<method>:sft"`` so they never mix with KTO feedback by accident);
- every dropped item is a row: ``res.drop(reason)`` adds a ``Reject`` (step ``<method>``) with a
  snake_case reason; nothing disappears silently. The unit is the item at that stage (a candidate
  response, a prompt, a pair), named by the reason's prefix where it is ambiguous;
- a scored item the method decided not to keep carries its diagnostic (a plain dict, never exported)
  on its drop: ``res.drop(reason, diagnostic=d)`` (step ``diagnostic:<method>``, the dict as ``raw``);
- a malformed model output degrades one item (a counted drop), never the batch.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.errors import PrefmillError
from schemas.step import Reject

GENERATOR_VERSION = "1"
DIAGNOSTIC = "diagnostic:"  # step prefix of a drop that carries a diagnostic


class GeneratorError(PrefmillError, ValueError):
    """Input a generator cannot start from (no prompts, no seeds, bad config): a clear message, no traceback."""


@dataclass
class GeneratorResult:
    """Rows by kind (``pairs`` → pairwise, ``listwise``, ``sft`` → binary) and one ``Reject`` per drop."""

    method: str = ""
    pairs: list[dict] = field(default_factory=list)
    listwise: list[dict] = field(default_factory=list)
    sft: list[dict] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    def drop(self, reason: str, n: int = 1, *, diagnostic: dict | None = None) -> None:
        """``n`` items dropped for ``reason``; a diagnostic explains one drop (so ``n`` must be 1)."""
        if diagnostic is not None:
            if n != 1:
                raise ValueError("a diagnostic explains exactly one drop")
            self.rejects.append(Reject(f"{DIAGNOSTIC}{self.method}", reason, "", raw=diagnostic))
            return
        self.rejects.extend(Reject(self.method, reason, "") for _ in range(max(0, n)))

    def drop_counts(self, counts: Mapping[str, int]) -> None:
        for reason, n in counts.items():
            self.drop(reason, n)

    @property
    def dropped(self) -> Counter:
        """Drops per reason."""
        return Counter(r.reason for r in self.rejects)

    @property
    def diagnostics(self) -> list[dict]:
        """The diagnostics, in the order of their drops."""
        return [r.raw for r in self.rejects if r.step.startswith(DIAGNOSTIC)]


def template_id(name: str, text: str) -> str:
    """Same shape as the judges/templates registry ids: ``<name>@<sha8>`` of the template text."""
    return f"{name}@{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def as_messages(prompt: Any) -> list[dict]:
    """A prompt given as text or as a message list → a message list (user turn for plain text)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, dict) and "content" in prompt:
        return [{"role": prompt.get("role", "user"), "content": prompt["content"]}]
    if isinstance(prompt, (list, tuple)) and all(
        isinstance(m, dict) and "role" in m and "content" in m for m in prompt
    ):
        return [{"role": m["role"], "content": m["content"]} for m in prompt]
    raise GeneratorError(f"a prompt must be text or a list of {{role, content}} messages, got {type(prompt).__name__}")


def prompt_text(messages: Sequence[dict]) -> str:
    """The query a judge sees: the conversation's turns, role-tagged when there is more than one."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def require_items(items: Iterable | None, what: str, method: str) -> list:
    got = list(items or [])
    if not got:
        raise GeneratorError(f"{method}: no {what} given — pass at least one")
    return got


def model_name(engine: Any) -> str | None:
    if engine is None:
        return None
    name = getattr(engine, "model", None) or type(engine).__name__
    rev = getattr(engine, "revision", "") or ""
    return f"{name}@{rev}" if rev else str(name)


def same_model(a: Any, b: Any) -> bool:
    return a is b or (a is not None and b is not None and model_name(a) == model_name(b))


def provenance(
    method: str,
    *,
    round: int | None = None,
    models: dict[str, Any] | None = None,
    template_ids: dict[str, str] | None = None,
    sampling: dict[str, Any] | None = None,
    **extra: Any,
) -> dict:
    """The ``meta.provenance`` block every generated row carries (what made it, with which prompts)."""
    prov: dict[str, Any] = {
        "method": method,
        "generator_version": GENERATOR_VERSION,
        "models": {k: (v if isinstance(v, str) or v is None else model_name(v)) for k, v in (models or {}).items()},
        "template_ids": dict(template_ids or {}),
        "sampling": dict(sampling or {}),
    }
    if round is not None:
        prov["round"] = round
    prov.update(extra)
    return prov


def stable_seed(*parts: Any) -> int:
    """A seed derived from content, so shuffles and choices do not depend on batch order."""
    return int.from_bytes(hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest(), "big")


def rng_for(*parts: Any) -> random.Random:
    return random.Random(stable_seed(*parts))


_COST_KEYS = ("requests", "cache_hits", "failures", "prompt_tokens", "completion_tokens", "busy_seconds")


class CostMeter:
    """Engine-stat deltas over one generator run → cost per kept pair.

    Engines that share one object (judge = policy) are counted once. ``busy_seconds`` is the engine's
    wall time with a request in flight, the GPU-seconds proxy of judges/types.EngineStats.
    """

    def __init__(self, engines: dict[str, Any]):
        self._engines: dict[str, Any] = {}
        self._start: dict[str, dict[str, float]] = {}
        for role, eng in engines.items():
            self.add(role, eng)

    def add(self, role: str, engine: Any) -> None:
        """Start metering one more engine (e.g. a new policy checkpoint served for a later round)."""
        if engine is None or getattr(engine, "stats", None) is None:
            return
        if any(e is engine for e in self._engines.values()):
            return
        self._engines[role] = engine
        self._start[role] = self._snap(engine)

    @staticmethod
    def _snap(engine: Any) -> dict[str, float]:
        st = engine.stats
        d = st.as_dict() if hasattr(st, "as_dict") else dict(vars(st))
        return {k: float(d.get(k) or 0) for k in _COST_KEYS}

    def finish(self, kept: int) -> dict:
        per_engine = {}
        total = dict.fromkeys(_COST_KEYS, 0.0)
        for role, eng in self._engines.items():
            now = self._snap(eng)
            delta = {k: now[k] - self._start[role][k] for k in _COST_KEYS}
            per_engine[role] = delta
            for k in _COST_KEYS:
                total[k] += delta[k]
        tokens = total["prompt_tokens"] + total["completion_tokens"]
        return {
            "engines": per_engine,
            "total": total,
            "kept": kept,
            "tokens_per_kept": tokens / kept if kept else None,
            "busy_seconds_per_kept": total["busy_seconds"] / kept if kept else None,
        }
