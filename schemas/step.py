"""The step contract: every step maps an Arrow batch to kept rows and rejected rows, each with a reason.

A step author writes only the decision (``process``, or ``fit`` + ``process`` for whole-dataset steps);
the base class checks the declared columns and counts rows in / kept / rejected / duplicate, per reason,
so nothing is counted by hand. ``pipelines.executor`` runs lists of steps on Beam and owns everything
else (workers, staging, bookkeeping). Four forms:

- ``Step``: per batch, ``process(batch) -> StepResult`` (validate, pair rules, embed, judge, ...).
- ``FitStep``: whole-dataset, ``fit(table) -> state`` once over every row (on the driver, or a combiner
  on a cluster), then ``process(batch, state)`` per batch (dedup, clustering, selection, EM).
- ``Source``: the first step of a pipeline: ``plan()`` lists work units on the driver and ``read(unit)``
  turns one into canonical tables per shape plus rejections (adapters over file chunks, generators).
- ``annotates = True``: a step whose rejected rows stay in the output (a judge that could not judge a
  row keeps it with null verdicts); its counts describe the step's verdicts, not removed rows.

Rejected rows have one table shape, ``REJECTED``, whatever the cause: a quarantine reason, a duplicate
(``duplicate_of`` names the row it duplicates), an unselected row, a generator drop or a diagnostic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import orjson
import pyarrow as pa

from schemas.canonical import QUARANTINE, RAW_LIMIT
from schemas.errors import PrefmillError

# One shape for every rejection: the quarantine's columns plus the row a duplicate duplicates.
# ``run_id`` may be left null by a step: the executor fills it in.
REJECTED = pa.schema([pa.field("run_id", pa.string()), *list(QUARANTINE)[1:], pa.field("duplicate_of", pa.string())])
REMOVAL_COLUMNS = ["record_id", "step", "reason", "duplicate_of", "detail"]


class StepError(PrefmillError):
    """A step was misused (missing columns, bad configuration): one line, nothing processed."""


@dataclass
class Reject:
    """One rejected record: a machine-readable reason plus what is needed to find it again."""

    step: str
    reason: str
    detail: str | None = ""
    source_file: str | None = None
    source_row: int | None = None
    shape: str | None = None
    record_id: str | None = None
    raw: Any = None  # str, bytes or a JSON-able object
    duplicate_of: str | None = None

    def to_row(self, run_id: str) -> dict:
        return {
            "run_id": run_id,
            "step": self.step,
            "reason": self.reason,
            "detail": self.detail[:2000] if self.detail else self.detail,
            "source_file": self.source_file,
            "source_row": self.source_row,
            "shape": self.shape,
            "record_id": self.record_id,
            "raw": raw_text(self.raw),
            "duplicate_of": self.duplicate_of,
        }


def raw_text(raw: Any) -> str | None:
    """Raw record as text, capped at RAW_LIMIT characters (marked when cut)."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        text = raw[: RAW_LIMIT + 1].decode("utf-8", "replace")
    elif isinstance(raw, str):
        text = raw
    else:
        try:
            text = orjson.dumps(raw, default=str).decode()
        except (TypeError, orjson.JSONEncodeError):
            text = repr(raw)
    if len(text) > RAW_LIMIT:
        return text[:RAW_LIMIT] + f"…[truncated, {len(text)} chars]"
    return text


def rejected_table(rejects: Iterable[Reject], run_id: str = "") -> pa.Table:
    """Rejects as a ``REJECTED`` table (``run_id`` is filled in by the executor when left empty)."""
    return pa.Table.from_pylist([r.to_row(run_id) for r in rejects], schema=REJECTED)


def rejects_table(rejects: Iterable[Reject], run_id: str) -> pa.Table:
    """Rejects as a QUARANTINE table (the warehouse's quarantine files)."""
    return as_quarantine(rejected_table(rejects, run_id))


def as_quarantine(rejected: pa.Table) -> pa.Table:
    return rejected.select(QUARANTINE.names).cast(QUARANTINE)


def as_removals(rejected: pa.Table) -> pa.Table:
    return rejected.select(REMOVAL_COLUMNS)


def reject_rows(
    table: pa.Table,
    step: str,
    reason: str | Sequence[str],
    *,
    detail: str | Sequence[str | None] | None = None,
    duplicate_of: Sequence[str | None] | pa.Array | None = None,
    shape: str | None = None,
) -> pa.Table:
    """``REJECTED`` rows for every row of ``table`` (a vectorised reject: no Python object per row)."""
    n = table.num_rows

    def col(name: str, typ: pa.DataType) -> pa.Array | pa.ChunkedArray:
        if name in table.column_names:
            return table.column(name).cast(typ)
        return pa.nulls(n, typ)

    def values(v: Any) -> pa.Array:
        if v is None:
            return pa.nulls(n, pa.string())
        if isinstance(v, str):
            return pa.array([v] * n, pa.string())
        if isinstance(v, (pa.Array, pa.ChunkedArray)):
            return v.cast(pa.string())
        return pa.array(list(v), pa.string())

    return pa.table(
        {
            "run_id": pa.nulls(n, pa.string()),  # the current run's: the executor stamps it
            "step": pa.array([step] * n, pa.string()),
            "reason": values(reason),
            "detail": values(detail),
            "source_file": col("source_file", pa.string()),
            "source_row": col("source_row", pa.int64()),
            "shape": values(shape),
            "record_id": col("record_id", pa.string()),
            "raw": pa.nulls(n, pa.string()),
            "duplicate_of": values(duplicate_of),
        },
        schema=REJECTED,
    )


def no_rejects() -> pa.Table:
    return REJECTED.empty_table()


@dataclass
class StepResult:
    """What a step returns: the rows it keeps and the rows it rejects (``REJECTED``), each with a reason."""

    kept: pa.Table
    rejected: pa.Table = field(default_factory=no_rejects)

    def __post_init__(self) -> None:
        if isinstance(self.rejected, list):  # a list of Reject is accepted for convenience
            self.rejected = rejected_table(self.rejected)


@dataclass
class SourceResult:
    """What a source returns for one unit: canonical tables per shape, rejections, raw records read."""

    tables: dict[str, pa.Table]
    rejected: pa.Table = field(default_factory=no_rejects)
    records_read: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.rejected, list):
            self.rejected = rejected_table(self.rejected)


@dataclass
class Counts:
    """One step's counts: ``rows_in = kept + rejected + duplicate`` (annotating steps: kept = rows_in -
    rejected). Counts add up across batches and workers (``+``)."""

    step: str
    rows_in: int = 0
    rows_kept: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0
    records_read: int = 0  # sources only: raw records behind rows_in
    reasons: Counter = field(default_factory=Counter)
    annotates: bool = False  # its rejected rows stayed in the output (see ``_Base.annotates``)

    def __add__(self, other: Counts) -> Counts:
        if other.step != self.step:
            raise StepError(f"cannot add counts of step {other.step!r} to {self.step!r}")
        return Counts(
            self.step,
            self.rows_in + other.rows_in,
            self.rows_kept + other.rows_kept,
            self.rows_rejected + other.rows_rejected,
            self.rows_duplicate + other.rows_duplicate,
            self.records_read + other.records_read,
            self.reasons + other.reasons,
            self.annotates,
        )

    def to_json(self) -> dict:
        return {
            "step": self.step,
            "rows_in": self.rows_in,
            "rows_kept": self.rows_kept,
            "rows_rejected": self.rows_rejected,
            "rows_duplicate": self.rows_duplicate,
            "records_read": self.records_read,
            "reasons": dict(self.reasons),
            "annotates": self.annotates,
        }

    @classmethod
    def from_json(cls, d: dict) -> Counts:
        return cls(
            d["step"],
            d["rows_in"],
            d["rows_kept"],
            d["rows_rejected"],
            d["rows_duplicate"],
            d.get("records_read", 0),
            Counter(d.get("reasons") or {}),
            bool(d.get("annotates")),
        )


@dataclass(frozen=True)
class Resources:
    """What a step needs from its worker. The executor sizes workers and batches from it."""

    cpus: float = 1.0
    gpus: float = 0.0
    model: str | None = None  # a model loaded in ``setup`` (embedding model, reward model, ...)
    endpoint: str | None = None  # an LLM endpoint the step calls
    batch_rows: int | None = None  # a preferred batch size (e.g. one judge request wave)


class _Base:
    """Declarations and counting shared by every step form."""

    name: str = ""
    needs: ClassVar[tuple[str, ...]] = ()  # columns the step reads
    adds: ClassVar[tuple[str, ...]] = ()  # columns the step adds (or replaces)
    shapes: ClassVar[tuple[str, ...] | None] = None  # canonical shapes it applies to (None: any)
    annotates: ClassVar[bool] = False
    resources: Resources = Resources()

    def __init__(self) -> None:
        self.counts = Counts(self.step_name, annotates=self.annotates)
        self.shape: str | None = None  # the shape of the batch being processed (set on every call)

    @property
    def step_name(self) -> str:
        return self.name or type(self).__name__

    def setup(self) -> None:
        """Load heavy things (models, engines, connections) once per worker."""

    def teardown(self) -> None:
        """Release what ``setup`` loaded."""

    def applies_to(self, shape: str | None) -> bool:
        return self.shapes is None or shape in self.shapes

    def _check_needs(self, table: pa.Table) -> None:
        missing = [c for c in self.needs if c not in table.column_names]
        if missing:
            raise StepError(f"step {self.step_name!r} needs column(s) {', '.join(missing)}")

    def _count(self, rows_in: int, result: StepResult) -> StepResult:
        rej = result.rejected
        if rej.schema != REJECTED:
            rej = result.rejected = rej.select(REJECTED.names).cast(REJECTED)
        dup = rej.num_rows - rej.column("duplicate_of").null_count
        rejected = rej.num_rows - dup
        kept = rows_in - rejected - dup if self.annotates else result.kept.num_rows
        if not self.annotates and rows_in != kept + rejected + dup:
            raise StepError(
                f"step {self.step_name!r}: {rows_in} rows in but {kept} kept + {rejected} rejected + {dup} duplicate"
            )
        c = self.counts
        c.rows_in += rows_in
        c.rows_kept += kept
        c.rows_rejected += rejected
        c.rows_duplicate += dup
        c.reasons.update(rej.column("reason").to_pylist())
        return result

    def take_counts(self) -> Counts:
        """This worker's counts so far, reset (the executor collects them after each bundle)."""
        out, self.counts = self.counts, Counts(self.step_name, annotates=self.annotates)
        return out


class Step(_Base):
    """A per-batch step: ``process`` decides; ``__call__`` checks the declared columns and counts."""

    def process(self, batch: pa.Table) -> StepResult:
        raise NotImplementedError(f"{type(self).__name__}.process")

    def __call__(self, batch: pa.Table, shape: str | None = None) -> StepResult:
        self.shape = shape
        self._check_needs(batch)
        return self._count(batch.num_rows, self.process(batch))


S = TypeVar("S")


class FitStep(_Base, Generic[S]):
    """A whole-dataset step: ``fit`` sees every row once and returns a (picklable) state; ``process``
    applies it to one batch. Splitting the two is what lets a cluster runner parallelise ``process``."""

    def fit(self, table: pa.Table) -> S:
        raise NotImplementedError(f"{type(self).__name__}.fit")

    def process(self, batch: pa.Table, state: S) -> StepResult:
        raise NotImplementedError(f"{type(self).__name__}.process")

    def __call__(self, batch: pa.Table, state: S, shape: str | None = None) -> StepResult:
        self.shape = shape
        self._check_needs(batch)
        return self._count(batch.num_rows, self.process(batch, state))

    def fit_checked(self, table: pa.Table, shape: str | None = None) -> S:
        self.shape = shape
        self._check_needs(table)
        return self.fit(table)


U = TypeVar("U")


class Source(_Base, Generic[U]):
    """The first step of a pipeline. ``plan`` (driver) lists units; ``read`` (worker) turns one into
    tables per shape. Counted as a source: rows_in = rows produced + rows rejected (an expanding step)."""

    def plan(self) -> list[U]:
        raise NotImplementedError(f"{type(self).__name__}.plan")

    def read(self, unit: U) -> SourceResult:
        raise NotImplementedError(f"{type(self).__name__}.read")

    def __call__(self, unit: U) -> SourceResult:
        res = self.read(unit)
        produced = sum(t.num_rows for t in res.tables.values())
        rej = res.rejected
        if rej.schema != REJECTED:
            rej = res.rejected = rej.select(REJECTED.names).cast(REJECTED)
        dup = rej.num_rows - rej.column("duplicate_of").null_count
        c = self.counts
        c.rows_in += produced + rej.num_rows
        c.rows_kept += produced
        c.rows_rejected += rej.num_rows - dup
        c.rows_duplicate += dup
        c.records_read += res.records_read
        c.reasons.update(rej.column("reason").to_pylist())
        return res


AnyStep = Step | FitStep[Any]
