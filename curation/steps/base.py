"""What the curation steps share: decisions keyed by the executor's row index, and column helpers.

A whole-dataset step (``FitStep``) decides on every row in ``fit`` and hands ``process`` the decision as
its state, keyed by ``_row`` (the executor's int64 index over its input table, ``pipelines.executor.ROW``),
so a batch needs no other batch to know which of its rows go. Working columns start with ``_`` (``_row``,
``_embedding``): they travel between the executor's segments and never reach a published version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.dedup import Decision
from schemas.step import FitStep, StepResult, reject_rows

ROW = "_row"  # the executor's row index (pipelines.executor.ROW; curation does not import pipelines)
EMBEDDING = "_embedding"  # fixed_size_list<float32>[d] per row, attached by the embed step


@dataclass(frozen=True)
class Removed:
    """A whole-dataset step's decision: which rows go (by ``_row``), why, and which kept row each duplicate
    duplicates (null for removals that are not duplicates)."""

    rows: pa.Array  # int64
    reason: pa.Array  # string, one per removed row
    duplicate_of: pa.Array  # string record_id, or null
    detail: pa.Array  # string (JSON), or null

    @classmethod
    def of(cls, table: pa.Table, decision: Decision) -> Removed:
        remove, reason, dup_of, detail = decision
        idx = np.flatnonzero(remove)
        take = pa.array(idx, pa.int64())
        n = len(idx)
        ids = table.column("record_id").combine_chunks()
        return cls(
            rows=table.column(ROW).combine_chunks().take(take).cast(pa.int64()),
            reason=pa.array([reason] * n if isinstance(reason, str) else np.asarray(reason)[idx], pa.string()),
            duplicate_of=ids.take(pa.array(dup_of[idx], pa.int64()))
            if dup_of is not None
            else pa.nulls(n, pa.string()),
            detail=pa.array([detail[i] for i in idx] if detail is not None else [None] * n, pa.string()),
        )

    def split(self, batch: pa.Table, step: str, shape: str | None = None) -> StepResult:
        """The batch's kept rows and its removed rows as ``REJECTED`` rows."""
        if not len(self.rows) or not batch.num_rows:
            return StepResult(batch)
        pos = pc.index_in(batch.column(ROW), value_set=self.rows)
        hit = pc.is_valid(pos)
        if not pc.any(hit).as_py():
            return StepResult(batch)
        at = pos.filter(hit).combine_chunks()
        rejected = reject_rows(
            batch.filter(hit),
            step,
            cast(Any, self.reason.take(at)),
            detail=cast(Any, self.detail.take(at)),
            duplicate_of=self.duplicate_of.take(at),
            shape=shape,
        )
        return StepResult(batch.filter(pc.invert(hit)), rejected)


class RemovalStep(FitStep[Removed]):
    """A whole-dataset step whose decision is a set of removed rows: ``decide(table)`` over every row once
    (the logic in ``curation.dedup``), then each batch loses its share."""

    needs: ClassVar[tuple[str, ...]] = (ROW, "record_id")
    shapes: ClassVar[tuple[str, ...] | None] = ("pairwise",)

    def decide(self, table: pa.Table) -> Decision:
        raise NotImplementedError(f"{type(self).__name__}.decide")

    def fit(self, table: pa.Table) -> Removed:
        return Removed.of(table, self.decide(table))

    def process(self, batch: pa.Table, state: Removed) -> StepResult:
        return state.split(batch, self.step_name, self.shape)


def reported(step: object) -> bool:
    """Whether a run's bookkeeping (run_steps, its counts) lists ``step``: a step that only attaches working
    data or a column (embed, prompt_clusters) says ``reported = False``."""
    return bool(getattr(step, "reported", True))


def set_column(table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    """Set or replace a column (a curated version may be curated again)."""
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


def vectors_of(table: pa.Table, column: str = EMBEDDING) -> np.ndarray:
    """A fixed-size-list column as an (n, d) float32 matrix (one copy at most)."""
    col = table.column(column)
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    d = arr.type.list_size
    return np.asarray(arr.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(-1, d)


def vector_array(x: np.ndarray) -> pa.FixedSizeListArray:
    """An (n, d) float32 matrix as a fixed_size_list<float32>[d] column."""
    x = np.ascontiguousarray(x, np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
