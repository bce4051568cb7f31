"""PandaLM test set: one item, two responses, three independent human labels.

``instruction`` (+ ``input`` after a blank line, when not empty) is the user prompt;
``response1``/``response2`` are the candidates; ``annotator1..3`` are 1 (response1 better),
2 (response2 better) or 0 (similar quality = tie). Each annotator gives one pairwise row with
``annotator_id`` ``pandalm:annotatorN`` (the same three people across the file). A tie keeps
response1 as ``chosen`` and response2 as ``rejected``; ``meta['chosen_position']`` says which source
position each row's chosen came from, so positions are never lost.

A bad label costs only that annotator's row (an ``unknown_label`` item); a bad item (missing or
non-text response, empty response) rejects the record. Six responses in the shipped file are JSON
``true`` instead of text (the model's "True" was decoded as a boolean upstream); they are rejected
as ``wrong_type`` rather than guessed back into a string.
"""

from __future__ import annotations

from typing import Any

from schemas.adapters.base import AdaptError
from schemas.adapters.common import ASSISTANT, USER, is_number, leftover, msg
from schemas.records import pairwise

ANNOTATORS = ("annotator1", "annotator2", "annotator3")
# label value → (index of the chosen response, pairwise label)
LABELS = {1: (0, "chosen_better"), 2: (1, "chosen_better"), 0: (0, "tie")}


def _text(obj: dict, key: str, allow_empty: bool = False) -> str:
    value = obj.get(key)
    if value is None:
        raise AdaptError("missing_field", f"field {key!r} is missing")
    if not isinstance(value, str):
        raise AdaptError("wrong_type", f"field {key!r} is a {type(value).__name__}, expected str")
    if not allow_empty and not value.strip():
        raise AdaptError("empty_text", f"field {key!r} is empty")
    return value


def pandalm_prompt(instruction: str, input_text: str) -> str:
    """The user turn: instruction, then the input after a blank line (normalisation strips a bare tail)."""
    return f"{instruction}\n\n{input_text}"


class PandaLMAdapter:
    name = "pandalm"

    def __init__(self, annotators: tuple[str, ...] | list[str] = ANNOTATORS, origin: str = "human"):
        self.annotators = tuple(annotators)
        self.origin = origin

    def adapt(self, obj: Any) -> list:
        if not isinstance(obj, dict):
            raise AdaptError("wrong_type", f"record is a {type(obj).__name__}, expected an object")
        # A blank instruction is fine when the input carries the task (one item in the shipped file).
        text = pandalm_prompt(_text(obj, "instruction", allow_empty=True), _text(obj, "input", allow_empty=True))
        if not text.strip():
            raise AdaptError("empty_text", "instruction and input are both empty")
        prompt = [msg(USER, text)]
        responses = [[msg(ASSISTANT, _text(obj, "response1"))], [msg(ASSISTANT, _text(obj, "response2"))]]
        present = [a for a in self.annotators if a in obj]
        if not present:
            raise AdaptError("missing_field", f"no annotator label ({', '.join(self.annotators)})")
        base_meta = leftover(obj, ("instruction", "input", "response1", "response2", *self.annotators)) or {}
        out: list = []
        for name in present:
            value = obj[name]
            key = int(value) if is_number(value) and float(value).is_integer() else None  # 1.0 from CSV is 1
            if key not in LABELS:
                out.append(AdaptError("unknown_label", f"{name} = {value!r}; expected 1, 2 or 0 (tie)"))
                continue
            first, label = LABELS[key]
            meta = {**base_meta, "chosen_position": first + 1}
            row = pairwise(
                prompt,
                responses[first],
                responses[1 - first],
                label=label,
                origin=self.origin,
                annotator_id=f"pandalm:{name}",
                meta=meta,
            )
            out.append(("pairwise", row))
        return out
