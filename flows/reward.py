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

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.errors import CurationError
from curation.groups import choose_k, fit_groups
from curation.recipes import text_array
from curation.reward import DEFAULT_RECIPE, BTRewardModel, response_texts
from pipelines.embed import embed_texts
from warehouse import RunCounts, StepCount, Warehouse


@dataclass
class PairEmbeddings:
    table: pa.Table  # the non-tie pairs used
    chosen: np.ndarray
    rejected: np.ndarray
    computed: int
    cache_hits: int


def embed_pairs(
    wh: Warehouse,
    table: pa.Table,
    recipe: str = DEFAULT_RECIPE,
    model: str | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> PairEmbeddings:
    """Embeddings of (prompt, chosen) and (prompt, rejected) for the non-tie pairs (cached)."""
    table = table.filter(pc.equal(table.column("label"), "chosen_better"))
    if sample is not None and sample < table.num_rows:
        idx = np.sort(np.random.default_rng(seed).choice(table.num_rows, sample, replace=False))
        table = table.take(pa.array(idx))
    if table.num_rows == 0:
        raise CurationError("no non-tie pairs to learn from")
    prompts = text_array(table, "prompt").to_pylist()
    texts = response_texts(prompts, text_array(table, "chosen").to_pylist(), recipe) + response_texts(
        prompts, text_array(table, "rejected").to_pylist(), recipe
    )
    vecs, counts = embed_texts(texts, str(wh.root), f"bt:{recipe}", model=model)
    n = table.num_rows
    return PairEmbeddings(table, vecs[:n], vecs[n:], counts.computed, counts.cache_hits)


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
    run_id = wh.begin_run("reward_train", dataset, {"version": version_id, "recipe": recipe, "sample": sample})
    try:
        pe = embed_pairs(wh, wh.read(dataset, "pairwise", version_id), recipe, model, sample, seed)
        rm = BTRewardModel.fit(pe.chosen - pe.rejected, C=C, seed=seed, recipe=recipe)
        model_id = wh.put_model(
            "bt_reward",
            dataset,
            version_id,
            rm.to_bytes(),
            params={"recipe": recipe, "C": rm.C, "temperature": rm.temperature, "seed": seed},
            metrics=rm.train_stats,
        )
        wh.set_run_metrics(
            run_id,
            {
                "model_id": model_id,
                "pairs": pe.table.num_rows,
                "embed_computed": pe.computed,
                "embed_cache_hits": pe.cache_hits,
                **_jsonable(rm.train_stats),
            },
        )
        wh.finish_run(run_id, rows_read=pe.table.num_rows)
    except BaseException as e:
        wh.fail_run(run_id, f"{type(e).__name__}: {e}")
        raise
    return {"run_id": run_id, "model_id": model_id, "pairs": pe.table.num_rows, "stats": _jsonable(rm.train_stats)}


def score_dataset(wh: Warehouse, dataset: str, model_id: str, version: str | None = None) -> dict:
    """A child version whose pairs carry rm_prob (calibrated P(chosen ≻ rejected)) and rm_margin."""
    blob, info = wh.get_model(model_id)
    rm = BTRewardModel.from_bytes(blob)
    parent = wh.resolve_version(dataset, version)
    run_id = wh.begin_run("reward_score", dataset, {"parent_version": parent, "model_id": model_id})
    try:
        table = wh.read(dataset, "pairwise", parent)
        prompts = text_array(table, "prompt").to_pylist()
        texts = response_texts(prompts, text_array(table, "chosen").to_pylist(), rm.recipe) + response_texts(
            prompts, text_array(table, "rejected").to_pylist(), rm.recipe
        )
        vecs, counts = embed_texts(texts, str(wh.root), f"bt:{rm.recipe}")
        n = table.num_rows
        prob, margin = rm.prob(vecs[:n], vecs[n:]), rm.margin(vecs[:n], vecs[n:])
        for name, values in (("rm_prob", prob), ("rm_margin", margin)):
            col = pa.array(np.asarray(values, np.float64))
            table = (
                table.set_column(table.column_names.index(name), name, col)
                if name in table.column_names
                else table.append_column(name, col)
            )
        table = _with_const(table, "rm_model_id", model_id)
        counts_ = RunCounts(records_read=n, rows_read=n, rows_kept=n, rows_rejected=0)
        res = wh.commit_derived(
            run_id,
            dataset,
            parent,
            {"pairwise": table},
            None,
            counts_,
            [StepCount("reward_score", n, n)],
            {"model_id": model_id},
        )
        wh.set_run_metrics(
            run_id,
            {
                "embed_computed": counts.computed,
                "embed_cache_hits": counts.cache_hits,
                "rm_accuracy_on_labels": float(
                    np.mean(np.asarray(prob)[np.asarray(table.column("label").to_pylist()) == "chosen_better"] > 0.5)
                )
                if n
                else None,
            },
        )
    except BaseException as e:
        wh.fail_run(run_id, f"{type(e).__name__}: {e}")
        raise
    return {"run_id": run_id, "version_id": res.version_id, "rows": n}


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
    run_id = wh.begin_run("annotator_groups", dataset, {"parent_version": parent, "key": key, "k": k})
    try:
        table = wh.read(dataset, "pairwise", parent)
        if key not in table.column_names:
            raise CurationError(f"no column {key!r} to group by")
        pe = embed_pairs(wh, table, recipe, None, sample, seed)
        keys = np.asarray([str(x) for x in pe.table.column(key).to_pylist()], dtype=object)
        if len(set(keys.tolist())) < 2:
            raise CurationError(f"grouping needs at least 2 distinct {key} values")
        diffs = pe.chosen - pe.rejected
        choice = None
        if k is None:
            choice = choose_k(diffs, keys, k_range=range(1, min(k_max, len(set(keys.tolist()))) + 1), seed=seed)
            gm = choice.models[choice.best_k]
        else:
            gm = fit_groups(diffs, keys, k, seed=seed, grouping_key=key)
        assign = {str(a): int(g) for a, g in gm.assign.items()}
        wh.put_groups(run_id, dataset, parent, key, assign)
        all_keys = [str(x) for x in table.column(key).to_pylist()]
        groups = pa.array([assign.get(x) for x in all_keys], pa.int32())
        out = (
            table.set_column(table.column_names.index("annotator_group"), "annotator_group", groups)
            if "annotator_group" in table.column_names
            else table.append_column("annotator_group", groups)
        )
        n = table.num_rows
        res = wh.commit_derived(
            run_id,
            dataset,
            parent,
            {"pairwise": out},
            None,
            RunCounts(records_read=n, rows_read=n, rows_kept=n, rows_rejected=0),
            [StepCount("annotator_groups", n, n)],
            {"grouping_key": key},
        )
        summary = {
            "run_id": run_id,
            "version_id": res.version_id,
            "k": gm.k,
            "groups_used": gm.groups_used,
            "assign": assign,
            "grouping_key": key,
            "heldout_loglik": {int(a): float(b) for a, b in (choice.heldout_loglik.items() if choice else [])},
        }
        wh.set_run_metrics(run_id, {kk: v for kk, v in summary.items() if kk not in ("run_id",)})
    except BaseException as e:
        wh.fail_run(run_id, f"{type(e).__name__}: {e}")
        raise
    return summary


def _with_const(table: pa.Table, name: str, value: str) -> pa.Table:
    col = pa.array([value] * table.num_rows, pa.string())
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, col)
    return table.append_column(name, col)


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
