"""Curation steps on the step contract (``schemas.step``), one module per kind; each registers in
``schemas.registry.STEPS`` (``extra={"stage": "curate"}``) when this package is imported.

The logic they call lives beside them in ``curation`` (dedup, minhash, select, isa, reward, groups);
``pipelines.curate`` orders them and runs them on the executor:

sample → exact_dedup → near_identical_pairs → near_dedup → prompt_clusters → cluster_cap → embed →
semantic_dedup → select_<method> → validate (``schemas.validation.ValidateStep``).
"""

from __future__ import annotations

from curation.steps.base import EMBEDDING, ROW, RemovalStep, Removed, reported
from curation.steps.cap import ClusterCapConfig, ClusterCapStep
from curation.steps.clusters import PromptClustersConfig, PromptClustersStep
from curation.steps.embed import EmbedCounts, EmbedRowsStep, EmbedStep, RecipeTexts, TextEmbedder, missing_texts
from curation.steps.exact import ExactDedupConfig, ExactDedupStep
from curation.steps.groups import AnnotatorGroupsStep, GroupsConfig
from curation.steps.near import NearDedupConfig, NearDedupStep
from curation.steps.pairs import NearIdenticalConfig, NearIdenticalPairsStep
from curation.steps.reward import RewardScoreStep, response_columns
from curation.steps.sample import SampleConfig, SampleStep
from curation.steps.select import SelectConfig, SelectStep
from curation.steps.semantic import SemanticDedupConfig, SemanticDedupStep

__all__ = [
    "EMBEDDING",
    "ROW",
    "AnnotatorGroupsStep",
    "ClusterCapConfig",
    "ClusterCapStep",
    "EmbedCounts",
    "EmbedRowsStep",
    "EmbedStep",
    "ExactDedupConfig",
    "ExactDedupStep",
    "GroupsConfig",
    "NearDedupConfig",
    "NearDedupStep",
    "NearIdenticalConfig",
    "NearIdenticalPairsStep",
    "PromptClustersConfig",
    "PromptClustersStep",
    "RecipeTexts",
    "Removed",
    "RemovalStep",
    "RewardScoreStep",
    "SampleConfig",
    "SampleStep",
    "SelectConfig",
    "SelectStep",
    "SemanticDedupConfig",
    "SemanticDedupStep",
    "TextEmbedder",
    "missing_texts",
    "reported",
    "response_columns",
]
