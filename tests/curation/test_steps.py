"""The curation steps on the step contract: registered, counted by the base class, decisions keyed by ``_row``
so a whole-dataset decision applies per batch on the executor."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import curation.steps as S
import curation.steps.reward as steps_reward
from curation.embed import ModelNotFound
from curation.errors import CurationError
from curation.reward import BTRewardModel
from curation.steps.base import vector_array, vectors_of
from pipelines.executor import ROW, Executor
from schemas import records as R
from schemas.errors import PrefmillError
from schemas.registry import STEPS, BadSettings


def u(t):
    return {"role": "user", "content": t}


def a(t):
    return {"role": "assistant", "content": t}


def pairs(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    rows = [
        R.pairwise(
            [u(f"question {i} about topic {rng.integers(1000)}")],
            [a(f"a good answer number {i}")],
            [a(f"a bad answer number {i}")],
            annotator_id=f"ann-{i % 3}",
        )
        for i in range(n)
    ]
    for i, r in enumerate(rows):
        r.update(format="test", source_file="t.jsonl", source_row=i, run_id="run-1")
    return R.to_table(rows, "pairwise")


class FakeEmbedder:
    """A TextEmbedder without a model: a deterministic vector per text (picklable for Beam)."""

    def __init__(self):
        self.calls = []

    def __call__(self, texts):
        self.calls.append(len(texts))
        v = np.stack([np.random.default_rng(abs(hash(t)) % 2**32).standard_normal(8) for t in texts]).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True), S.EmbedCounts(texts=len(texts), unique=len(set(texts)))


def test_every_curation_step_is_registered_with_its_config():
    curate = {e.name: e for e in STEPS if e.extra.get("stage") == "curate"}
    assert {
        "sample",
        "exact_dedup",
        "near_identical_pairs",
        "near_dedup",
        "prompt_clusters",
        "cluster_cap",
        "embed",
        "embed_texts",
        "semantic_dedup",
        "select",
        "reward_score",
        "annotator_groups",
    } <= set(curate)
    assert curate["near_dedup"].settings({"threshold": 0.7}) == S.NearDedupConfig(threshold=0.7)
    assert curate["select"].shapes == ("pairwise",) and curate["select"].summary.startswith("Keep a budgeted")
    with pytest.raises(BadSettings, match="known: "):
        curate["cluster_cap"].settings({"cpa": 2})


def test_errors_share_the_project_base_class():
    assert issubclass(CurationError, PrefmillError) and issubclass(CurationError, ValueError)
    assert issubclass(ModelNotFound, PrefmillError) and issubclass(ModelNotFound, RuntimeError)
    with pytest.raises(CurationError, match="cap"):
        S.ClusterCapStep(S.ClusterCapConfig(cap=0))
    with pytest.raises(CurationError, match="method"):
        S.SelectStep(S.SelectConfig(method="magic"))


def test_sample_on_the_executor_equals_one_whole_table_decision(tmp_path, run_step):
    t = pairs(50)
    step = S.SampleStep(S.SampleConfig(n=12, seed=4))
    res = Executor(tmp_path / "w", batch_rows=7).run_table(t, [step], "pairwise")
    whole = run_step(S.SampleStep(S.SampleConfig(n=12, seed=4)), t)
    assert res.table("pairwise").column("record_id").to_pylist() == whole.kept.column("record_id").to_pylist()
    c = res.count("sample")
    assert (c.rows_in, c.rows_kept, c.rows_rejected, c.reasons) == (50, 12, 38, {"not_sampled": 38})
    rej = res.rejected()
    assert rej.column("duplicate_of").null_count == 38 and set(rej.column("step").to_pylist()) == {"sample"}
    assert run_step(S.SampleStep(S.SampleConfig(n=99)), t).rejected.num_rows == 0  # fewer rows than asked


def test_a_fit_step_refuses_a_table_without_the_row_index():
    with pytest.raises(PrefmillError, match="_row"):
        S.ExactDedupStep().fit_checked(pairs(3), "pairwise")


def test_embed_rows_attach_vectors_per_batch_and_selection_scores_the_kept_rows(tmp_path):
    t = pairs(60)
    fake = FakeEmbedder()
    embed = S.EmbedRowsStep(fake, tmp_path / "vectors")
    select = S.SelectStep(S.SelectConfig(method="random", budget=0.25, seed=1))
    res = Executor(tmp_path / "w", batch_rows=16).run_table(t, [embed, select], "pairwise")
    assert fake.calls == [60]  # one call for the whole table, in fit
    assert embed.embed_counts.texts == 60 and select.summary["selected"] == 15 == select.summary["n_target"]
    kept = res.table("pairwise", keep_working=True)
    assert kept.num_rows == 15 and kept.column(S.EMBEDDING).type == pa.list_(pa.float32(), 8)
    # each kept row got its own vector back (keyed by _row, across batches) and its selection score
    texts = S.RecipeTexts("pair")(t)
    want, _ = fake([texts[i] for i in kept.column(ROW).to_pylist()])
    np.testing.assert_array_equal(vectors_of(kept), want)
    assert kept.column("selection_score").null_count == 0
    assert S.EMBEDDING not in res.table("pairwise").column_names
    rej = res.rejected()
    assert rej.num_rows == 45 and set(rej.column("step").to_pylist()) == {"select_random"}
    assert set(rej.column("reason").to_pylist()) == {"not_selected:random"}
    assert [c.step for c in res.counts] == ["embed", "select_random"]
    assert not S.reported(embed) and S.reported(select)


def test_selection_keeps_the_selectors_own_reason_and_needs_its_strata_column(run_step):
    t = pairs(30)
    v = np.random.default_rng(0).standard_normal((30, 4)).astype(np.float32)
    v[3] = np.nan
    t = t.append_column(S.EMBEDDING, vector_array(v))
    res = run_step(S.SelectStep(S.SelectConfig(method="kcenter", budget=10, seed=0)), t)
    reasons = dict(zip(res.rejected.column("record_id").to_pylist(), res.rejected.column("reason").to_pylist()))
    assert reasons[t.column("record_id")[3].as_py()] == "bad_embedding"
    assert res.kept.num_rows == 10 and sum(r == "not_selected:kcenter" for r in reasons.values()) == 19
    with pytest.raises(CurationError, match="stratify"):
        run_step(S.SelectStep(S.SelectConfig(method="random", strata="nope")), t)
    strat = run_step(S.SelectStep(S.SelectConfig(method="random", budget=6, strata="annotator_id")), t)
    assert pc.value_counts(strat.kept.column("annotator_id")).field("counts").to_pylist() == [2, 2, 2]


def test_prompt_clusters_are_the_same_in_batches(tmp_path, run_step):
    t = pairs(40)
    t = pa.concat_tables([t, t.slice(0, 5)])  # repeated prompts in a later batch
    whole = run_step(S.PromptClustersStep(), t).kept.column("prompt_cluster").to_pylist()
    res = Executor(tmp_path / "w", batch_rows=9).run_table(t, [S.PromptClustersStep()], "pairwise")
    assert res.table("pairwise").column("prompt_cluster").to_pylist() == whole
    assert whole[40:] == whole[:5]


def test_reward_score_step_adds_calibrated_columns(run_step):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(8)
    model = BTRewardModel(weights=w, temperature=2.0)
    ec, er = rng.standard_normal((10, 8)).astype(np.float32), rng.standard_normal((10, 8)).astype(np.float32)
    t = pairs(10).append_column(steps_reward.CHOSEN, vector_array(ec))
    t = t.append_column(steps_reward.REJECTED, vector_array(er))
    out = run_step(S.RewardScoreStep(model, "m-1"), t).kept
    margin = np.asarray(out.column("rm_margin"))
    np.testing.assert_allclose(margin, (ec.astype(np.float64) - er) @ w, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(out.column("rm_prob")), 1 / (1 + np.exp(-margin / 2.0)))
    assert set(out.column("rm_model_id").to_pylist()) == {"m-1"}
