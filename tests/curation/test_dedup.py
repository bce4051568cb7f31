"""Dedup steps and text recipes over canonical tables built with schemas.records builders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curation import dedup as D
from curation.recipes import RECIPES, text_array
from curation.steps import (
    EMBEDDING,
    ClusterCapConfig,
    ClusterCapStep,
    ExactDedupConfig,
    ExactDedupStep,
    NearDedupConfig,
    NearDedupStep,
    NearIdenticalConfig,
    NearIdenticalPairsStep,
    PromptClustersConfig,
    PromptClustersStep,
    SemanticDedupConfig,
    SemanticDedupStep,
)
from curation.steps.base import vector_array
from pipelines.executor import Executor
from schemas import records as R
from schemas.step import REJECTED, StepResult

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"


def u(t):
    return {"role": "user", "content": t}


def a(t):
    return {"role": "assistant", "content": t}


def texts_for(t: pa.Table, recipe: str) -> list[str]:
    return text_array(t, recipe).to_pylist()


def table(rows: list[dict], shape: str = "pairwise") -> pa.Table:
    for i, r in enumerate(rows):
        r.update(format="test", source_file="test.jsonl", source_row=i, run_id="run-1")
    return R.to_table(rows, shape)


@pytest.fixture(scope="module")
def dpo() -> list[dict]:
    rows = json.loads((DATA / "llamafactory_dpo_en_demo" / "dpo_en_demo.json").read_text(encoding="utf-8"))
    rows = [r for r in rows if len(r["chosen"]["value"].split()) >= 120 and len(r["rejected"]["value"].split()) >= 60]
    return [
        {"prompt": r["conversations"][-1]["value"], "chosen": r["chosen"]["value"], "rejected": r["rejected"]["value"]}
        for r in rows[:12]
    ]


def _pair(r: dict, **kw) -> dict:
    return R.pairwise([u(r["prompt"])], [a(r["chosen"])], [a(r["rejected"])], **kw)


def _check_removals(res: StepResult, n_in: int) -> None:
    assert res.rejected.schema == REJECTED
    assert res.kept.num_rows + res.rejected.num_rows == n_in
    kept = set(res.kept.column("record_id").to_pylist())
    for dup in res.rejected.column("duplicate_of").to_pylist():
        assert dup is None or dup in kept  # a duplicate points at a row that survives


def _with_vectors(t: pa.Table, v: np.ndarray) -> pa.Table:
    return t.append_column(EMBEDDING, vector_array(v))


# ------------------------------------------------------------------ recipes


def test_recipes_match_conversation_text_for_every_shape():
    sys_ = {"role": "system", "content": "Be brief."}
    prompt = [sys_, u("first question"), a("an answer"), u("follow-up question")]
    pw = table([R.pairwise(prompt, [a("good")], [a("bad")])])
    bn = table([R.binary(prompt, [a("fine")], label=True)], "binary")
    rt = table([R.ratings(prompt, [a("rated")], {"helpful": 4.0})], "ratings")
    lw = table(
        [
            R.listwise(prompt, [[a("c0")], [a("c1")], [a("c2")]], ranks=[2, 0, 1]),
            R.listwise([u("p")], [[a("d0")], [a("d1")]], scores=[0.2, 0.9]),
        ],
        "listwise",
    )
    for t in (pw, bn, rt, lw):
        assert texts_for(t, "prompt")[0] == R.conversation_text(prompt)
        assert texts_for(t, "prompt_last_turn")[0] == "follow-up question"
    assert texts_for(pw, "pair") == ["\n\n".join([R.conversation_text(prompt), "good", "bad"])]
    assert (texts_for(pw, "chosen"), texts_for(pw, "rejected")) == (["good"], ["bad"])
    assert texts_for(bn, "completion") == ["fine"] and texts_for(rt, "completion") == ["rated"]
    assert texts_for(lw, "chosen") == ["c1", "d1"] and texts_for(lw, "rejected") == ["c0", "d0"]
    assert texts_for(lw, "pair")[1] == "p\n\nd0\n\nd1"
    with pytest.raises(ValueError):
        texts_for(bn, "chosen")
    with pytest.raises(ValueError):
        texts_for(pw, "completion")
    with pytest.raises(ValueError):
        texts_for(pw, "nope")
    assert set(RECIPES) >= {"prompt", "chosen", "rejected", "completion", "pair", "prompt_last_turn"}


def test_prompt_last_turn_without_user_message():
    t = table([R.pairwise([a("assistant opener")], [a("x")], [a("y")])])
    assert texts_for(t, "prompt_last_turn") == ["assistant opener"]


# ------------------------------------------------------------------ exact


def test_exact_dedup_reasons_and_annotators(dpo, run_step):
    r0, r1 = dpo[0], dpo[1]
    rows = [
        _pair(r0),
        _pair(r0),
        _pair(r0, policy="ranking->pairs:all"),
        _pair(r0, annotator_id="ann-2"),
        _pair(r1),
        _pair(r1, label="tie"),
    ]
    t = table(rows)
    res = run_step(ExactDedupStep(), t)
    _check_removals(res, 6)
    rm = res.rejected.to_pylist()
    assert [(r["reason"], r["duplicate_of"]) for r in rm] == [
        ("duplicate_record", rows[0]["record_id"]),
        ("exact_duplicate", rows[0]["record_id"]),
    ]
    assert all(r["step"] == "exact_dedup" for r in rm)
    # another annotator's judgement and a different label are information, not duplicates
    assert {rows[3]["record_id"], rows[5]["record_id"]} <= set(res.kept.column("record_id").to_pylist())
    assert run_step(ExactDedupStep(ExactDedupConfig(by=())), t).kept.num_rows == 2  # content only
    assert run_step(ExactDedupStep(), t).kept.num_rows == 4 == (~D.exact_duplicates(t)[0]).sum()


def test_exact_dedup_empty_table():
    remove, _, _, _ = D.exact_duplicates(table([]))
    assert remove.shape == (0,)


# ------------------------------------------------------------------ near


def test_near_dedup_finds_edited_copies(dpo, run_step):
    rows = [_pair(r) for r in dpo[:8]]
    words = dpo[0]["chosen"].split(" ")
    words[len(words) // 2] += "x"  # one typo in a long response
    rows.append(R.pairwise([u(dpo[0]["prompt"] + "  ")], [a(" ".join(words))], [a(dpo[0]["rejected"])]))
    t = table(rows)
    res = run_step(NearDedupStep(NearDedupConfig(threshold=0.8, recipe="pair")), t)
    _check_removals(res, 9)
    rm = {r["record_id"]: r for r in res.rejected.to_pylist()}
    assert set(rm) == {rows[8]["record_id"]}
    assert rm[rows[8]["record_id"]]["duplicate_of"] == rows[0]["record_id"]
    assert rm[rows[8]["record_id"]]["reason"] == "near_duplicate"
    detail = json.loads(rm[rows[8]["record_id"]]["detail"])
    assert detail["jaccard"] >= 0.8 and detail["group_size"] == 2
    assert run_step(ExactDedupStep(), t).rejected.num_rows == 0  # the copy is not exact
    assert not D.near_duplicates(t, threshold=0.999)[0].any()


def test_near_dedup_on_prompts_only(dpo, run_step):
    rows = [_pair(dpo[0]), R.pairwise([u(dpo[0]["prompt"])], [a("short other answer")], [a("another")])]
    t = table(rows)
    assert run_step(NearDedupStep(NearDedupConfig(recipe="pair")), t).rejected.num_rows == 0
    res = run_step(NearDedupStep(NearDedupConfig(recipe="prompt")), t)
    assert res.rejected.column("duplicate_of").to_pylist() == [rows[0]["record_id"]]


# ------------------------------------------------------------------ semantic


def _unit(v):
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_semantic_dedup_threshold_bad_vectors_and_clusters(dpo, run_step):
    rows = [_pair(r) for r in dpo[:6]]
    t = table(rows)
    rng = np.random.default_rng(0)
    v = _unit(rng.standard_normal((6, 16)).astype(np.float32))
    v[1] = _unit((v[0] + 0.05 * rng.standard_normal(16))[None])[0]  # cosine ~0.99 with row 0
    v[2] = v[0] * 3.0  # same direction, not unit length
    v[4] = np.nan
    v[5] = 0.0
    cos01 = float(v[0] @ v[1])
    everywhere = SemanticDedupStep(SemanticDedupConfig(threshold=0.95, scope="all"))
    res = run_step(everywhere, _with_vectors(t, v))
    _check_removals(res, 6)
    rm = res.rejected.to_pylist()
    assert [r["record_id"] for r in rm] == [rows[1]["record_id"], rows[2]["record_id"]]
    assert all(r["duplicate_of"] == rows[0]["record_id"] and r["reason"] == "semantic_duplicate" for r in rm)
    assert all(r["step"] == "semantic_dedup" for r in rm)
    assert json.loads(rm[0]["detail"])["cosine"] == pytest.approx(cos01, abs=1e-3)
    # NaN and zero rows are kept and never matched
    assert {rows[4]["record_id"], rows[5]["record_id"]} <= set(res.kept.column("record_id").to_pylist())
    # above the pair's cosine nothing but the exact direction matches
    remove, _, _, _ = D.semantic_duplicates(t, v, threshold=(cos01 + 1) / 2)
    assert np.flatnonzero(remove).tolist() == [2]
    # within clusters (the default scope): rows 0 and 1 in different clusters are not compared
    clustered = t.append_column("prompt_cluster", pa.array(["a", "b", "a", "c", "c", "c"]))
    res = run_step(SemanticDedupStep(SemanticDedupConfig(threshold=0.95)), _with_vectors(clustered, v))
    assert res.rejected.column("record_id").to_pylist() == [rows[2]["record_id"]]
    with pytest.raises(ValueError):
        D.semantic_duplicates(t, v[:3])


@pytest.mark.parametrize("grouped", [False, True])
def test_similar_pairs_blockwise_equals_brute_force(grouped):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((12, 8))
    x = np.repeat(base, 6, axis=0) + 0.3 * rng.standard_normal((72, 8))  # 12 tight groups of 6
    x = x[rng.permutation(72)]
    groups = rng.integers(0, 4, 72) if grouped else None
    xn = _unit(x)
    sim = xn @ xn.T
    want = {
        (i, j)
        for i in range(72)
        for j in range(i + 1, 72)
        if sim[i, j] >= 0.9 and (groups is None or groups[i] == groups[j])
    }
    assert want  # the data has pairs to find
    for block in (5, 16, 1000):  # tiles, packing of small groups, one block
        pairs, cos = D.similar_pairs(x, 0.9, groups, block=block)
        assert {tuple(p) for p in pairs} == want
        np.testing.assert_allclose(cos, sim[pairs[:, 0], pairs[:, 1]], atol=1e-5)


# ------------------------------------------------------------------ pair-aware rules


def test_near_identical_pairs(run_step):
    rows = [
        R.pairwise([u("q1")], [a("The answer is 42.")], [a("the answer is 42!")]),
        R.pairwise([u("q2")], [a("Paris is the capital of France.")], [a("I don't know.")]),
        R.pairwise(
            [u("q3")],
            [
                a(
                    "Sure. Step one: preheat the oven to 200C. Step two: knead the dough for ten "
                    "minutes. Step three: bake for 20 minutes and let it cool on a rack."
                )
            ],
            [
                a(
                    "Sure. Step one: preheat the oven to 200C. Step two: knead the dough for ten "
                    "minutes. Step three: bake for 25 minutes and let it cool on a rack."
                )
            ],
        ),
    ]
    t = table(rows)
    res = run_step(NearIdenticalPairsStep(NearIdenticalConfig(threshold=0.9)), t)
    _check_removals(res, 3)
    rm = res.rejected.to_pylist()
    assert [r["record_id"] for r in rm] == [rows[0]["record_id"], rows[2]["record_id"]]
    assert all(r["reason"] == "near_identical_pair" and r["duplicate_of"] is None for r in rm)
    sims = [json.loads(r["detail"])["similarity"] for r in rm]
    assert sims[0] == 1.0 and 0.9 <= sims[1] < 1.0
    assert run_step(NearIdenticalPairsStep(NearIdenticalConfig(threshold=0.99)), t).rejected.num_rows == 1
    with pytest.raises(ValueError):
        D.near_identical(table([R.binary([u("q")], [a("x")], label=True)], "binary"))


def _prompt_rows():
    ps = [
        "What is the capital city of France and why?",
        "What is the capitol city of France and why?",
        "How do I fix a flat bicycle tyre on the road?",
        "Write a haiku about autumn leaves falling.",
    ]
    rows = []
    for k, p in enumerate(ps):
        for j in range(k + 1):  # 1, 2, 3, 4 responses per prompt
            rows.append(R.pairwise([u(p)], [a(f"answer {k}.{j} good")], [a(f"answer {k}.{j} bad")]))
    return ps, rows


def test_prompt_clusters_minhash_and_embedding_merge(run_step):
    ps, rows = _prompt_rows()
    t = table(rows)
    cl = D.prompt_clusters(t, threshold=0.7).to_pylist()
    pid = t.column("prompt_id").to_pylist()
    first = {p: cl[i] for i, p in enumerate(pid)}
    assert len(set(cl)) == 3  # the two France prompts (one typo) share a cluster
    assert first[pid[0]] == first[pid[1]] == pid[0]  # named by the first row's prompt id
    assert len({first[p] for p in set(pid)}) == 3
    # embeddings can merge prompts MinHash keeps apart: bicycle ~ haiku by (made-up) vectors
    v = np.zeros((len(rows), 4), np.float32)
    for i, p in enumerate(t.column("prompt").to_pylist()):
        v[i, {ps[0]: 0, ps[1]: 0, ps[2]: 1, ps[3]: 1}[p[0]["content"]]] = 1.0
    merged = D.prompt_clusters(t, vectors=v, embed_threshold=0.9).to_pylist()
    assert len(set(merged)) == 2
    assert len(D.prompt_clusters(table([]))) == 0
    # the step adds the column, every row kept
    res = run_step(PromptClustersStep(PromptClustersConfig(threshold=0.7)), t)
    assert res.kept.column("prompt_cluster").to_pylist() == cl and res.rejected.num_rows == 0


def _clustered(rows: list[dict]) -> pa.Table:
    t = table(rows)
    return t.append_column("prompt_cluster", D.prompt_clusters(t, threshold=0.7))


def test_cap_per_cluster_is_seeded_and_order_independent(run_step):
    _, rows = _prompt_rows()
    t = _clustered(rows)
    res = run_step(ClusterCapStep(ClusterCapConfig(cap=2, seed=7)), t)
    _check_removals(res, t.num_rows)
    sizes = {}
    for c in res.kept.column("prompt_cluster").to_pylist():
        sizes[c] = sizes.get(c, 0) + 1
    assert max(sizes.values()) == 2 and len(sizes) == 3
    assert set(res.rejected.column("reason").to_pylist()) == {"cluster_cap"}
    assert res.rejected.num_rows == t.num_rows - sum(min(2, n) for n in (3, 3, 4))
    detail = json.loads(res.rejected.column("detail")[0].as_py())
    assert detail["cap"] == 2 and detail["cluster_rows"] in (3, 4)
    shuffled = t.take(pa.array(np.random.default_rng(3).permutation(t.num_rows)))
    again = run_step(ClusterCapStep(ClusterCapConfig(cap=2, seed=7)), shuffled)
    assert set(again.kept.column("record_id").to_pylist()) == set(res.kept.column("record_id").to_pylist())
    with pytest.raises(ValueError):
        D.cluster_cap(table(rows), cap=2)  # no prompt_cluster column yet
    with pytest.raises(ValueError):
        D.cluster_cap(t, cap=0)


def test_pipeline_of_rules_on_real_pairs(dpo, tmp_path):
    """exact → near → clusters → cap on the executor, in batches of 5: real LLaMA-Factory pairs with planted
    copies; whole-dataset steps see duplicates across batches."""
    rows = [_pair(r) for r in dpo] + [_pair(dpo[0]), _pair(dpo[1], policy="p2")]
    t = table(rows)
    steps = [ExactDedupStep(), NearDedupStep(), PromptClustersStep(), ClusterCapStep(ClusterCapConfig(cap=1))]
    res = Executor(tmp_path / "work", batch_rows=5).run_table(t, steps, "pairwise")
    counts = {c.step: c for c in res.counts}
    assert (counts["exact_dedup"].rows_duplicate, counts["near_dedup"].rows_duplicate) == (2, 0)
    rejected = res.rejected()
    copies = rejected.filter(pa.compute.equal(rejected.column("step"), "exact_dedup"))
    # the planted copies sit in the last batch; their originals in the first
    assert sorted(copies.column("duplicate_of").to_pylist()) == sorted([rows[0]["record_id"], rows[1]["record_id"]])
    kept = res.table("pairwise")
    assert kept.num_rows == len(set(_clustered(rows[:12]).column("prompt_cluster").to_pylist()))
    assert counts["cluster_cap"].rows_rejected == 12 - kept.num_rows
    assert "_row" not in kept.column_names and kept.column("prompt_cluster").null_count == 0
