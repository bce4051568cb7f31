"""Prompt clusters: near-identical prompts (MinHash over the prompt text) share a ``prompt_cluster`` id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from curation.dedup import prompt_clusters
from curation.steps.base import set_column
from schemas.registry import STEPS
from schemas.step import FitStep, StepResult


@dataclass(frozen=True)
class PromptClustersConfig:
    threshold: float = 0.7  # MinHash Jaccard that puts two prompts in one cluster
    column: str = "prompt_cluster"


@STEPS.register(
    "prompt_clusters",
    config=PromptClustersConfig,
    shapes=("pairwise",),
    tags=("prompt-clustered",),
    extra={"stage": "curate"},
)
class PromptClustersStep(FitStep[pa.Table]):
    """Add ``prompt_cluster``: the prompt id of the cluster's first prompt (clusters span the whole table)."""

    name = "prompt_clusters"
    needs: ClassVar[tuple[str, ...]] = ("prompt_id", "prompt")
    adds: ClassVar[tuple[str, ...]] = ("prompt_cluster",)
    shapes: ClassVar[tuple[str, ...] | None] = ("pairwise",)
    reported: ClassVar[bool] = False  # adds a column, never removes a row: not in run_steps

    def __init__(self, config: PromptClustersConfig | None = None):
        super().__init__()
        self.config = config or PromptClustersConfig()

    def fit(self, table: pa.Table) -> pa.Table:
        """prompt_id -> cluster, one row per distinct prompt (a cluster depends on the prompt only)."""
        clusters = prompt_clusters(table, threshold=self.config.threshold)
        pid = table.column("prompt_id").combine_chunks()
        first = pc.unique(pid)
        at = pc.index_in(first, value_set=pid)
        return pa.table({"prompt_id": first, "cluster": clusters.take(at)})

    def process(self, batch: pa.Table, state: pa.Table) -> StepResult:
        at = pc.index_in(batch.column("prompt_id"), value_set=state.column("prompt_id").combine_chunks())
        cluster = state.column("cluster").combine_chunks().take(at.combine_chunks())
        return StepResult(set_column(batch, self.config.column, cluster))
