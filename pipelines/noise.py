"""Label-noise wiring: the voters' P(chosen ≻ rejected) as working columns → ``NoiseStep`` on the executor."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from curation.noise_step import NoiseConfig, NoiseStep
from pipelines.executor import ExecResult, Executor


def run_noise_flags(
    table: pa.Table,
    probs: Sequence[np.ndarray],
    m: int,
    confidence: float,
    *,
    work: Path,
    run_id: str,
    beam_args: list[str] | None = None,
) -> ExecResult:
    """``table`` with noise_votes / noise_voters / noise_flag from the voters' probabilities (NaN: abstained)."""
    columns = [f"_noise_p{i}" for i in range(len(probs))]  # working columns: dropped from the output
    voted = table
    for c, p in zip(columns, probs):
        voted = voted.append_column(c, pa.array(p, pa.float64(), from_pandas=True))
    ex = Executor(work, run_id=run_id, beam_args=beam_args)
    return ex.run_table(voted, [NoiseStep(NoiseConfig(tuple(columns), m, confidence))], "pairwise")
