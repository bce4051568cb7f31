"""At most N pairs per prompt cluster (``cluster_cap``): one popular prompt must not dominate the data."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from curation.dedup import Decision, cluster_cap
from curation.errors import CurationError
from curation.steps.base import RemovalStep
from schemas.registry import STEPS


@dataclass(frozen=True)
class ClusterCapConfig:
    cap: int  # max rows per cluster
    seed: int = 0  # which rows stay: a seeded choice that does not depend on row order
    column: str = "prompt_cluster"


@STEPS.register(
    "cluster_cap", config=ClusterCapConfig, shapes=("pairwise",), tags=("cluster-capped",), extra={"stage": "curate"}
)
class ClusterCapStep(RemovalStep):
    """Keep at most ``cap`` rows per prompt cluster (run after prompt_clusters)."""

    name = "cluster_cap"

    def __init__(self, config: ClusterCapConfig):
        super().__init__()
        if config.cap < 1:
            raise CurationError(f"cluster cap must be >= 1, got {config.cap}")
        self.config = config

    def decide(self, table: pa.Table) -> Decision:
        return cluster_cap(table, self.config.cap, self.config.seed, self.config.column)
