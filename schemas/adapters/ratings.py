"""Multi-attribute ratings: one rated response per record.

Two layouts (``layout`` option; ``auto`` picks by the fields present):

* ``topical_chat`` (USR / UniEval): ``source`` is the dialogue history, one turn per line, ending
  with a blank line; ``system_output`` is the rated next turn; ``scores`` maps attribute → value;
  ``context`` is the knowledge snippet the responder was grounded on. With ``history="turns"``
  (default) each line is a turn and roles are given by counting back from the end (the last turn is
  the user's, the one before the assistant's, …); a history with an even number of turns therefore
  opens with an assistant turn (the responder spoke first — 180 of the 360 shipped rows), which
  validation's alternation rule rejects. ``history="text"`` keeps the history as one user message,
  as USR itself feeds it to its scorers: every row then passes, and line breaks keep the turns.
  The knowledge goes into a leading **system message** (``context_as="system"``, default) because
  groundedness is judged against it, so the rating means nothing without it; and the six responses
  to one context then share one ``prompt_id``. ``context_as="meta"`` keeps it out of the prompt.
* ``helpsteer`` (HelpSteer / HelpSteer2): flat columns ``prompt``, ``response`` and one column per
  attribute (helpfulness, correctness, coherence, complexity, verbosity; 0–4). The prompt is kept as
  one user message (multi-turn HelpSteer2 prompts are not split).

``scales`` maps attribute → (min, max); a value outside its scale is rejected (``out_of_range``).
An attribute with no scale is kept with null bounds.
"""

from __future__ import annotations

from typing import Any

from schemas.adapters.base import AdaptError, nonempty, require
from schemas.adapters.common import ASSISTANT, SYSTEM, USER, content_text, is_number, leftover, msg
from schemas.records import ratings

TOPICAL_CHAT_SCALES: dict[str, tuple[float, float]] = {
    "understandability": (0, 1),
    "naturalness": (1, 3),
    "coherence": (1, 3),
    "engagingness": (1, 3),
    "groundedness": (0, 1),
    "overall": (1, 5),
}
HELPSTEER_ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
HELPSTEER_SCALES: dict[str, tuple[float, float]] = {a: (0, 4) for a in HELPSTEER_ATTRIBUTES}

LAYOUTS = ("auto", "topical_chat", "helpsteer")
HISTORIES = ("turns", "text")


def _text(obj: dict, key: str) -> str:
    return nonempty(require(obj, key), f"field {key!r}")


def history_turns(source: str) -> list[dict]:
    """'turn\\nturn\\n…\\n\\n' → messages, the last one the user's; blank lines are not turns."""
    turns = [t for t in source.split("\n") if t.strip()]
    n = len(turns)
    return [msg(USER if (n - i) % 2 == 1 else ASSISTANT, t) for i, t in enumerate(turns)]


def check_scores(values: dict[str, Any], scales: dict[str, tuple[float, float]]) -> dict[str, float]:
    out = {}
    for name, value in values.items():
        if not is_number(value):
            raise AdaptError("wrong_type", f"score {name!r} is a {type(value).__name__}, expected a number")
        lo, hi = scales.get(name, (None, None))
        if lo is not None and not lo <= value <= hi:
            raise AdaptError("out_of_range", f"score {name!r} = {value} is outside its scale {lo}–{hi}")
        out[name] = float(value)
    if not out:
        raise AdaptError("missing_field", "no rated attributes")
    return out


class RatingsAdapter:
    name = "ratings"

    def __init__(
        self,
        layout: str = "auto",
        scales: dict[str, tuple[float, float]] | None = None,
        attributes: list[str] | tuple[str, ...] | None = None,
        context_as: str = "system",
        history: str = "turns",
        origin: str = "human",
    ):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown ratings layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
        if context_as not in ("system", "meta"):
            raise ValueError("context_as must be 'system' or 'meta'")
        if history not in HISTORIES:
            raise ValueError(f"history must be one of {', '.join(HISTORIES)}")
        self.layout, self.context_as, self.history, self.origin = layout, context_as, history, origin
        self.scales = None if scales is None else {k: (float(lo), float(hi)) for k, (lo, hi) in scales.items()}
        self.attributes = tuple(attributes) if attributes else None

    def adapt(self, obj: Any) -> list:
        if not isinstance(obj, dict):
            raise AdaptError("wrong_type", f"record is a {type(obj).__name__}, expected an object")
        layout = self.layout
        if layout == "auto":
            layout = "topical_chat" if "system_output" in obj or "scores" in obj else "helpsteer"
        return [self._topical_chat(obj) if layout == "topical_chat" else self._helpsteer(obj)]

    def _topical_chat(self, obj: dict) -> tuple:
        source = _text(obj, "source")
        history = history_turns(source) if self.history == "turns" else [msg(USER, source)]
        completion = [msg(ASSISTANT, _text(obj, "system_output"))]
        scores = obj.get("scores")
        if scores is None:
            raise AdaptError("missing_field", "field 'scores' is missing")
        if not isinstance(scores, dict):
            raise AdaptError("wrong_type", f"field 'scores' is a {type(scores).__name__}, expected an object")
        if self.attributes:
            missing = [a for a in self.attributes if a not in scores]
            if missing:
                raise AdaptError("missing_field", f"scores lack {', '.join(missing)}")
            scores = {a: scores[a] for a in self.attributes}
        values = check_scores(scores, TOPICAL_CHAT_SCALES if self.scales is None else self.scales)
        used = ["source", "system_output", "scores"]
        context = obj.get("context")
        if context is not None and self.context_as == "system":
            text = content_text(context, "context")
            if text.strip():
                history = [msg(SYSTEM, text)] + history
            used.append("context")
        row = ratings(
            history,
            completion,
            values,
            scales=TOPICAL_CHAT_SCALES if self.scales is None else self.scales,
            origin=self.origin,
            meta=leftover(obj, used),
        )
        return ("ratings", row)

    def _helpsteer(self, obj: dict) -> tuple:
        prompt = [msg(USER, _text(obj, "prompt"))]
        completion = [msg(ASSISTANT, _text(obj, "response"))]
        attributes = self.attributes or HELPSTEER_ATTRIBUTES
        missing = [a for a in attributes if obj.get(a) is None]
        if missing:
            raise AdaptError("missing_field", f"rating column(s) {', '.join(missing)} missing")
        scales = HELPSTEER_SCALES if self.scales is None else self.scales
        values = check_scores({a: obj[a] for a in attributes}, scales)
        row = ratings(
            prompt,
            completion,
            values,
            scales=scales,
            origin=self.origin,
            meta=leftover(obj, ("prompt", "response", *attributes)),
        )
        return ("ratings", row)
