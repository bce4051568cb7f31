"""Semantic duplicates: rows whose embeddings have cosine >= a threshold, within prompt clusters by default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from curation.dedup import DEFAULT_BY, Decision, semantic_duplicates
from curation.errors import CurationError
from curation.steps.base import EMBEDDING, ROW, RemovalStep, vectors_of
from schemas.registry import STEPS

SCOPES = ("cluster", "all")


@dataclass(frozen=True)
class SemanticDedupConfig:
    threshold: float = 0.95  # embedding cosine
    scope: str = "cluster"  # cluster: compare rows of one prompt cluster only | all: a blockwise all-pairs scan
    cluster_column: str = "prompt_cluster"
    by: tuple[str, ...] = DEFAULT_BY


@STEPS.register(
    "semantic_dedup",
    config=SemanticDedupConfig,
    shapes=("pairwise",),
    tags=("deduplicated",),
    extra={"stage": "curate"},
)
class SemanticDedupStep(RemovalStep):
    """Drop rows whose embedding (``_embedding``) nearly repeats an earlier row's; bad vectors never match."""

    name = "semantic_dedup"
    needs: ClassVar[tuple[str, ...]] = (ROW, "record_id", EMBEDDING)

    def __init__(self, config: SemanticDedupConfig | None = None):
        super().__init__()
        self.config = config or SemanticDedupConfig()
        if self.config.scope not in SCOPES:
            raise CurationError(f"semantic scope must be one of {', '.join(SCOPES)}, got {self.config.scope!r}")

    def decide(self, table: pa.Table) -> Decision:
        within = None
        if self.config.scope == "cluster":
            if self.config.cluster_column not in table.column_names:
                raise CurationError(f"semantic dedup within clusters needs a {self.config.cluster_column!r} column")
            within = table.column(self.config.cluster_column)
        return semantic_duplicates(table, vectors_of(table), self.config.threshold, within, self.config.by)
