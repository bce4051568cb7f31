"""The curation pipeline over a pairwise table: dedup → embed → cluster → select.

Per-record work (embedding) runs as a Beam pipeline (pipelines/embed.py: model once per worker,
length-sorted batches, cached by text hash); whole-dataset steps (MinHash LSH over the whole
table, semantic dedup, ISA/k-center selection) are vectorised numpy over the full table — never
per worker, which would miss duplicates that land on different workers. Every removed row comes
back as a removal record with its step, reason and the id it duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from curation.dedup import (
    REMOVALS,
    DedupResult,
    cap_per_cluster,
    exact_dedup,
    near_dedup,
    near_identical_pairs,
    prompt_clusters,
    semantic_dedup,
)
from curation.errors import CurationError
from curation.recipes import texts_for
from curation.select import select
from pipelines.embed import EmbedCounts, embed_texts


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
    seed: int = 0
    beam_args: list[str] = field(default_factory=list)


@dataclass
class CurateOutcome:
    kept: pa.Table
    removals: pa.Table
    steps: list[dict]  # {step, rows_in, rows_kept, rows_rejected, rows_duplicate}
    embed: EmbedCounts | None = None
    selection: dict = field(default_factory=dict)


def _with_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    """Set or replace a column: a curated version may be curated again."""
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


def _not_kept(table: pa.Table, keep: np.ndarray, step: str, reason: str) -> DedupResult:
    """Rows outside ``keep`` as removal records (not duplicates of anything)."""
    drop = np.flatnonzero(~keep)
    removed = pa.table(
        {
            "record_id": table.column("record_id").take(pa.array(drop, pa.int64())),
            "step": pa.array([step] * len(drop), pa.string()),
            "reason": pa.array([reason] * len(drop), pa.string()),
            "duplicate_of": pa.nulls(len(drop), pa.string()),
            "detail": pa.nulls(len(drop), pa.string()),
        },
        schema=REMOVALS,
    )
    return DedupResult(table.filter(pa.array(keep)), removed, {})


def run_curation(table: pa.Table, store_root: str, params: CurateParams) -> CurateOutcome:
    steps: list[dict] = []
    removed: list[pa.Table] = []

    def apply(res: DedupResult, name: str) -> pa.Table:
        steps.append({"step": name, **res.step_counts})
        removed.append(res.removed)
        return res.kept

    if table.num_rows == 0:
        raise CurationError("the dataset has no pairwise rows to curate")
    if params.sample is not None and params.sample < table.num_rows:
        rng = np.random.default_rng(params.seed)
        keep = np.zeros(table.num_rows, bool)
        keep[rng.choice(table.num_rows, params.sample, replace=False)] = True
        table = apply(_not_kept(table, keep, "sample", "not_sampled"), "sample")
    table = apply(exact_dedup(table, recipe="pair"), "exact_dedup")
    table = apply(near_identical_pairs(table, params.pair_identical_threshold), "near_identical_pairs")
    table = apply(near_dedup(table, recipe="pair", threshold=params.near_threshold), "near_dedup")
    table = prompt_clusters(table, threshold=params.cluster_threshold)
    if params.cluster_cap:
        table = apply(cap_per_cluster(table, params.cluster_cap, seed=params.seed), "cluster_cap")

    embed_counts = None
    selection: dict = {}
    if params.method != "none" or params.semantic_threshold < 1.0:
        vectors, embed_counts = embed_texts(
            texts_for(table, params.recipe),
            store_root,
            params.recipe,
            model=params.model,
            device=params.device,
            beam_args=params.beam_args,
        )
        within = table.column("prompt_cluster") if params.semantic_scope == "cluster" else None
        sem = semantic_dedup(table, vectors, params.semantic_threshold, within=within)
        keep_mask = np.isin(
            table.column("record_id").to_numpy(zero_copy_only=False),
            sem.kept.column("record_id").to_numpy(zero_copy_only=False),
        )
        table, vectors = apply(sem, "semantic_dedup"), vectors[keep_mask]
        if params.method != "none":
            strata = None
            if params.strata:
                if params.strata not in table.column_names:
                    raise CurationError(f"no column {params.strata!r} to stratify by")
                strata = np.asarray(table.column(params.strata).to_pylist(), dtype=object)
            res = select(params.method, vectors, params.budget, seed=params.seed, mode=params.mode, strata=strata)
            table = _with_column(table, "selection_score", pa.array(res.scores, pa.float64()))
            picked = _not_kept(table, res.selected, f"select_{params.method}", f"not_selected:{params.method}")
            # Keep the selector's own reasons (e.g. bad_embedding) where it gave one.
            reasons = np.asarray(res.reasons, dtype=object)[~res.selected]
            if len(reasons):
                picked.removed = picked.removed.set_column(
                    2, "reason", pa.array([r or f"not_selected:{params.method}" for r in reasons], pa.string())
                )
            table = apply(picked, f"select_{params.method}")
            selection = {
                "method": res.method,
                "n_target": res.n_target,
                **res.counts,
                "info": res.info,
                "strata": res.strata,
            }
    removals = pa.concat_tables(removed) if removed else REMOVALS.empty_table()
    return CurateOutcome(table, removals, steps, embed_counts, selection)
