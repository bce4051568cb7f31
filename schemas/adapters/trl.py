"""TRL dataset types: preference (paired) and unpaired preference (KTO/BCO).

Accepted layouts (TRL docs, "Dataset formats"):

* paired, explicit prompt: ``{prompt, chosen, rejected}``
* paired, implicit prompt: ``{chosen, rejected}`` only. Conversational rows are split at the longest
  common message prefix (the shared turns are the prompt). Standard (string) rows have no prompt to
  recover — TRL's own character-level prefix split would cut words in half — so they keep an empty
  prompt and the whole strings as completions.
* unpaired: ``{prompt, completion, label: bool}`` (implicit prompt: a conversation whose last
  message is the judged assistant reply).

Each field is a string ("standard": a single user/assistant message) or a list of ``{role,
content}`` messages ("conversational"). ``margin`` is taken as given, else
``score_chosen - score_rejected`` (kept negative when the scores disagree with the label: that
disagreement is a curation signal). The scores stay in ``meta`` with every other extra field.
"""

from __future__ import annotations

from typing import Any

from schemas.adapters.base import AdaptError
from schemas.adapters.common import (
    ASSISTANT,
    USER,
    as_conversation,
    check_completion,
    check_prompt,
    common_prefix_len,
    is_number,
    leftover,
    number,
    split_last_assistant,
)
from schemas.records import binary, pairwise

# TRL message lists use canonical roles only; anything else (e.g. "tool") is rejected.
TRL_ROLES = {"system": "system", "user": USER, "assistant": ASSISTANT}


def _kind(*values: Any) -> str:
    return "conversational" if any(isinstance(v, list) for v in values) else "standard"


class TRLAdapter:
    name = "trl"

    def __init__(self, origin: str = "human"):
        self.origin = origin

    def adapt(self, obj: Any) -> list:
        if not isinstance(obj, dict):
            raise AdaptError("wrong_type", f"record is a {type(obj).__name__}, expected an object")
        if "chosen" in obj or "rejected" in obj:
            return [self._paired(obj)]
        if "completion" in obj:
            return [self._unpaired(obj)]
        raise AdaptError(
            "missing_field", "expected 'chosen'/'rejected' (preference) or 'completion'/'label' (unpaired preference)"
        )

    def _paired(self, obj: dict) -> tuple:
        for key in ("chosen", "rejected"):
            if obj.get(key) is None:
                raise AdaptError("missing_field", f"field {key!r} is missing")
        raw_c, raw_r, raw_p = obj["chosen"], obj["rejected"], obj.get("prompt")
        chosen = as_conversation(raw_c, "chosen", ASSISTANT, TRL_ROLES)
        rejected = as_conversation(raw_r, "rejected", ASSISTANT, TRL_ROLES)
        extra: dict[str, Any] = {"trl_format": _kind(raw_p, raw_c, raw_r)}
        if raw_p is not None:
            prompt = as_conversation(raw_p, "prompt", USER, TRL_ROLES)
            check_prompt(prompt)
        elif isinstance(raw_c, list) and isinstance(raw_r, list):
            prompt, chosen, rejected = _split_implicit(chosen, rejected)
            extra["implicit_prompt"] = True
        elif isinstance(raw_c, list) or isinstance(raw_r, list):
            raise AdaptError(
                "wrong_type", "implicit-prompt rows need chosen and rejected both as text or both as message lists"
            )
        else:
            prompt = []
            extra["implicit_prompt"] = True
        check_completion(chosen, "chosen")
        check_completion(rejected, "rejected")
        row = pairwise(
            prompt,
            chosen,
            rejected,
            margin=_margin(obj),
            origin=self.origin,
            meta=leftover(obj, ("prompt", "chosen", "rejected", "margin"), extra),
        )
        return ("pairwise", row)

    def _unpaired(self, obj: dict) -> tuple:
        label = obj.get("label")
        if label is None:
            raise AdaptError("missing_field", "field 'label' is missing (unpaired preference needs a bool label)")
        if not isinstance(label, bool):
            raise AdaptError("unknown_label", f"label {label!r} is not a bool (True = desirable)")
        raw_p, raw_c = obj.get("prompt"), obj["completion"]
        completion = as_conversation(raw_c, "completion", ASSISTANT, TRL_ROLES)
        extra: dict[str, Any] = {"trl_format": _kind(raw_p, raw_c)}
        if raw_p is not None:
            prompt = as_conversation(raw_p, "prompt", USER, TRL_ROLES)
            check_prompt(prompt)
        elif isinstance(raw_c, list):
            prompt, completion = split_last_assistant(completion, "completion")
            check_prompt(prompt)
            extra["implicit_prompt"] = True
        else:
            prompt = []
            extra["implicit_prompt"] = True
        check_completion(completion, "completion")
        score = obj.get("score")
        row = binary(
            prompt,
            completion,
            label=label,
            score=number(score, "score") if score is not None else None,
            origin=self.origin,
            meta=leftover(obj, ("prompt", "completion", "label", "score"), extra),
        )
        return ("binary", row)


def _split_implicit(chosen: list[dict], rejected: list[dict]) -> tuple[list, list, list]:
    """Shared leading turns are the prompt; at least one message stays on each side."""
    k = min(common_prefix_len(chosen, rejected), len(chosen) - 1, len(rejected) - 1)
    if k < 0:
        raise AdaptError("empty_text", "chosen or rejected has no messages")
    prompt = chosen[:k]
    if chosen[k]["role"] != ASSISTANT or rejected[k]["role"] != ASSISTANT:
        raise AdaptError(
            "prompt_mismatch", f"chosen and rejected diverge at message {k}, which is not an assistant turn"
        )
    check_prompt(prompt)
    return prompt, chosen[k:], rejected[k:]


def _margin(obj: dict) -> float | None:
    if obj.get("margin") is not None:
        return number(obj["margin"], "margin")
    sc, sr = obj.get("score_chosen"), obj.get("score_rejected")
    if sc is None and sr is None:
        return None
    if sc is None or sr is None:
        raise AdaptError("missing_field", "score_chosen and score_rejected come together")
    if not (is_number(sc) and is_number(sr)):
        raise AdaptError("wrong_type", "score_chosen/score_rejected must be numbers")
    return float(sc) - float(sr)
