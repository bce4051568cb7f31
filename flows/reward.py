"""Reward-model and annotator-group jobs over a dataset version's human pairs.

`train_reward` fits the embedding Bradley–Terry head (curation/reward.py) on the non-tie pairs and
stores it in the warehouse as a versioned model (its id is a content hash); `score_dataset`
publishes a child version with `rm_prob` / `rm_margin` columns that later filters and judge
agreement checks use. `fit_annotator_groups` runs MaxMin-RLHF's hard EM (curation/groups.py)
over annotators (or sources, or prompt clusters), chooses K by held-out log-likelihood, stores
key → group, and publishes a child version with an `annotator_group` column that selection can
stratify by so a minority group is not erased.
"""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc

from curation.reward import DEFAULT_RECIPE, BTRewardModel, pair_texts, preference_pairs
from curation.steps import GroupsConfig
from pipelines.curate import run_annotator_groups, run_reward_score
from pipelines.embed import embed_texts
from warehouse import Warehouse, run_counts, step_counts


def train_reward(
    wh: Warehouse,
    dataset: str,
    version: str | None = None,
    *,
    recipe: str = DEFAULT_RECIPE,
    model: str | None = None,
    sample: int | None = None,
    seed: int = 0,
    C: float | None = None,
) -> dict:
    version_id = wh.resolve_version(dataset, version)
    with wh.run("reward_train", dataset, {"version": version_id, "recipe": recipe, "sample": sample}) as run:
        pairs = preference_pairs(wh.read(dataset, "pairwise", version_id), sample, seed)
        vecs, counts = embed_texts(pair_texts(pairs, recipe), wh.root, f"bt:{recipe}", model=model, work=run.work)
        n = pairs.num_rows
        rm = BTRewardModel.fit(vecs[:n] - vecs[n:], C=C, seed=seed, recipe=recipe)
        model_id = wh.put_model(
            "bt_reward",
            dataset,
            version_id,
            rm.to_bytes(),
            params={"recipe": recipe, "C": rm.C, "temperature": rm.temperature, "seed": seed},
            metrics=rm.train_stats,
        )
        run.metrics(
            {
                "model_id": model_id,
                "pairs": n,
                "embed_computed": counts.computed,
                "embed_cache_hits": counts.cache_hits,
                **_jsonable(rm.train_stats),
            }
        )
        run.finish(rows_read=n)
    return {"run_id": run.run_id, "model_id": model_id, "pairs": n, "stats": _jsonable(rm.train_stats)}


def score_dataset(wh: Warehouse, dataset: str, model_id: str, version: str | None = None) -> dict:
    """A child version whose pairs carry rm_prob (calibrated P(chosen ≻ rejected)) and rm_margin."""
    blob, _ = wh.get_model(model_id)
    rm = BTRewardModel.from_bytes(blob)
    parent = wh.resolve_version(dataset, version)
    with wh.run("reward_score", dataset, {"parent_version": parent, "model_id": model_id}) as run:
        out = run_reward_score(wh.read(dataset, "pairwise", parent), rm, model_id, wh.root, run.work, run.run_id)
        res = run.commit_derived(
            parent,
            {"pairwise": out.table},
            None,
            run_counts(out.counts),
            step_counts(out.counts),
            {"model_id": model_id},
        )
        labelled = pc.equal(out.table.column("label"), "chosen_better").to_numpy(zero_copy_only=False)
        prob = out.table.column("rm_prob").to_numpy()
        run.metrics(
            {
                "embed_computed": out.embed.computed if out.embed else 0,
                "embed_cache_hits": out.embed.cache_hits if out.embed else 0,
                "rm_accuracy_on_labels": float(np.mean(prob[labelled] > 0.5)) if out.table.num_rows else None,
            }
        )
    return {"run_id": run.run_id, "version_id": res.version_id, "rows": out.table.num_rows}


def fit_annotator_groups(
    wh: Warehouse,
    dataset: str,
    version: str | None = None,
    *,
    key: str = "annotator_id",
    k: int | None = None,
    k_max: int = 5,
    recipe: str = DEFAULT_RECIPE,
    sample: int | None = None,
    seed: int = 0,
) -> dict:
    """Hard EM over `key` (annotator_id, format, source_file, prompt_cluster, ...) with one BT head per group."""
    parent = wh.resolve_version(dataset, version)
    config = GroupsConfig(key=key, k=k, k_max=k_max, recipe=recipe, sample=sample, seed=seed)
    with wh.run("annotator_groups", dataset, {"parent_version": parent, "key": key, "k": k}) as run:
        out, step = run_annotator_groups(wh.read(dataset, "pairwise", parent), config, wh.root, run.work, run.run_id)
        assert step.model is not None  # fitted
        assign = {str(a): int(g) for a, g in step.model.assign.items()}
        wh.put_groups(run.run_id, dataset, parent, key, assign)
        res = run.commit_derived(
            parent,
            {"pairwise": out.table},
            None,
            run_counts(out.counts),
            step_counts(out.counts),
            {"grouping_key": key},
        )
        choice = step.choice
        summary = {
            "run_id": run.run_id,
            "version_id": res.version_id,
            "k": step.model.k,
            "groups_used": step.model.groups_used,
            "assign": assign,
            "grouping_key": key,
            "heldout_loglik": {int(a): float(b) for a, b in (choice.heldout_loglik.items() if choice else [])},
        }
        run.metrics({kk: v for kk, v in summary.items() if kk != "run_id"})
    return summary


def _jsonable(d: dict) -> dict:
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, np.generic):
            v = v.item()
        elif isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, dict):
            v = _jsonable(v)
        out[k] = v
    return out
