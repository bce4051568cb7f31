"""Field paths for mapping files: ``a.b``, list indexes ``messages.-1.content``, slices ``messages.:-1``.

Paths are compiled once (syntax errors are the mapping's fault → ``ValueError``) and looked up
per record (a missing field is the record's fault → ``AdaptError('missing_field')``). A record key
that itself contains dots (a CSV column ``score.a``) is matched whole before the path is split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from schemas.adapters.base import AdaptError

_INT = re.compile(r"-?\d+\Z")
_SLICE = re.compile(r"(-?\d+)?:(-?\d+)?\Z")


@dataclass(frozen=True)
class Path:
    text: str
    segments: tuple  # each (raw str, int | slice | None)

    @property
    def root(self) -> str:
        return self.segments[0][0]


def compile_path(text: Any) -> Path:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a field path must be a non-empty string, got {text!r}")
    segments: list[tuple[str, int | slice | None]] = []
    for raw in text.split("."):
        if raw == "":
            raise ValueError(f"field path {text!r} has an empty segment")
        if _INT.match(raw):
            segments.append((raw, int(raw)))
        elif m := _SLICE.match(raw):
            lo, hi = m.groups()
            segments.append((raw, slice(None if lo is None else int(lo), None if hi is None else int(hi))))
        else:
            segments.append((raw, None))
    return Path(text, tuple(segments))


def lookup(obj: Any, path: Path) -> Any:
    """The value at ``path`` (None is treated as missing)."""
    if isinstance(obj, dict) and path.text in obj:
        value = obj[path.text]
        if value is None:
            raise AdaptError("missing_field", f"field {path.text!r} is missing")
        return value
    value = obj
    for i, (raw, index) in enumerate(path.segments):
        if isinstance(value, dict):
            if raw not in value:
                raise AdaptError("missing_field", f"field {path.text!r} is missing")
            value = value[raw]
        elif isinstance(value, list) and index is not None:
            if isinstance(index, slice):
                value = value[index]
            elif -len(value) <= index < len(value):
                value = value[index]
            else:
                raise AdaptError(
                    "missing_field", f"field {path.text!r}: index {index} is out of range (list of {len(value)})"
                )
        else:
            where = ".".join(r for r, _ in path.segments[:i]) or "record"
            raise AdaptError(
                "wrong_type", f"field {path.text!r}: {where} is a {type(value).__name__}, cannot take {raw!r}"
            )
        if value is None:
            raise AdaptError("missing_field", f"field {path.text!r} is missing")
    return value
