"""The one error type the warehouse raises for bad input or refused operations."""

from __future__ import annotations


class WarehouseError(Exception):
    """A user-facing failure with a one-line message (the CLI prints it without a traceback)."""


def one_line(exc: BaseException) -> str:
    """DuckDB messages span several lines (caret markers, hints); keep the informative ones on one."""
    lines = [ln.strip() for ln in str(exc).splitlines()]
    keep = [ln for ln in lines if ln and not ln.startswith("LINE ") and set(ln) != {"^"}]
    return " ".join(keep) or type(exc).__name__
