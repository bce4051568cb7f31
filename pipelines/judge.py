"""Judging on the executor: pairwise rows → ``JudgeStep`` (judges/judge_step.py) → verdict columns.

The step builds its engine once per worker and notes each batch's engine-stat deltas; rows beyond
``limit`` are not sent and keep null verdicts. See judges/judge_step.py for rejected rows, budgets and
what happens when the server goes away.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from judges.engines import EngineSpec
from judges.errors import EngineUnreachable
from judges.judge_step import STEP, VERDICT_COLUMNS, JudgeCounts, JudgeStep, with_null_verdicts
from judges.notes import Notes
from pipelines.executor import Executor
from schemas.step import REJECTED, Counts

__all__ = ["JudgeRun", "run_judge", "STEP", "VERDICT_COLUMNS"]


@dataclass
class JudgeRun:
    table: pa.Table | None  # every input row, verdict columns added (null where none); None when fatal
    rejected: pa.Table  # REJECTED rows of the judge step (rows without a verdict)
    counts: JudgeCounts
    steps: list[Counts]  # the executor's step counts (the judge step)
    read: Counts  # the input rows: all kept (the step annotates; rows beyond the limit pass untouched)
    fatal: BaseException | None = None  # the error that stopped the step (nothing may be published)
    rows_not_attempted: int = 0

    def judged(self, what: str) -> pa.Table:
        """The judged table, or ``EngineUnreachable`` naming ``what`` stopped (the server went away)."""
        if self.fatal is not None:
            raise EngineUnreachable(f"{what}: {type(self.fatal).__name__}: {self.fatal}") from self.fatal
        assert self.table is not None
        return self.table


def run_judge(
    table: pa.Table,
    spec: EngineSpec,
    *,
    work: Path,
    run_id: str = "",
    verdict_options: Mapping[str, Any] | None = None,
    limit: int | None = None,
    batch_rows: int = 128,
    beam_args: list[str] | None = None,
) -> JudgeRun:
    """Judge the first ``limit`` rows of ``table`` (all by default) in batches of ``batch_rows``."""
    n = table.num_rows if limit is None else min(limit, table.num_rows)
    notes = Notes(Path(work) / "judge-notes")
    shutil.rmtree(notes.root, ignore_errors=True)
    step = JudgeStep(spec, verdict_options, notes=notes.root)
    ex = Executor(Path(work), run_id=run_id, beam_args=beam_args, batch_rows=batch_rows)
    res = ex.run_table(table.slice(0, n), [step], "pairwise")
    counts = JudgeCounts.collect(res.count(STEP), notes)
    read = Counts("read", rows_in=table.num_rows, rows_kept=table.num_rows, annotates=True)
    fatal = notes.fatal()
    if fatal is not None:
        return JudgeRun(None, REJECTED.empty_table(), counts, res.counts, read, fatal, table.num_rows - n)
    judged = res.table("pairwise") if n else with_null_verdicts(table.slice(0, 0))
    if n < table.num_rows:
        judged = pa.concat_tables([judged, with_null_verdicts(table.slice(n))], promote_options="default")
    return JudgeRun(judged, res.rejected(), counts, res.counts, read, None, table.num_rows - n)
