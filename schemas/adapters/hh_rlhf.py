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
"""
from __future__ import annotations

from typing import Any

from schemas.adapters.base import AdaptError
from schemas.adapters.common import ASSISTANT, USER, leftover
from schemas.ids import normalise_text
from schemas.records import pairwise

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
    final = value[i + _ALEN:]
    if HUMAN in final:
        raise AdaptError("role_order", f"{key} ends with a Human turn after its last Assistant turn")
    return value, i, final


def parse_turns(context: str) -> list[dict]:
    """Turns of the dialogue before the final Assistant marker (roles user/assistant), checked:
    nothing before the first Human marker, no blank turn, the last turn is the Human's."""
    parts = context.split(HUMAN)
    head = parts[0]
    if head and not head.isspace():
        raise AdaptError("bad_dialogue", "text before the first '\\n\\nHuman:' marker")
    messages: list[dict] = []
    append = messages.append
    for part in parts[1:]:
        if ASSIST in part:
            pieces = part.split(ASSIST)
            part = pieces[0]
            append({"role": USER, "content": part})
            for reply in pieces[1:]:
                if not reply or reply.isspace():
                    raise AdaptError("empty_text", "an empty assistant turn in the prompt")
                append({"role": ASSISTANT, "content": reply})
        else:
            append({"role": USER, "content": part})
        if not part or part.isspace():
            raise AdaptError("empty_text", "an empty user turn in the prompt")
    if not messages or messages[-1]["role"] != USER:
        raise AdaptError("role_order", "the final Assistant turn does not follow a Human turn")
    return messages


def _blank(text: str) -> bool:
    return not text or text.isspace()  # no copy, unlike strip()


class HHRLHFAdapter:
    name = "hh-rlhf"

    def __init__(self, origin: str = "human"):
        self.origin = origin

    def adapt(self, obj: Any) -> list:
        if not isinstance(obj, dict):
            raise AdaptError("wrong_type", f"record is a {type(obj).__name__}, expected an object")
        chosen, ci, c_final = _split_final(obj, "chosen")
        rejected, ri, r_final = _split_final(obj, "rejected")
        c_ctx = chosen[:ci]
        # Same context: compared in place, without copying the rejected one (the common case).
        if not (ci == ri and rejected.startswith(c_ctx)) and not _same_after_normalising(c_ctx, rejected[:ri]):
            raise AdaptError("prompt_mismatch", "chosen and rejected differ before their final Assistant turn")
        prompt = parse_turns(c_ctx)
        if _blank(c_final):
            raise AdaptError("empty_text", "the final chosen Assistant turn is empty")
        if _blank(r_final):
            raise AdaptError("empty_text", "the final rejected Assistant turn is empty")
        meta = leftover(obj, _USED) if len(obj) > 2 else None
        row = pairwise(prompt, [{"role": ASSISTANT, "content": c_final}],
                       [{"role": ASSISTANT, "content": r_final}], origin=self.origin, meta=meta)
        return [("pairwise", row)]


def _same_after_normalising(a: str, b: str) -> bool:
    """Contexts that differ only in whitespace around turns are the same prompt once normalised."""
    try:
        ta, tb = parse_turns(a), parse_turns(b)
    except AdaptError:
        return False
    return len(ta) == len(tb) and all(x["role"] == y["role"] and normalise_text(x["content"]) ==
                                      normalise_text(y["content"]) for x, y in zip(ta, tb))
