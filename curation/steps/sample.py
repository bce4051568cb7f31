"""Curate a seeded random sample of the rows (CPU-sized demos): the others are rejected as ``not_sampled``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from curation.dedup import Decision
from curation.errors import CurationError
from curation.steps.base import RemovalStep
from schemas.registry import STEPS


@dataclass(frozen=True)
class SampleConfig:
    n: int  # rows to keep (all of them when the table has no more)
    seed: int = 0


@STEPS.register("sample", config=SampleConfig, shapes=("pairwise",), tags=("sampled",), extra={"stage": "curate"})
class SampleStep(RemovalStep):
    """Keep a seeded random sample of ``n`` rows; the rest are rejected as ``not_sampled``."""

    name = "sample"

    def __init__(self, config: SampleConfig):
        super().__init__()
        if config.n < 1:
            raise CurationError(f"sample size must be >= 1, got {config.n}")
        self.config = config

    def decide(self, table: pa.Table) -> Decision:
        n = table.num_rows
        remove = np.zeros(n, bool)
        if self.config.n < n:
            remove[:] = True
            remove[np.random.default_rng(self.config.seed).choice(n, self.config.n, replace=False)] = False
        return remove, "not_sampled", None, None
