"""Budgeted selection (ISA, random, k-center) over the rows' embeddings; adds ``selection_score``.

Rows outside the budget are rejected as ``not_selected:<method>``, rows the selector cannot use with its
own reason (``bad_embedding``). The selector sees every row at once (``fit``); each batch keeps its share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.errors import CurationError
from curation.select import METHODS, MODES, select
from curation.steps.base import EMBEDDING, ROW, Removed, set_column, vectors_of
from schemas.registry import STEPS
from schemas.step import FitStep, StepResult

SCORE = "selection_score"


@dataclass(frozen=True)
class SelectConfig:
    method: str = "isa"  # isa | random | kcenter
    budget: float | int = 0.1  # a fraction in (0, 1] of the valid rows, or a row count >= 1
    seed: int = 0
    mode: str = "topk"  # ISA: topk | stochastic
    strata: str | None = None  # a column whose groups each keep their share (annotator_id, format, ...)


@STEPS.register("select", config=SelectConfig, shapes=("pairwise",), tags=("selected",), extra={"stage": "curate"})
class SelectStep(FitStep[tuple[Removed, pa.Table]]):
    """Keep a budgeted subset chosen over the whole table; the step is named ``select_<method>``."""

    needs: ClassVar[tuple[str, ...]] = (ROW, "record_id", EMBEDDING)
    adds: ClassVar[tuple[str, ...]] = (SCORE,)
    shapes: ClassVar[tuple[str, ...] | None] = ("pairwise",)

    def __init__(self, config: SelectConfig | None = None):
        config = config or SelectConfig()
        if config.method not in METHODS:
            raise CurationError(f"unknown method {config.method!r}; expected {', '.join(METHODS)}")
        if config.mode not in MODES:
            raise CurationError(f"mode must be one of {', '.join(MODES)}, got {config.mode!r}")
        self.name = f"select_{config.method}"
        super().__init__()
        self.config = config
        self.summary: dict = {}  # set by fit (on the driver): method, n_target, counts, strata, info

    def fit(self, table: pa.Table) -> tuple[Removed, pa.Table]:
        """(the rows not selected, ``_row`` -> score of the selected rows)."""
        c = self.config
        strata = None
        if c.strata:
            if c.strata not in table.column_names:
                raise CurationError(f"no column {c.strata!r} to stratify by")
            strata = np.asarray(table.column(c.strata).to_pylist(), dtype=object)
        selected, scores, reasons, self.summary = select(
            c.method, vectors_of(table), c.budget, seed=c.seed, mode=c.mode, strata=strata
        )
        keep = pa.array(np.flatnonzero(selected), pa.int64())
        scored = pa.table({ROW: table.column(ROW).take(keep), "score": pa.array(scores[selected], pa.float64())})
        return Removed.of(table, (~selected, reasons, None, None)), scored

    def process(self, batch: pa.Table, state: tuple[Removed, pa.Table]) -> StepResult:
        removed, scored = state
        res = removed.split(batch, self.step_name, self.shape)
        at = pc.index_in(res.kept.column(ROW), value_set=scored.column(ROW).combine_chunks()).combine_chunks()
        res.kept = set_column(res.kept, SCORE, scored.column("score").combine_chunks().take(at))
        return res
