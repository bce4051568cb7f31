"""Run and step counts, and the invariant every run obeys: read = kept + rejected + duplicate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from schemas.step import Counts
from warehouse.errors import WarehouseError


def _check_non_negative(where: str, **values: int) -> None:
    for name, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise WarehouseError(f"{where}: {name} must be a non-negative integer, got {v!r}")


@dataclass(frozen=True)
class RunCounts:
    """What a pipeline counted. ``rows_kept`` = rows it staged; commit moves duplicates out of it."""

    records_read: int
    rows_read: int
    rows_kept: int
    rows_rejected: int
    rows_duplicate: int = 0

    def check(self, where: str = "run counts") -> RunCounts:
        _check_non_negative(
            where,
            records_read=self.records_read,
            rows_read=self.rows_read,
            rows_kept=self.rows_kept,
            rows_rejected=self.rows_rejected,
            rows_duplicate=self.rows_duplicate,
        )
        total = self.rows_kept + self.rows_rejected + self.rows_duplicate
        if self.rows_read != total:
            raise WarehouseError(
                f"{where}: rows_read {self.rows_read} != kept {self.rows_kept} + rejected {self.rows_rejected} "
                f"+ duplicate {self.rows_duplicate} ({total})"
            )
        return self

    def with_duplicates(self, n: int) -> RunCounts:
        """Move ``n`` kept rows to duplicates (found by the warehouse's dedup)."""
        return replace(self, rows_kept=self.rows_kept - n, rows_duplicate=self.rows_duplicate + n)


@dataclass(frozen=True)
class StepCount:
    step: str
    rows_in: int
    rows_kept: int
    rows_rejected: int = 0
    rows_duplicate: int = 0

    def check(self) -> StepCount:
        if not isinstance(self.step, str) or not self.step:
            raise WarehouseError(f"step name must be a non-empty string, got {self.step!r}")
        where = f"step {self.step!r}"
        _check_non_negative(
            where,
            rows_in=self.rows_in,
            rows_kept=self.rows_kept,
            rows_rejected=self.rows_rejected,
            rows_duplicate=self.rows_duplicate,
        )
        if self.rows_in != self.rows_kept + self.rows_rejected + self.rows_duplicate:
            raise WarehouseError(
                f"{where}: rows_in {self.rows_in} != kept {self.rows_kept} + rejected "
                f"{self.rows_rejected} + duplicate {self.rows_duplicate}"
            )
        return self


@dataclass(frozen=True)
class CommitResult:
    run_id: str
    dataset: str
    status: str  # committed | no_change
    version_id: str | None  # the new version; None when nothing changed
    parent_version: str | None
    counts: RunCounts  # final counts, duplicates moved out of kept
    rows_new: dict[str, int] = field(default_factory=dict)  # rows added per shape
    files: list[str] = field(default_factory=list)  # new lake objects (relative to the root)

    @property
    def rows_duplicate(self) -> int:
        return self.counts.rows_duplicate


def step_counts(counts: Sequence[Counts]) -> list[StepCount]:
    """The steps' own counters as run_steps rows (nobody counts by hand)."""
    return [StepCount(c.step, c.rows_in, c.rows_kept, c.rows_rejected, c.rows_duplicate) for c in counts]


def run_counts(counts: Sequence[Counts], records_read: int | None = None) -> RunCounts:
    """A run's counts from its steps': read = the first step's rows in; every non-annotating step's
    rejected and duplicate rows left the run; the rest were kept."""
    if not counts:
        raise WarehouseError("a run without steps has nothing to count")
    read = counts[0].rows_in
    rejected = sum(c.rows_rejected for c in counts if not c.annotates)
    duplicate = sum(c.rows_duplicate for c in counts if not c.annotates)
    records = records_read if records_read is not None else (counts[0].records_read or read)
    return RunCounts(records, read, read - rejected - duplicate, rejected, duplicate).check()
