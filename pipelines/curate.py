"""The curation pipelines over a pairwise table: the steps of ``curation.steps`` on the executor.

``run_curation``: sample → exact_dedup → near_identical_pairs → near_dedup → prompt_clusters → cluster_cap →
embed → semantic_dedup → select_<method> → validate. Whole-dataset steps (dedup, clustering, selection) fit
over every row at once on the driver — never per worker, which would miss duplicates that land on different
workers — and apply their decision per batch; the embed step computes only the texts the embedding store
lacks (``pipelines.embed``). Every removed row comes back as a rejected row with its step, reason and the
id it duplicates. ``run_reward_score`` and ``run_annotator_groups`` add reward-model and annotator-group
columns the same way. Nothing here counts rows: the steps do.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from curation.errors import CurationError
from curation.noise_step import DropNoisyStep
from curation.reward import BTRewardModel
from curation.select import METHODS
from curation.steps import (
    EMBEDDING,
    AnnotatorGroupsStep,
    ClusterCapConfig,
    ClusterCapStep,
    EmbedCounts,
    EmbedRowsStep,
    ExactDedupStep,
    GroupsConfig,
    NearDedupConfig,
    NearDedupStep,
    NearIdenticalConfig,
    NearIdenticalPairsStep,
    PromptClustersConfig,
    PromptClustersStep,
    RecipeTexts,
    RewardScoreStep,
    SampleConfig,
    SampleStep,
    SelectConfig,
    SelectStep,
    SemanticDedupConfig,
    SemanticDedupStep,
    reported,
    response_columns,
)
from pipelines import workers
from pipelines.embed import embed_texts
from pipelines.executor import ExecResult, Executor, drop_working
from schemas.step import Counts, FitStep, Step
from schemas.validation import ValidateStep

SHAPE = "pairwise"
BATCH_ROWS = 1 << 16  # rows per unit: the per-batch halves are cheap, and each unit costs a Beam bundle


@dataclass
class CurateParams:
    method: str = "isa"  # isa | random | kcenter | none
    budget: float = 0.1  # fraction in (0, 1] or a row count ≥ 1
    recipe: str = "pair"  # embedding text recipe
    model: str | None = None  # embedding model (default: the offline MiniLM package)
    device: str | None = None
    near_threshold: float = 0.8  # MinHash Jaccard for near-duplicates
    pair_identical_threshold: float = 0.9  # chosen ~ rejected similarity that carries no preference
    semantic_threshold: float = 0.95  # embedding cosine for semantic duplicates
    semantic_scope: str = "cluster"  # cluster (within prompt clusters) | all (blockwise index)
    cluster_threshold: float = 0.7  # MinHash Jaccard that puts prompts in one cluster
    cluster_cap: int | None = None  # max pairs per prompt cluster
    strata: str | None = None  # column to stratify selection by (e.g. annotator_id, format, origin)
    mode: str = "topk"  # ISA: topk | stochastic
    sample: int | None = None  # curate a seeded random sample of this many rows (CPU demos)
    drop_noisy: bool = False  # remove pairs `prefmill noise` flagged (reason label_noise)
    seed: int = 0
    beam_args: list[str] = field(default_factory=list)

    def check(self) -> None:
        """One clear error for settings no step could run with (before any work)."""
        if self.method not in (*METHODS, "none"):
            raise CurationError(f"unknown method {self.method!r}; expected isa, random, kcenter or none")
        if isinstance(self.budget, float) and not 0 < self.budget <= 1:
            raise CurationError(f"budget must be in (0, 1] (a fraction) or a row count ≥ 1, got {self.budget}")

    @property
    def embeds(self) -> bool:
        return self.method != "none" or self.semantic_threshold < 1.0


@dataclass
class CurateOutcome:
    kept: pa.Table
    rejected: pa.Table  # schemas.step.REJECTED: every removed row with its step, reason and duplicate_of
    counts: list[Counts]  # the deciding steps' own counts in pipeline order (the run's run_steps)
    embed: EmbedCounts | None = None
    selection: dict = field(default_factory=dict)

    @property
    def steps(self) -> list[dict]:
        """{step, rows_in, rows_kept, rows_rejected, rows_duplicate} per deciding step (for summaries)."""
        return [
            {
                "step": c.step,
                "rows_in": c.rows_in,
                "rows_kept": c.rows_kept,
                "rows_rejected": c.rows_rejected,
                "rows_duplicate": c.rows_duplicate,
            }
            for c in self.counts
        ]

    def count(self, step: str) -> Counts:
        return next(c for c in self.counts if c.step == step)


def _embedder(store_root: str | os.PathLike, recipe: str, work: Path, **kw: Any) -> Any:
    return partial(embed_texts, store_root=str(store_root), recipe=recipe, work=str(work / "embed"), **kw)


def curate_steps(
    params: CurateParams, n_rows: int, store_root: str | os.PathLike, work: str | os.PathLike
) -> list[Step | FitStep[Any]]:
    """The curation steps for ``params`` over a table of ``n_rows`` (steps that would do nothing are left out)."""
    work = Path(work)
    steps: list[Step | FitStep[Any]] = []
    if params.sample is not None and params.sample < n_rows:
        steps.append(SampleStep(SampleConfig(params.sample, params.seed)))
    if params.drop_noisy:
        # Before dedup and selection: a flagged pair is never kept as a group's representative, and the
        # budget is not spent on it; after the sample, so --sample N curates the same rows minus the noisy ones.
        steps.append(DropNoisyStep())
    steps += [
        ExactDedupStep(),
        NearIdenticalPairsStep(NearIdenticalConfig(params.pair_identical_threshold)),
        NearDedupStep(NearDedupConfig(params.near_threshold)),
        PromptClustersStep(PromptClustersConfig(params.cluster_threshold)),
    ]
    if params.cluster_cap:
        steps.append(ClusterCapStep(ClusterCapConfig(params.cluster_cap, params.seed)))
    if params.embeds:
        embed = _embedder(
            store_root, params.recipe, work, model=params.model, device=params.device, beam_args=params.beam_args
        )
        steps += [
            EmbedRowsStep(embed, work / "vectors", {EMBEDDING: RecipeTexts(params.recipe)}),
            SemanticDedupStep(SemanticDedupConfig(params.semantic_threshold, params.semantic_scope)),
        ]
        if params.method != "none":
            steps.append(
                SelectStep(SelectConfig(params.method, params.budget, params.seed, params.mode, params.strata))
            )
    steps.append(ValidateStep())
    return steps


def _run(
    table: pa.Table,
    steps: Sequence[Step | FitStep[Any]],
    work: Path,
    run_id: str,
    beam_args: list[str] | None = None,
) -> tuple[ExecResult, pa.Table, list[Counts]]:
    """(the executor's result, the kept rows, the reported steps' counts)."""
    # In-process unless the Beam options ask for workers: the per-batch halves are cheap next to the fits.
    ex = Executor(
        work, run_id=run_id, beam_args=beam_args, batch_rows=BATCH_ROWS, workers=workers.parallel_workers(0, beam_args)
    )
    result = ex.run_table(table, steps, SHAPE)
    kept = result.table(SHAPE) if result.shapes.get(SHAPE) else drop_working(table.slice(0, 0))
    listed = {s.step_name for s in steps if reported(s)}
    return result, kept, [c for c in result.counts if c.step in listed]


def run_curation(
    table: pa.Table, store_root: str | os.PathLike, params: CurateParams, work: str | os.PathLike, run_id: str = ""
) -> CurateOutcome:
    """Curate ``table`` (pairwise rows); ``work`` is scratch space (the run's)."""
    params.check()
    if table.num_rows == 0:
        raise CurationError("the dataset has no pairwise rows to curate")
    work = Path(work)
    steps = curate_steps(params, table.num_rows, store_root, work)
    result, kept, counts = _run(table, steps, work / "curate", run_id, params.beam_args)
    embed = next((s.embed_counts for s in steps if isinstance(s, EmbedRowsStep)), None)
    selection = next((s.summary for s in steps if isinstance(s, SelectStep)), {})
    return CurateOutcome(kept, result.rejected(), counts, embed, selection)


@dataclass
class ColumnsOutcome:
    """A pipeline that adds columns to every row: the rows, the steps' counts, and the embed step's counts."""

    table: pa.Table
    counts: list[Counts]
    embed: EmbedCounts | None = None


def run_reward_score(
    table: pa.Table,
    model: BTRewardModel,
    model_id: str,
    store_root: str | os.PathLike,
    work: str | os.PathLike,
    run_id: str = "",
) -> ColumnsOutcome:
    """``rm_prob``, ``rm_margin`` and ``rm_model_id`` on every pair (embeddings under ``bt:<recipe>``, cached)."""
    work = Path(work)
    emb = EmbedRowsStep(
        _embedder(store_root, f"bt:{model.recipe}", work), work / "vectors", response_columns(model.recipe)
    )
    _, out, counts = _run(table, [emb, RewardScoreStep(model, model_id)], work / "score", run_id)
    return ColumnsOutcome(out, counts, emb.embed_counts)


def run_annotator_groups(
    table: pa.Table, config: GroupsConfig, store_root: str | os.PathLike, work: str | os.PathLike, run_id: str = ""
) -> tuple[ColumnsOutcome, AnnotatorGroupsStep]:
    """``annotator_group`` on every pair from MaxMin EM over ``config.key``; the fitted step says what it found."""
    work = Path(work)
    step = AnnotatorGroupsStep(config, _embedder(store_root, f"bt:{config.recipe}", work))
    _, out, counts = _run(table, [step], work / "groups", run_id)
    return ColumnsOutcome(out, counts, step.embed_counts), step
