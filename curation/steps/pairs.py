"""Pairs whose chosen and rejected responses are near-identical carry no preference (``near_identical_pair``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from curation.dedup import near_identical
from curation.steps.base import ROW, Removed
from schemas.registry import STEPS
from schemas.step import Step, StepResult


@dataclass(frozen=True)
class NearIdenticalConfig:
    threshold: float = 0.9  # chosen ~ rejected similarity (character 5-gram Jaccard) at which a pair goes


@STEPS.register(
    "near_identical_pairs",
    config=NearIdenticalConfig,
    shapes=("pairwise",),
    tags=("preference-bearing",),
    extra={"stage": "curate"},
)
class NearIdenticalPairsStep(Step):
    """Reject pairs whose chosen and rejected are (near-)identical; row by row, so per batch."""

    name = "near_identical_pairs"
    needs: ClassVar[tuple[str, ...]] = (ROW, "record_id", "chosen", "rejected")
    shapes: ClassVar[tuple[str, ...] | None] = ("pairwise",)

    def __init__(self, config: NearIdenticalConfig | None = None):
        super().__init__()
        self.config = config or NearIdenticalConfig()

    def process(self, batch: pa.Table) -> StepResult:
        return Removed.of(batch, near_identical(batch, self.config.threshold)).split(batch, self.step_name, self.shape)
