"""Anthropic HH-RLHF: ``{chosen, rejected}`` whole dialogues as ``\\n\\nHuman: …\\n\\nAssistant: …`` strings.

Both strings repeat the shared context and differ in the final Assistant turn. The prompt is the
dialogue before the last ``\\n\\nAssistant:`` marker; chosen/rejected are that final turn.

This is the benchmark path, so parsing is plain ``str.rfind``/``str.split`` (no regex) and the
shared prefix is parsed once. Only markers preceded by a blank line count; an inline
``Human:`` inside a reply (models sometimes hallucinate turns) stays text.

Rejections: ``missing_field``/``wrong_type``, ``bad_dialogue`` (text before the first marker),
``no_assistant_turn``, ``prompt_mismatch`` (the two dialogues differ before the final turn — in the
harmless-base test split that is a reply that rambles on with invented turns), ``role_order``
(the final turn does not answer a Human turn), ``empty_text``. chosen == rejected is built
anyway so validation rejects it as ``chosen_equals_rejected``. Two Assistant markers in a row inside
the context (a reply that ran on; 4 dialogues in harmless-base test) are kept as two turns, not
merged: the adapter stays faithful and validation's alternation rule decides.

``adapt_columns`` is the ingest fast path (schemas.ingest.adapt_records prefers it): the same parse
and the same row as ``adapt``, appended to a chunk's ``schemas.records.Columns`` instead of built as
a dict.
"""

from __future__ import annotations

from typing import Any

from schemas.adapters.base import AdaptError
from schemas.adapters.common import ASSISTANT, USER, leftover
from schemas.ids import normalise_text
from schemas.records import Columns, pairwise

HUMAN = "\n\nHuman:"
ASSIST = "\n\nAssistant:"
_ALEN = len(ASSIST)
_USED = ("chosen", "rejected")


def _split_final(obj: dict, key: str) -> tuple[str, int, str]:
    """(dialogue, index of its last Assistant marker, final Assistant turn) of one dialogue field."""
    value = obj.get(key)
    if value is None:
        raise AdaptError("missing_field", f"field {key!r} is missing")
    if not isinstance(value, str):
        raise AdaptError("wrong_type", f"field {key!r} is a {type(value).__name__}, expected str")
    if value.startswith("Human:"):  # some exports drop the blank line before the first turn
        value = "\n\n" + value
    i = value.rfind(ASSIST)
    if i < 0:
        raise AdaptError("no_assistant_turn", f"{key} has no '\\n\\nAssistant:' turn")
    final = value[i + _ALEN :]
    if HUMAN in final:
        raise AdaptError("role_order", f"{key} ends with a Human turn after its last Assistant turn")
    return value, i, final


def _parse_pairs(context: str) -> list[tuple[str, str]]:
    """Turns of the dialogue before the final Assistant marker as ``(role, text)`` pairs, checked:
    nothing before the first Human marker, no blank turn, the last turn is the Human's."""
    parts = context.split(HUMAN)
    head = parts[0]
    if head and not head.isspace():
        raise AdaptError("bad_dialogue", "text before the first '\\n\\nHuman:' marker")
    turns: list[tuple[str, str]] = []
    append = turns.append
    for part in parts[1:]:
        if ASSIST in part:
            pieces = part.split(ASSIST)
            part = pieces[0]
            append((USER, part))
            for reply in pieces[1:]:
                if not reply or reply.isspace():
                    raise AdaptError("empty_text", "an empty assistant turn in the prompt")
                append((ASSISTANT, reply))
        else:
            append((USER, part))
        if not part or part.isspace():
            raise AdaptError("empty_text", "an empty user turn in the prompt")
    if not turns or turns[-1][0] != USER:
        raise AdaptError("role_order", "the final Assistant turn does not follow a Human turn")
    return turns


def parse_turns(context: str) -> list[dict]:
    """Turns of the dialogue before the final Assistant marker (roles user/assistant), checked:
    nothing before the first Human marker, no blank turn, the last turn is the Human's."""
    return [{"role": role, "content": text} for role, text in _parse_pairs(context)]


def _blank(text: str) -> bool:
    return not text or text.isspace()  # no copy, unlike strip()


class HHRLHFAdapter:
    name = "hh-rlhf"

    def __init__(self, origin: str = "human"):
        self.origin = origin

    def _parse(self, obj: Any) -> tuple[list[tuple[str, str]], str, str, dict | None]:
        """(prompt turns, final chosen text, final rejected text, meta) or AdaptError."""
        if not isinstance(obj, dict):
            raise AdaptError("wrong_type", f"record is a {type(obj).__name__}, expected an object")
        chosen, ci, c_final = _split_final(obj, "chosen")
        rejected, ri, r_final = _split_final(obj, "rejected")
        c_ctx = chosen[:ci]
        # Same context: compared in place, without copying the rejected one (the common case).
        if not (ci == ri and rejected.startswith(c_ctx)) and not _same_after_normalising(c_ctx, rejected[:ri]):
            raise AdaptError("prompt_mismatch", "chosen and rejected differ before their final Assistant turn")
        prompt = _parse_pairs(c_ctx)
        if _blank(c_final):
            raise AdaptError("empty_text", "the final chosen Assistant turn is empty")
        if _blank(r_final):
            raise AdaptError("empty_text", "the final rejected Assistant turn is empty")
        meta = leftover(obj, _USED) if len(obj) > 2 else None
        return prompt, c_final, r_final, meta

    def adapt(self, obj: Any) -> list:
        prompt, c_final, r_final, meta = self._parse(obj)
        row = pairwise(
            [{"role": role, "content": text} for role, text in prompt],
            [{"role": ASSISTANT, "content": c_final}],
            [{"role": ASSISTANT, "content": r_final}],
            origin=self.origin,
            meta=meta,
        )
        return [("pairwise", row)]

    def adapt_columns(self, obj: Any, columns: Columns, source_row: int) -> int:
        """The ingest fast path: the same row as ``adapt`` appended to ``columns`` (no dicts); returns 1."""
        prompt, c_final, r_final, meta = self._parse(obj)
        columns.pairwise.add(
            prompt, ((ASSISTANT, c_final),), ((ASSISTANT, r_final),), source_row, origin=self.origin, meta=meta
        )
        return 1


def _same_after_normalising(a: str, b: str) -> bool:
    """Contexts that differ only in whitespace around turns are the same prompt once normalised."""
    try:
        ta, tb = _parse_pairs(a), _parse_pairs(b)
    except AdaptError:
        return False
    return len(ta) == len(tb) and all(
        x[0] == y[0] and normalise_text(x[1]) == normalise_text(y[1]) for x, y in zip(ta, tb)
    )
