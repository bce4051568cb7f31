"""Named conversion policies between shapes (schemas/conversions.py)."""

from __future__ import annotations

import json
from itertools import permutations
from pathlib import Path

import orjson
import pytest

from schemas.canonical import BINARY, PAIRWISE
from schemas.conversions import (
    convert_table,
    pairs_to_binary,
    ranking_to_binary,
    ranking_to_pairs,
    ratings_to_binary,
    ratings_to_pairs,
)
from schemas.records import listwise, pairwise, ratings, to_table
from schemas.validation import ValidateStep

TOPICAL = Path(__file__).resolve().parents[2] / "examples" / "data" / "topical_chat_usr_ratings" / "topical_chat.json"
# Scales as stated in the data set's SOURCE.md.
SCALES = {
    "understandability": (0.0, 1.0),
    "naturalness": (1.0, 3.0),
    "coherence": (1.0, 3.0),
    "engagingness": (1.0, 3.0),
    "groundedness": (0.0, 1.0),
    "overall": (1.0, 5.0),
}
U = [{"role": "user", "content": "Name a prime number."}]
LINEAGE = {"format": "unit", "source_file": "ranks.jsonl", "source_row": 41, "run_id": "run-7"}


def A(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def ranked(ranks=None, scores=None, texts=("a", "b", "c", "d"), **kw) -> dict:
    row = listwise(
        U,
        [A(t) for t in texts],
        ranks=ranks,
        scores=scores,
        origin=kw.pop("origin", "ai_judge"),
        annotator_id=kw.pop("annotator_id", "judge-1"),
        meta={"tree": "t1"},
        **kw,
    )
    return {**row, **LINEAGE}


def texts_of(pairs: list[dict]) -> set[tuple[str, str]]:
    return {(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs}


# ranks [0, 1, 1, 2] for a, b, c, d: b and c tie, so (b, c) is never a pair.
EXPECTED = {
    "all": {("a", "b"), ("a", "c"), ("a", "d"), ("b", "d"), ("c", "d")},
    "adjacent": {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")},
    "best_vs_rest": {("a", "b"), ("a", "c"), ("a", "d")},
}


@pytest.mark.parametrize("policy", sorted(EXPECTED))
def test_ranking_with_a_tie_counts_by_hand(policy):
    row = ranked(ranks=[0, 1, 1, 2])
    pairs = ranking_to_pairs(row, policy)
    assert len(pairs) == len(EXPECTED[policy]) and texts_of(pairs) == EXPECTED[policy]
    rank = dict(zip("abcd", [0, 1, 1, 2]))
    for p in pairs:
        c, r = p["chosen"][0]["content"], p["rejected"][0]["content"]
        assert p["margin"] == rank[r] - rank[c] > 0
        assert p["policy"] == f"ranking->pairs:{policy}" and p["label"] == "chosen_better"
        assert (p["origin"], p["annotator_id"], p["prompt_id"]) == ("ai_judge", "judge-1", row["prompt_id"])
        meta = orjson.loads(p["meta"])
        assert meta["from_record_id"] == row["record_id"] and meta["tree"] == "t1"
        assert {k: p[k] for k in LINEAGE} == LINEAGE


def test_scores_order_descending_and_ranks_win_over_scores():
    by_scores = ranking_to_pairs(ranked(scores=[0.9, 0.1, 0.5, 0.5]), "all")
    assert texts_of(by_scores) == {("a", "c"), ("a", "d"), ("a", "b"), ("c", "b"), ("d", "b")}
    assert sorted(round(p["margin"], 6) for p in by_scores) == [0.4, 0.4, 0.4, 0.4, 0.8]
    both = ranking_to_pairs(ranked(ranks=[3, 2, 1, 0], scores=[0.9, 0.1, 0.5, 0.5]), "adjacent")
    assert texts_of(both) == {("d", "c"), ("c", "b"), ("b", "a")}


@pytest.mark.parametrize("policy", ["all", "adjacent", "best_vs_rest"])
def test_all_tied_ranking_gives_no_pairs(policy):
    assert ranking_to_pairs(ranked(ranks=[1, 1, 1, 1]), policy) == []
    assert ranking_to_binary(ranked(ranks=[1, 1, 1, 1])) == []


def test_identical_completions_are_never_paired_and_bad_input_is_refused():
    pairs = ranking_to_pairs(ranked(ranks=[0, 1, 2], texts=("same", "same", "other")), "all")
    assert texts_of(pairs) == {("same", "other")} and len(pairs) == 2
    with pytest.raises(ValueError, match="ranks_invalid"):
        ranking_to_pairs(ranked(ranks=[0, 1], texts=("a", "b", "c")))
    with pytest.raises(ValueError, match="unknown ranking policy"):
        ranking_to_pairs(ranked(ranks=[0, 1, 2, 3]), "best_of_all")


def test_converted_pairs_pass_validation():
    pairs = ranking_to_pairs(ranked(ranks=[0, 1, 1, 2]), "all")
    res = ValidateStep()(to_table(pairs, "pairwise"), "pairwise")
    assert res.rejected.num_rows == 0 and res.kept.num_rows == 5


def test_ranking_to_binary_top_k():
    out = ranking_to_binary(ranked(ranks=[0, 1, 1, 2]), top_k=1)
    assert {b["completion"][0]["content"]: b["label"] for b in out} == {"a": True, "b": False, "c": False, "d": False}
    out = ranking_to_binary(ranked(ranks=[0, 1, 1, 2]), top_k=2)
    assert {b["completion"][0]["content"]: b["label"] for b in out} == {"a": True, "b": True, "c": True, "d": False}
    assert {b["policy"] for b in out} == {"ranking->binary:top2"}


# ------------------------------------------------------------------------------ pairs -> binary


def test_pairs_to_binary_and_ties_give_nothing():
    p = {**pairwise(U, A("7"), A("8"), margin=0.5, origin="human", annotator_id="ann"), **LINEAGE}
    out = pairs_to_binary(p)
    assert [(b["completion_id"], b["label"]) for b in out] == [(p["chosen_id"], True), (p["rejected_id"], False)]
    assert {b["policy"] for b in out} == {"pairs->binary"}
    assert all(orjson.loads(b["meta"])["from_record_id"] == p["record_id"] for b in out)
    assert all(b["source_row"] == 41 for b in out)
    tie = {**pairwise(U, A("7"), A("11"), label="tie"), **LINEAGE}
    assert pairs_to_binary(tie) == []


# ------------------------------------------------------------------- real topical-chat ratings


@pytest.fixture(scope="module")
def topical() -> tuple[list[dict], list[dict]]:
    recs = json.loads(TOPICAL.read_text())
    rows = []
    for i, rec in enumerate(recs):
        prompt = [{"role": "user", "content": rec["source"]}]
        row = ratings(
            prompt, A(rec["system_output"]), rec["scores"], scales=SCALES, meta={"system_id": rec["system_id"]}
        )
        rows.append({**row, "format": "topical_chat", "source_file": TOPICAL.name, "source_row": i, "run_id": "r"})
    return recs, rows


def _expected_pairs(recs: list[dict], attribute: str, m: float) -> int:
    """Independent count: same dialogue history, different response text, score gap >= m."""
    n = 0
    for a, b in permutations(range(len(recs)), 2):
        ra, rb = recs[a], recs[b]
        if (
            ra["source"].strip() == rb["source"].strip()
            and ra["system_output"].strip() != rb["system_output"].strip()
            and ra["scores"][attribute] - rb["scores"][attribute] >= m
        ):
            n += 1
    return n


@pytest.mark.parametrize("attribute,m", [("overall", 1.0), ("overall", 2.0), ("engagingness", 0.5)])
def test_ratings_to_pairs_margin_threshold_on_topical_chat(topical, attribute, m):
    recs, rows = topical
    pairs = ratings_to_pairs(rows, attribute, m)
    assert len(pairs) == _expected_pairs(recs, attribute, m) > 0
    assert {p["policy"] for p in pairs} == {f"ratings->pairs:{attribute}:margin>={m:g}"}
    assert all(p["margin"] >= m and p["chosen_id"] != p["rejected_id"] for p in pairs)
    by_id = {r["record_id"]: r for r in rows}
    for p in pairs[:20]:
        c_id, r_id = orjson.loads(p["meta"])["from_record_ids"]
        assert by_id[c_id]["prompt_id"] == by_id[r_id]["prompt_id"] == p["prompt_id"]
        assert p["source_row"] == by_id[c_id]["source_row"]


def test_ratings_policy_string_and_zero_margin_refused(topical):
    _, rows = topical
    assert ratings_to_pairs(rows[:6], "overall", 1)[0]["policy"] == "ratings->pairs:overall:margin>=1"
    with pytest.raises(ValueError):
        ratings_to_pairs(rows, "overall", 0)


def test_topical_ratings_validate_and_a_wrong_scale_is_caught(topical):
    recs, rows = topical
    rejected = ValidateStep()(to_table(rows, "ratings"), "ratings").rejected.to_pylist()
    assert not [r for r in rejected if r["reason"] == "rating_out_of_range"]
    tight = [
        {
            **ratings(r["prompt"], r["completion"], rec["scores"], scales={**SCALES, "overall": (1.0, 4.0)}),
            **{k: r[k] for k in ("format", "source_file", "source_row", "run_id")},
        }
        for r, rec in zip(rows, recs)
    ]
    rejected = ValidateStep()(to_table(tight, "ratings"), "ratings").rejected.to_pylist()
    out = [r for r in rejected if r["reason"] == "rating_out_of_range"]
    assert len(out) == sum(rec["scores"]["overall"] > 4.0 for rec in recs) > 0


def test_ratings_to_binary_bands(topical):
    recs, rows = topical
    out = [b for r in rows for b in ratings_to_binary(r, "overall", desirable_at_least=4, undesirable_at_most=2)]
    assert sum(b["label"] for b in out) == sum(rec["scores"]["overall"] >= 4 for rec in recs)
    assert sum(not b["label"] for b in out) == sum(rec["scores"]["overall"] <= 2 for rec in recs)
    assert {b["policy"] for b in out} == {"ratings->binary:overall:>=4:<=2"}
    with pytest.raises(ValueError):
        ratings_to_binary(rows[0], "overall", desirable_at_least=3, undesirable_at_most=3)


# ------------------------------------------------------------------------------------- tables


def test_convert_table_listwise_to_pairwise_carries_lineage():
    rows = [ranked(ranks=[0, 1, 1, 2]), {**ranked(ranks=[2, 1, 0, 0], texts=("w", "x", "y", "z")), "source_row": 42}]
    out = convert_table(to_table(rows, "listwise"), "listwise", "pairwise", policy="adjacent")
    assert out.schema == PAIRWISE
    assert out.num_rows == 4 + 3  # second row: levels {y,z} > x > w
    assert sorted(set(out["source_row"].to_pylist())) == [41, 42]
    assert set(out["run_id"].to_pylist()) == {"run-7"} and set(out["format"].to_pylist()) == {"unit"}
    assert set(out["policy"].to_pylist()) == {"ranking->pairs:adjacent"}


def test_convert_table_other_directions(topical):
    _, rows = topical
    table = to_table(rows, "ratings")
    pairs = convert_table(table, "ratings", "pairwise", attribute="overall", min_margin=1.0)
    assert pairs.num_rows == len(ratings_to_pairs(rows, "overall", 1.0))
    binary = convert_table(pairs, "pairwise", "binary")
    assert binary.schema == BINARY and binary.num_rows == 2 * pairs.num_rows
    with_tie = to_table(
        [{**pairwise(U, A("1"), A("2"), label="tie"), **LINEAGE}, {**pairwise(U, A("3"), A("4")), **LINEAGE}],
        "pairwise",
    )
    assert convert_table(with_tie, "pairwise", "binary").num_rows == 2
    kto = convert_table(table, "ratings", "binary", attribute="overall", desirable_at_least=4, undesirable_at_most=2)
    assert kto.num_rows == sum(1 for r in rows for _ in ratings_to_binary(r, "overall", 4, 2))
    assert convert_table(table, "ratings", "ratings") is table
    with pytest.raises(ValueError, match="no conversion"):
        convert_table(binary, "binary", "pairwise")
