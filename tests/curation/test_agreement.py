"""curation.agreement: items and orientation, κ (vs sklearn), the human–human ceiling, swap / position /
length / self-preference biases, calibration, and the one-line errors for unusable gold sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from curation import agreement
from curation.agreement import GoldSetError, cohen_kappa, gold_from_table, human_rows, report
from schemas import records


def _rows(items, *, origin="human"):
    """items: (prompt, response1, response2, {annotator: 1 | 2 | 0}, meta) → PandaLM-shaped rows."""
    rows = []
    for i, (prompt, r1, r2, labels, meta) in enumerate(items):
        for ann, lab in labels.items():
            chosen, rejected = (r2, r1) if lab == 2 else (r1, r2)
            r = records.pairwise(
                [{"role": "user", "content": prompt}],
                [{"role": "assistant", "content": chosen}],
                [{"role": "assistant", "content": rejected}],
                label="tie" if lab == 0 else "chosen_better",
                origin=origin,
                annotator_id=ann,
                meta={**(meta or {}), "chosen_position": 2 if lab == 2 else 1},
            )
            rows.append({**r, "format": "test", "source_file": "gold.json", "source_row": i, "run_id": "seed"})
    return records.to_table(rows, "pairwise")


def _simple(n, tie_every=0):
    """n single-annotator items; chosen = "good ... i" (longer), rejected = "bad i"."""
    return _rows(
        [
            (f"q{i}", f"good answer number {i}", f"bad {i}", {"h": 0 if tie_every and i % tie_every == 0 else 1}, None)
            for i in range(n)
        ]
    )


def test_cohen_kappa_matches_sklearn_and_is_none_when_undefined():
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, y = rng.integers(-1, 2, 50), rng.integers(-1, 2, 50)
        assert cohen_kappa(x, y) == pytest.approx(cohen_kappa_score(x, y))
    assert cohen_kappa([1, 1, -1, -1], [1, -1, -1, -1]) == pytest.approx(0.5)
    assert cohen_kappa([1, 1], [1, 1]) is None and cohen_kappa([], []) is None


def test_rows_of_one_pair_are_one_item_in_one_orientation():
    t = _rows(
        [
            ("p", "first response", "second response", {"a1": 1, "a2": 2, "a3": 0}, None),
            ("p", "first response", "another response", {"a1": 2, "a2": 2}, None),
        ]
    )
    g = gold_from_table(t)
    assert g.n_items == 2 and list(g.item[:3]) == [g.item[0]] * 3 and g.item[3] != g.item[0]
    # a1 and a2 disagree on the first pair: opposite signs in the item's orientation; a3 is a tie.
    assert g.human[0] == -g.human[1] != 0 and g.human[2] == 0
    assert g.human[3] == g.human[4] != 0
    assert list(g.annotator) == ["a1", "a2", "a3", "a1", "a2"]


def test_a_perfect_consistent_judge():
    t = _simple(40)
    g = gold_from_table(t)
    p = np.full(40, 0.9)  # P(chosen), both orders agree
    m = report(g, p, p, p)
    assert m["accuracy"] == m["accuracy_with_ties"] == m["accuracy_majority"] == 1.0
    assert m["kappa_majority"] == pytest.approx(1.0) and m["swap_consistency"] == 1.0
    assert m["coverage"] == 1.0 and m["n_items"] == 40 and m["position_bias_p_first"] == pytest.approx(0.5)
    assert m["length_bias"]["judge_longer_rate"] == 1.0 == m["length_bias"]["human_longer_rate"]
    assert m["calibration"]["ece"] == pytest.approx(0.1)  # says 0.9, right every time
    assert m["human_human"] is None  # one annotator: no ceiling
    assert agreement.passes(m, 0.4, 0.8) == (True, [])


def test_a_judge_that_always_picks_the_first_shown():
    t = _simple(30)
    g = gold_from_table(t)
    p_ab, p_ba = np.full(30, 0.9), np.full(30, 0.1)  # chosen first: 0.9; chosen second: 0.1
    m = report(g, (p_ab + p_ba) / 2, p_ab, p_ba)
    assert m["swap_consistency"] == 0.0 and m["position_flip_rate"] == 1.0
    assert m["position_bias_p_first"] == pytest.approx(0.9) and m["position_first_picked_rate"] == 1.0
    assert m["accuracy"] == 0.5  # exactly ½ every time: half credit
    assert m["accuracy_with_ties"] == 0.0  # its three-class verdict is a tie (a flip), the humans never tie
    ok, short = agreement.passes(m, 0.4, 0.8)
    assert not ok and any("swap consistency 0.000 < 0.8" in s for s in short)


def test_length_bias_against_the_humans_rate():
    # humans prefer the shorter answer in 3 of 4 items; the judge always prefers the longer one
    items = [(f"q{i}", "x" * (10 + i), "y" * (100 + i), {"h": 1 if i < 3 else 2}, None) for i in range(4)]
    t = _rows(items)
    g = gold_from_table(t)
    longer_is_chosen = g.len_chosen > g.len_rejected
    p = np.where(longer_is_chosen, 0.8, 0.2)
    m = report(g, p, p, p)["length_bias"]
    assert m["judge_longer_rate"] == 1.0 and m["human_longer_rate"] == 0.25 and m["gap"] == 0.75
    assert m["judge_p_longer"] == pytest.approx(0.8) and m["n_items"] == 4


def test_multi_annotator_ceiling_majority_and_per_annotator_kappa():
    rng = np.random.default_rng(1)
    items = []
    for i in range(60):
        truth = int(rng.integers(1, 3))
        labels = {a: (truth if rng.random() < 0.8 else int(rng.integers(0, 3))) for a in ("a1", "a2", "a3")}
        items.append((f"q{i}", f"one {i}", f"two {i}", labels, None))
    t = _rows(items)
    g = gold_from_table(t)
    m = report(g, np.full(t.num_rows, math.nan))
    hh = m["human_human"]
    assert hh["annotators"] == 3 and set(hh["pairs"]) == {"a1 ~ a2", "a1 ~ a3", "a2 ~ a3"}
    # the ceiling equals sklearn's κ on the two annotators' labels in the item orientation
    lab: dict[str, dict] = {a: {} for a in ("a1", "a2", "a3")}
    for it, a, h in zip(g.item, g.annotator, g.human):
        lab[a][it] = h
    x = [lab["a1"][k] for k in sorted(lab["a1"])]
    y = [lab["a2"][k] for k in sorted(lab["a2"])]
    assert hh["pairs"]["a1 ~ a2"]["kappa"] == pytest.approx(cohen_kappa_score(x, y))
    assert hh["mean_kappa"] == pytest.approx(np.mean([v["kappa"] for v in hh["pairs"].values()]))
    # nothing judged: every judge number is None, but the audit completes and says so
    assert m["coverage"] == 0.0 and m["accuracy"] is None and m["kappa_majority"] is None
    assert m["swap_consistency"] is None and m["calibration"]["ece"] is None
    assert agreement.passes(m, 0.4, 0.8)[0] is False

    # a judge that always says what the majority says (per item), with per-annotator κ below 1
    maj, strict = agreement._majority(g.item, g.human, g.n_items)
    pa_ = np.where(maj[g.item] > 0, 0.9, 0.1)
    p = np.where(g.flipped, 1 - pa_, pa_)
    m = report(g, p, p, p)
    assert m["kappa_majority_without_ties"] == pytest.approx(1.0)
    assert set(m["kappa_per_annotator"]) == {"a1", "a2", "a3"}
    assert all(v["n"] == 60 and v["kappa"] < 1 for v in m["kappa_per_annotator"].values())
    assert m["items_without_majority"] == int((~strict).sum())


def test_unjudged_rows_are_counted_not_scored():
    t = _simple(10)
    g = gold_from_table(t)
    p = np.full(10, 0.9)
    p[:4] = np.nan
    m = report(g, p, p, p)
    assert m["coverage"] == 0.6 and m["n_judged_rows"] == 6 and m["accuracy"] == 1.0
    assert m["accuracy_unjudged_as_wrong"] == 0.6


def test_calibration_curve_points():
    p = np.array([0.95] * 10 + [0.6] * 10)
    correct_last = np.array([1.0] * 10 + [0.0] * 5 + [1.0] * 5)
    p_human = np.where(correct_last == 1, p, 1 - p)  # wrong picks: the judge gave the human's pick 1 − p
    c = agreement.calibration(p_human, bins=10)
    assert [pt["n"] for pt in c["curve"]] == [10, 10]
    hi, lo = c["curve"][1], c["curve"][0]
    assert lo["confidence"] == pytest.approx(0.6) and lo["accuracy"] == 0.5
    assert hi["confidence"] == pytest.approx(0.95) and hi["accuracy"] == 1.0
    assert c["ece"] == pytest.approx((10 * 0.1 + 10 * 0.05) / 20)


def test_self_preference_from_pandalm_cmp_key():
    items = [
        (f"q{i}", f"resp one {i}", f"resp two {i}", {"h": 1 if i % 2 else 2}, {"cmp_key": "llama-7b_bloom-7b"})
        for i in range(6)
    ]
    t = _rows(items)
    g = gold_from_table(t, judge_model="huggyllama/llama-7b")
    # response1 was written by llama-7b: chosen is the judge's own when the label is 1
    assert list(g.self_side) == [1 if i % 2 else -1 for i in range(6)]
    p = np.where(g.self_side == 1, 0.8, 0.2)  # P(chosen): the judge always prefers its own answer
    m = report(g, p, p, p)["self_preference"]
    assert m["n_rows"] == 6 and m["human_self_rate"] == 0.5
    assert m["judge_self_rate"] == 1.0 and m["judge_p_self"] == pytest.approx(0.8)
    none = gold_from_table(t, judge_model="gpt-4")
    assert report(none, p, p, p)["self_preference"]["n_rows"] == 0


def test_bad_gold_sets_are_one_line_errors():
    with pytest.raises(GoldSetError, match="no human labels") as e:
        human_rows(_ai(5), "g")
    assert "\n" not in str(e.value)
    with pytest.raises(GoldSetError, match="no pairwise rows"):
        human_rows(_simple(3).slice(0, 0), "g")
    ties = _rows([(f"q{i}", "a", f"b{i}", {"h": 0}, None) for i in range(4)])
    with pytest.raises(GoldSetError, match="one class only"):
        gold_from_table(*human_rows(ties)[:1])
    with pytest.raises(GoldSetError, match="not pairwise"):
        human_rows(_simple(3).drop_columns(["label"]))


def _ai(n):
    return _rows([(f"q{i}", f"x{i}", f"y{i}", {"j": 1}, None) for i in range(n)], origin="ai_judge")


def test_human_rows_leaves_out_and_counts_other_origins():
    import pyarrow as pa

    t = pa.concat_tables([_simple(4), _ai(3)])
    kept, excluded = human_rows(t)
    assert kept.num_rows == 4 and excluded == {"not_human": 3}
