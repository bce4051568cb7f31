"""Adapter contract: one raw source record → canonical rows (and per-row rejections).

An adapter is a small object with a ``name`` and ``adapt(obj)``. ``adapt`` returns a list whose
items are either ``(shape, row)`` — ``row`` built with ``schemas.records`` builders — or an
``AdaptError`` for a part of the record that could not be used (an oasst tree may yield rankings
and a rejection for one bad subtree). Raising ``AdaptError`` rejects the whole record. Adapters
never see files; lineage columns are filled in by ``schemas.ingest``.
"""

from __future__ import annotations

from typing import Any, Protocol


class AdaptError(Exception):
    """A record (or part of one) that does not fit the format: reason is a machine-readable rule id."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Adapter(Protocol):
    name: str

    def adapt(self, obj: Any) -> list: ...


def require(obj: Any, key: str, kind: type | tuple = str) -> Any:
    """obj[key], checked for presence and type; raises AdaptError(missing_field | wrong_type)."""
    if not isinstance(obj, dict):
        raise AdaptError("wrong_type", f"record is a {type(obj).__name__}, expected an object")
    if key not in obj or obj[key] is None:
        raise AdaptError("missing_field", f"field {key!r} is missing")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise AdaptError("wrong_type", f"field {key!r} is a {type(value).__name__}, expected {names}")
    return value


def nonempty(text: str, what: str) -> str:
    if not text.strip():
        raise AdaptError("empty_text", f"{what} is empty")
    return text
