"""Reward scoring as a step: ``rm_prob`` (calibrated P(chosen > rejected)), ``rm_margin`` and ``rm_model_id``
from an embedding Bradley-Terry model (``curation.reward``) over the pair's two response embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa

from curation.recipes import text_array
from curation.reward import DEFAULT_RECIPE, BTRewardModel, response_texts, score_pairs
from curation.steps.base import set_column, vectors_of
from schemas.registry import STEPS
from schemas.step import Step, StepResult

CHOSEN, REJECTED = "_e_chosen", "_e_rejected"  # working columns: the (prompt, response) embeddings


@dataclass(frozen=True)
class ResponseTexts:
    """Each pair's (prompt, ``side``) text under a reward recipe, for ``EmbedRowsStep``."""

    side: str  # chosen | rejected
    recipe: str = DEFAULT_RECIPE

    def __call__(self, table: pa.Table) -> list[str]:
        prompts = text_array(table, "prompt").to_pylist()
        return response_texts(prompts, text_array(table, self.side).to_pylist(), self.recipe)


def response_columns(recipe: str = DEFAULT_RECIPE) -> dict[str, ResponseTexts]:
    """The embed step's columns for reward scoring: chosen texts first, then rejected ones."""
    return {CHOSEN: ResponseTexts("chosen", recipe), REJECTED: ResponseTexts("rejected", recipe)}


@STEPS.register("reward_score", shapes=("pairwise",), tags=("reward-scored",), extra={"stage": "curate"})
class RewardScoreStep(Step):
    """Add ``rm_prob``, ``rm_margin`` and ``rm_model_id`` (run after an embed step with ``response_columns``)."""

    name = "reward_score"
    needs: ClassVar[tuple[str, ...]] = (CHOSEN, REJECTED)
    adds: ClassVar[tuple[str, ...]] = ("rm_prob", "rm_margin", "rm_model_id")
    shapes: ClassVar[tuple[str, ...] | None] = ("pairwise",)

    def __init__(self, model: BTRewardModel, model_id: str):
        super().__init__()
        self.model, self.model_id = model, model_id

    def process(self, batch: pa.Table) -> StepResult:
        prob, margin = score_pairs(self.model, vectors_of(batch, CHOSEN), vectors_of(batch, REJECTED))
        batch = set_column(batch, "rm_prob", pa.array(np.asarray(prob, np.float64)))
        batch = set_column(batch, "rm_margin", pa.array(np.asarray(margin, np.float64)))
        return StepResult(set_column(batch, "rm_model_id", pa.array([self.model_id] * batch.num_rows, pa.string())))
