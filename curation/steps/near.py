"""Near duplicates by MinHash LSH over the whole table (``near_duplicate``; Jaccard in ``detail``)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from curation.dedup import DEFAULT_BY, Decision, near_duplicates
from curation.steps.base import RemovalStep
from schemas.registry import STEPS


@dataclass(frozen=True)
class NearDedupConfig:
    threshold: float = 0.8  # MinHash Jaccard of the recipe text's shingles
    recipe: str = "pair"
    by: tuple[str, ...] = DEFAULT_BY


@STEPS.register(
    "near_dedup", config=NearDedupConfig, shapes=("pairwise",), tags=("deduplicated",), extra={"stage": "curate"}
)
class NearDedupStep(RemovalStep):
    """Drop near-duplicate rows found over the whole table (never per worker), keeping each group's first."""

    name = "near_dedup"

    def __init__(self, config: NearDedupConfig | None = None):
        super().__init__()
        self.config = config or NearDedupConfig()

    def decide(self, table: pa.Table) -> Decision:
        return near_duplicates(table, self.config.recipe, self.config.threshold, self.config.by)
