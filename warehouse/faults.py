"""Named points in the commit sequence. Production code only announces them; the crash tests
replace ``reached`` to stop a commit exactly there (in-process or by killing the process)."""

from __future__ import annotations

OBJECTS_WRITTEN = "objects_written"  # lake objects and quarantine written, catalog untouched
IN_TRANSACTION = "in_transaction"  # every catalog change made, not yet committed
COMMITTED = "committed"  # transaction committed, staging not yet removed


def reached(point: str) -> None:
    return None
