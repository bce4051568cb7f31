"""ShareGPT as LLaMA-Factory uses it: DPO/ranking files and KTO files.

* DPO (``"ranking": true``): ``conversations`` (the context, ending with a human turn) plus
  ``chosen``/``rejected`` reply objects (``{from: gpt, value}``; a bare string or a list of
  messages is accepted too).
* KTO: ``messages`` (or ``conversations``) plus a boolean ``label`` (LLaMA-Factory's ``kto_tag``
  column; either name is read). The last message is the judged assistant completion.

Messages may be ``{from, value}`` or ``{role, content}``. LLaMA-Factory roles map as
human/observation → user, gpt/function_call → assistant, system → system; observation and
function_call keep their source role in ``meta['source_roles']`` because the canonical roles cannot
say "tool". A top-level ``system`` string becomes a leading system message. An unknown role is
rejected (``unknown_role``) with the role it saw.
"""

from __future__ import annotations

from typing import Any

from schemas.adapters.base import AdaptError
from schemas.adapters.common import (
    ASSISTANT,
    SYSTEM,
    USER,
    as_conversation,
    check_completion,
    check_prompt,
    convert_messages,
    leftover,
    msg,
    split_last_assistant,
)
from schemas.records import binary, pairwise

SHAREGPT_ROLES = {
    "human": USER,
    "user": USER,
    "observation": USER,
    "gpt": ASSISTANT,
    "assistant": ASSISTANT,
    "function_call": ASSISTANT,
    "system": SYSTEM,
}
_TOOL_ROLES = {"observation", "function_call"}
_LABEL_KEYS = ("label", "kto_tag")


def _source_roles(*lists: Any) -> list[Any] | None:
    """The original role names (as the source has them), kept only when a tool role was folded into
    user/assistant."""
    roles = [m.get("from", m.get("role")) for lst in lists if isinstance(lst, list) for m in lst if isinstance(m, dict)]
    return roles if _TOOL_ROLES.intersection(roles) else None


class ShareGPTAdapter:
    name = "sharegpt"

    def __init__(self, origin: str = "human", messages_field: str | None = None):
        self.origin = origin
        self.messages_field = messages_field  # None: "conversations", then "messages"

    def adapt(self, obj: Any) -> list:
        if not isinstance(obj, dict):
            raise AdaptError("wrong_type", f"record is a {type(obj).__name__}, expected an object")
        key = self._messages_key(obj)
        context = convert_messages(obj[key], key, SHAREGPT_ROLES)
        system = obj.get("system")
        if system is not None:
            if not isinstance(system, str):
                raise AdaptError("wrong_type", f"field 'system' is a {type(system).__name__}, expected str")
            if system.strip():
                context = [msg(SYSTEM, system)] + context
        if "chosen" in obj or "rejected" in obj:
            return [self._pairwise(obj, key, context)]
        label_key = next((k for k in _LABEL_KEYS if k in obj), None)
        if label_key is not None:
            return [self._binary(obj, key, label_key, context)]
        raise AdaptError("missing_field", "expected 'chosen'/'rejected' (DPO) or a boolean 'label'/'kto_tag' (KTO)")

    def _messages_key(self, obj: dict) -> str:
        keys = (self.messages_field,) if self.messages_field else ("conversations", "messages")
        for k in keys:
            if obj.get(k) is not None:
                return k
        raise AdaptError("missing_field", f"field {' or '.join(repr(k) for k in keys)} is missing")

    def _pairwise(self, obj: dict, key: str, prompt: list[dict]) -> tuple:
        sides = []
        for side in ("chosen", "rejected"):
            if obj.get(side) is None:
                raise AdaptError("missing_field", f"field {side!r} is missing")
            sides.append(as_conversation(obj[side], side, ASSISTANT, SHAREGPT_ROLES))
        check_prompt(prompt, key)
        check_completion(sides[0], "chosen")
        check_completion(sides[1], "rejected")
        roles = _source_roles(
            obj[key],
            obj["chosen"] if isinstance(obj["chosen"], list) else [obj["chosen"]],
            obj["rejected"] if isinstance(obj["rejected"], list) else [obj["rejected"]],
        )
        meta = leftover(obj, (key, "system", "chosen", "rejected"), {"source_roles": roles} if roles else None)
        return ("pairwise", pairwise(prompt, sides[0], sides[1], origin=self.origin, meta=meta))

    def _binary(self, obj: dict, key: str, label_key: str, messages: list[dict]) -> tuple:
        label = obj[label_key]
        if not isinstance(label, bool):
            raise AdaptError("unknown_label", f"{label_key} {label!r} is not a bool (true = desirable)")
        prompt, completion = split_last_assistant(messages, key)
        check_prompt(prompt, key)
        check_completion(completion, "completion")
        roles = _source_roles(obj[key])
        meta = leftover(obj, (key, "system", label_key), {"source_roles": roles} if roles else None)
        return ("binary", binary(prompt, completion, label=label, origin=self.origin, meta=meta))
