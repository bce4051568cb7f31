"""Helpers the format adapters share: messages, role maps, text checks, leftover fields → meta.

Every helper raises ``AdaptError`` with a rule id, so an adapter never leaks a KeyError/TypeError
for a malformed record. Reason ids used here: ``missing_field``, ``wrong_type``, ``empty_text``,
``unknown_role``, ``role_order``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from schemas.adapters.base import AdaptError

SYSTEM, USER, ASSISTANT = "system", "user", "assistant"

# Role names seen in the wild → canonical roles. Adapters extend or restrict this.
DEFAULT_ROLES = {
    "system": SYSTEM,
    "user": USER,
    "assistant": ASSISTANT,
    "human": USER,
    "gpt": ASSISTANT,
    "prompter": USER,
}


def msg(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number(value: Any, where: str) -> float:
    if not is_number(value):
        raise AdaptError("wrong_type", f"{where} is a {type(value).__name__}, expected a number")
    return float(value)


def content_text(value: Any, where: str) -> str:
    """Message content as text: a string, or a list of ``{type: text, text}`` parts (TRL/OpenAI)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        texts = []
        for part in value:
            if part.get("type", "text") != "text" or not isinstance(part.get("text"), str):
                raise AdaptError("wrong_type", f"{where} has a non-text content part ({part.get('type')!r})")
            texts.append(part["text"])
        return "".join(texts)
    if value is None:
        raise AdaptError("missing_field", f"{where} is missing")
    raise AdaptError("wrong_type", f"{where} is a {type(value).__name__}, expected text")


def convert_messages(
    items: Any,
    where: str,
    roles: dict[str, str] = DEFAULT_ROLES,
    role_key: str | None = None,
    content_key: str | None = None,
) -> list[dict]:
    """A list of message objects → canonical messages.

    Keys default per message to ``role``/``content`` or ShareGPT's ``from``/``value``, so one helper
    reads TRL, OpenAI and ShareGPT lists.
    """
    if not isinstance(items, list):
        raise AdaptError("wrong_type", f"{where} is a {type(items).__name__}, expected a list of messages")
    out = []
    for i, m in enumerate(items):
        out.append(convert_message(m, f"{where}[{i}]", roles, role_key, content_key))
    return out


def convert_message(
    m: Any,
    where: str,
    roles: dict[str, str] = DEFAULT_ROLES,
    role_key: str | None = None,
    content_key: str | None = None,
) -> dict:
    if not isinstance(m, dict):
        raise AdaptError("wrong_type", f"{where} is a {type(m).__name__}, expected a message object")
    rk = role_key or ("from" if "from" in m and "role" not in m else "role")
    ck = content_key or ("value" if rk == "from" else "content")
    role = m.get(rk)
    if role is None:
        raise AdaptError("missing_field", f"{where} has no {rk!r}")
    if not isinstance(role, str):
        raise AdaptError("wrong_type", f"{where}.{rk} is a {type(role).__name__}, expected a string")
    mapped = roles.get(role)
    if mapped is None:
        raise AdaptError("unknown_role", f"{where} has role {role!r}; known: {', '.join(sorted(roles))}")
    return msg(mapped, content_text(m.get(ck), f"{where}.{ck}"))


def as_conversation(value: Any, where: str, default_role: str, roles: dict[str, str] = DEFAULT_ROLES) -> list[dict]:
    """A string (one message of ``default_role``), one message object, or a list of messages."""
    if isinstance(value, str):
        return [msg(default_role, value)]
    if isinstance(value, dict):
        return [convert_message(value, where, roles)]
    if isinstance(value, list):
        return convert_messages(value, where, roles)
    if value is None:
        raise AdaptError("missing_field", f"{where} is missing")
    raise AdaptError("wrong_type", f"{where} is a {type(value).__name__}, expected text or messages")


def check_nonempty(messages: Iterable[dict], what: str) -> None:
    for i, m in enumerate(messages):
        if not m["content"].strip():
            raise AdaptError("empty_text", f"{what} message {i} ({m['role']}) is empty")


def check_completion(messages: list[dict], what: str) -> None:
    """A judged completion: at least one message, starting with the assistant, no empty turn."""
    if not messages:
        raise AdaptError("empty_text", f"{what} has no messages")
    if messages[0]["role"] != ASSISTANT:
        raise AdaptError("role_order", f"{what} starts with a {messages[0]['role']} turn, expected assistant")
    check_nonempty(messages, what)


def check_prompt(prompt: list[dict], what: str = "prompt", allow_empty: bool = False) -> None:
    """The conversation before a judged turn must end with the user (system messages may lead)."""
    if not prompt:
        if allow_empty:
            return
        raise AdaptError("role_order", f"{what} has no user turn before the judged reply")
    if prompt[-1]["role"] != USER:
        raise AdaptError("role_order", f"{what} ends with a {prompt[-1]['role']} turn, expected user")
    check_nonempty(prompt, what)


def split_last_assistant(messages: list[dict], what: str) -> tuple[list[dict], list[dict]]:
    """KTO style: the last message must be the assistant's; it is the judged completion."""
    if not messages:
        raise AdaptError("empty_text", f"{what} has no messages")
    if messages[-1]["role"] != ASSISTANT:
        raise AdaptError(
            "role_order",
            f"{what} ends with a {messages[-1]['role']} turn; the judged completion must be the last assistant message",
        )
    return messages[:-1], messages[-1:]


def common_prefix_len(a: list, b: list) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def leftover(obj: dict, used: Iterable[str], extra: dict | None = None) -> dict | None:
    """Source fields that have no canonical column (plus ``extra``), for ``meta``."""
    used = set(used)
    meta = {k: v for k, v in obj.items() if k not in used}
    if extra:
        meta.update(extra)
    return meta or None
