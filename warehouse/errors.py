"""The warehouse's errors: bad input or a refused operation (one line), and a busy writer (retry later)."""

from __future__ import annotations

from schemas.errors import PrefmillError, TransientError
from schemas.registry import UnknownName


class WarehouseError(PrefmillError):
    """A user-facing failure with a one-line message (the CLI prints it without a traceback)."""


class WarehouseBusy(WarehouseError, TransientError):
    """Another writer held the warehouse for longer than we waited; the same call may succeed later."""


class UnknownExportFormat(WarehouseError, UnknownName):
    """An export format no module registered (the message lists the known ones)."""


def one_line(exc: BaseException) -> str:
    """DuckDB messages span several lines (caret markers, hints); keep the informative ones on one."""
    lines = [ln.strip() for ln in str(exc).splitlines()]
    keep = [ln for ln in lines if ln and not ln.startswith("LINE ") and set(ln) != {"^"}]
    return " ".join(keep) or type(exc).__name__
