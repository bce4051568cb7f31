"""Decontamination on the executor: rows of one shape → ``DecontamStep`` → ``ValidateStep``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from curation.decontam_step import DecontamConfig, DecontamStep
from pipelines.executor import ExecResult, Executor
from schemas.validation import ValidateStep


def run_decontamination(
    table: pa.Table,
    shape: str,
    config: DecontamConfig,
    *,
    work: Path,
    run_id: str = "",
    beam_args: Sequence[str] | None = None,
) -> ExecResult:
    """Check ``table`` (rows of ``shape``) against the config's benchmarks; the index is built per worker."""
    ex = Executor(Path(work), run_id=run_id, beam_args=beam_args)
    return ex.run_table(table, [DecontamStep(config), ValidateStep()], shape)
