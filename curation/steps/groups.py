"""Annotator groups as a step: MaxMin-RLHF's EM (``curation.groups``) over the preference pairs in ``fit``,
then every row gets its key's ``annotator_group`` (null for a key EM never saw)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.errors import CurationError
from curation.groups import GroupModel, KChoice, choose_k, fit_groups
from curation.reward import DEFAULT_RECIPE, pair_texts, preference_pairs
from curation.steps.base import set_column
from curation.steps.embed import EmbedCounts, TextEmbedder
from schemas.registry import STEPS
from schemas.step import FitStep, StepResult

COLUMN = "annotator_group"


@dataclass(frozen=True)
class GroupsConfig:
    key: str = "annotator_id"  # the grouping key: annotator_id, format, source_file, prompt_cluster, ...
    k: int | None = None  # groups; None: chosen by held-out log-likelihood over 1..k_max
    k_max: int = 5
    recipe: str = DEFAULT_RECIPE
    sample: int | None = None  # fit on a seeded sample of this many preference pairs
    seed: int = 0


@STEPS.register(
    "annotator_groups",
    config=GroupsConfig,
    shapes=("pairwise",),
    tags=("annotator-grouped",),
    extra={"stage": "curate"},
)
class AnnotatorGroupsStep(FitStep[dict]):
    """Hard EM over the grouping key with one Bradley-Terry head per group; adds ``annotator_group``."""

    name = "annotator_groups"
    adds: ClassVar[tuple[str, ...]] = (COLUMN,)
    shapes: ClassVar[tuple[str, ...] | None] = ("pairwise",)

    def __init__(self, config: GroupsConfig, embed: TextEmbedder):
        super().__init__()
        self.config, self.embed = config, embed
        # Set by fit (on the driver): what a run reports.
        self.model: GroupModel | None = None
        self.choice: KChoice | None = None
        self.embed_counts: EmbedCounts | None = None
        self.pairs = 0

    def fit(self, table: pa.Table) -> dict:
        """key -> group, fitted on the (sampled) preference pairs."""
        c = self.config
        if c.key not in table.column_names:
            raise CurationError(f"no column {c.key!r} to group by")
        pairs = preference_pairs(table, c.sample, c.seed)
        keys = np.asarray([str(x) for x in pairs.column(c.key).to_pylist()], dtype=object)
        n_keys = len(set(keys.tolist()))
        if n_keys < 2:
            raise CurationError(f"grouping needs at least 2 distinct {c.key} values")
        vecs, self.embed_counts = self.embed(pair_texts(pairs, c.recipe))
        n = self.pairs = pairs.num_rows
        diffs = vecs[:n] - vecs[n:]
        if c.k is None:
            self.choice = choose_k(diffs, keys, k_range=range(1, min(c.k_max, n_keys) + 1), seed=c.seed)
            self.model = self.choice.models[self.choice.best_k]
        else:
            self.model = fit_groups(diffs, keys, c.k, seed=c.seed, grouping_key=c.key)
        return {str(a): int(g) for a, g in self.model.assign.items()}

    def process(self, batch: pa.Table, state: dict) -> StepResult:
        col = batch.column(self.config.key).combine_chunks()
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            keys = col.cast(pa.string()).fill_null("None")  # str(None): the key fit saw for a null
        else:
            keys = pa.array([str(x) for x in col.to_pylist()], pa.string())
        at = pc.index_in(keys, value_set=pa.array(list(state), pa.string()))
        groups = pa.array(list(state.values()), pa.int32()).take(at)
        return StepResult(set_column(batch, COLUMN, groups))
