"""Exact duplicates: the same record id (``duplicate_record``) or the same recipe text (``exact_duplicate``)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from curation.dedup import DEFAULT_BY, Decision, exact_duplicates
from curation.steps.base import RemovalStep
from schemas.registry import STEPS


@dataclass(frozen=True)
class ExactDedupConfig:
    recipe: str = "pair"  # the text compared (curation.recipes)
    by: tuple[str, ...] = DEFAULT_BY  # rows only duplicate each other when these columns agree


@STEPS.register(
    "exact_dedup", config=ExactDedupConfig, shapes=("pairwise",), tags=("deduplicated",), extra={"stage": "curate"}
)
class ExactDedupStep(RemovalStep):
    """Drop repeated rows over the whole table, keeping the first of each group (duplicate_of names it)."""

    name = "exact_dedup"

    def __init__(self, config: ExactDedupConfig | None = None):
        super().__init__()
        self.config = config or ExactDedupConfig()

    def decide(self, table: pa.Table) -> Decision:
        return exact_duplicates(table, self.config.recipe, self.config.by)
