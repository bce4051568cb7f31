"""Label-noise votes (curation/noise.py) and their steps (curation/noise_step.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from curation.noise import (
    DEFAULT_CONFIDENCE,
    REASON,
    NoiseError,
    check_params,
    count_votes,
    flagged_share,
    vote_columns,
    voter_stats,
)
from curation.noise_step import DROP_STEP, STEP, DropNoisyStep, NoiseConfig, NoiseStep
from pipelines.executor import Executor
from schemas.errors import PrefmillError
from schemas.registry import STEPS
from schemas.step import StepError


def _simulate(n: int, k: int, wrong_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(P(chosen ≻ rejected) per pair and voter, which labels are wrong): each voter sees the true
    preference through its own noise (accuracy ~0.8 per voter, some confident mistakes)."""
    rng = np.random.default_rng(seed)
    wrong = rng.random(n) < wrong_share
    truth = np.where(wrong, -1.0, 1.0)  # the true preference, in the direction of the label
    logits = 1.5 * truth[:, None] + rng.normal(0.0, 1.5, (n, k))
    return 1 / (1 + np.exp(-logits)), wrong


def test_planted_wrong_labels_are_found_by_several_voters():
    probs, wrong = _simulate(4000, 3, 0.1, seed=0)
    tie = np.zeros(len(wrong), bool)
    two = count_votes(probs, tie, m=2)
    one = count_votes(probs, tie, m=1)
    three = count_votes(probs, tie, m=3)
    recall = {m: v.flag[wrong].mean() for m, v in ((1, one), (2, two), (3, three))}
    false = {m: v.flag[~wrong].mean() for m, v in ((1, one), (2, two), (3, three))}
    # More votes needed: fewer false flags, fewer found; 2 of 3 finds most flips at a small false rate.
    assert recall[1] > recall[2] > recall[3] and false[1] > false[2] > false[3]
    assert recall[2] > 0.5 and false[2] < 0.05
    precision = two.flag[wrong].sum() / two.flag.sum()
    assert precision > 0.6 > wrong.mean()  # the flagged pairs are mostly wrong labels; the base rate is 0.1
    one_voter = count_votes(probs[:, :1], tie, m=1)
    assert one_voter.flag[~wrong].mean() > false[2]  # one voter alone flags more good pairs than 2 of 3


def test_the_rule_votes_counts_and_flags():
    probs = np.array(
        [
            [0.1, 0.2, 0.9],  # two against
            [0.3, 0.31, 0.5],  # 0.3 is exactly 1 - 0.7: at least that sure → a vote
            [0.5, 0.5, 0.5],  # unsure voters never vote
            [0.0, 1.0, 0.0],
        ]
    )
    v = count_votes(probs, np.zeros(4, bool), m=2)
    assert v.votes.tolist() == [2, 1, 0, 2] and v.voters.tolist() == [3, 3, 3, 3]
    assert v.flag.tolist() == [True, False, False, True]
    assert count_votes(probs, np.zeros(4, bool), m=1).flag.tolist() == [True, True, False, True]
    strict = count_votes(probs, np.zeros(4, bool), m=1, confidence=1.0)  # only certain voters
    assert strict.votes.tolist() == [0, 0, 0, 2]


def test_ties_are_never_flagged():
    probs = np.zeros((3, 2))  # every voter certain that the rejected side is better
    v = count_votes(probs, np.array([True, False, True]), m=1)
    assert v.flag.tolist() == [False, True, False] and v.votes.tolist() == [0, 2, 0]
    assert v.voters.tolist() == [2, 2, 2]
    cols = vote_columns(v)
    assert cols["noise_votes"].to_pylist() == [None, 2, None]  # nothing to vote against
    assert cols["noise_flag"].to_pylist() == [False, True, False]


def test_abstentions_count_neither_way():
    nan = math.nan
    probs = np.array([[0.1, nan, nan], [0.1, 0.1, nan], [nan, nan, nan], [0.9, nan, 0.1]])
    v = count_votes(probs, np.zeros(4, bool), m=2)
    assert v.voters.tolist() == [1, 2, 0, 2] and v.votes.tolist() == [1, 2, 0, 1]
    assert v.flag.tolist() == [False, True, False, False]
    stats = voter_stats(v, ["a", "b", "c"])
    assert [s["scored"] for s in stats] == [3, 1, 1] and [s["abstained"] for s in stats] == [1, 3, 3]
    assert [s["against"] for s in stats] == [2, 1, 1] and stats[0]["against_share"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("k", "m", "confidence"),
    [
        (0, None, 0.7),
        (2, 3, 0.7),  # m > k
        (2, 0, 0.7),
        (2, True, 0.7),
        (2, 1.5, 0.7),
        (2, None, 0.5),
        (2, None, 1.01),
        (2, None, math.nan),
        (2, None, 0.2),
    ],
)
def test_bounds_are_one_line_errors(k, m, confidence):
    with pytest.raises(NoiseError) as e:
        check_params(k, m, confidence)
    assert isinstance(e.value, PrefmillError) and "\n" not in str(e.value)


def test_default_m_is_two_of_k_and_one_of_one():
    assert check_params(1) == 1 and check_params(2) == 2 and check_params(5) == 2
    assert check_params(3, 3, 1.0) == 3 and DEFAULT_CONFIDENCE == 0.7


def test_probabilities_outside_the_unit_interval_are_refused():
    with pytest.raises(NoiseError, match=r"\[0, 1\]"):
        count_votes(np.array([[0.2, 1.2]]), np.zeros(1, bool), m=1)
    with pytest.raises(NoiseError, match="matrix"):
        count_votes(np.zeros((3, 2)), np.zeros(2, bool), m=1)


def _pairs(labels: list[str], **voters: list) -> pa.Table:
    n = len(labels)
    cols: dict[str, pa.Array] = {
        "record_id": pa.array([f"r{i}" for i in range(n)]),
        "label": pa.array(labels),
        "source_file": pa.array(["a.jsonl"] * (n // 2) + ["b.jsonl"] * (n - n // 2)),
        "annotator_id": pa.array([None if i % 2 else "ann1" for i in range(n)], pa.string()),
        "source_row": pa.array(range(n), pa.int64()),
    }
    cols.update({k: pa.array(v, pa.float64()) for k, v in voters.items()})
    return pa.table(cols)


def test_noise_step_adds_the_columns_from_voter_columns():
    table = _pairs(
        ["chosen_better", "chosen_better", "tie", "chosen_better"],
        judge=[0.1, 0.9, 0.0, None],  # null: the judge abstained
        rm=[0.2, 0.25, 0.0, 0.1],
    )
    step = NoiseStep(NoiseConfig(("judge", "rm")))
    res = step(table, "pairwise")
    out = res.kept
    assert out.column("noise_votes").to_pylist() == [2, 1, None, 1]
    assert out.column("noise_voters").to_pylist() == [2, 2, 2, 1]
    assert out.column("noise_flag").to_pylist() == [True, False, False, False]
    assert res.rejected.num_rows == 0 and step.counts.rows_in == 4 == step.counts.rows_kept
    again = NoiseStep(NoiseConfig(("judge", "rm"), m=1))(out, "pairwise").kept  # a rerun replaces the columns
    assert again.column("noise_flag").to_pylist() == [True, True, False, True]
    assert again.column_names == out.column_names
    with pytest.raises(StepError, match="voter column"):
        NoiseStep(NoiseConfig(("judge", "nope")))(table, "pairwise")


def test_noise_config_checks_its_voters():
    for bad in (NoiseConfig(()), NoiseConfig(("a", "a")), NoiseConfig("ab"), NoiseConfig(("a",), m=2)):  # type: ignore[arg-type]
        with pytest.raises(NoiseError):
            bad.check()
    assert NoiseConfig(("a", "b", "c")).check().m == 2


def test_steps_are_registered_for_curate():
    for name, cls in ((STEP, NoiseStep), (DROP_STEP, DropNoisyStep)):
        entry = STEPS.get(name)
        assert entry.obj is cls and entry.extra == {"stage": "curate"} and entry.shapes == ("pairwise",)
    assert STEPS.get(STEP).settings({"voters": ("j",), "m": 1}).m == 1


def test_drop_noisy_removes_flagged_pairs_with_their_votes(tmp_path):
    table = _pairs(["chosen_better"] * 5 + ["tie"], a=[0.1, 0.9, 0.1, 0.2, None, 0.0], b=[0.1, 0.1, 0.2, 0.9, 0.1, 0.0])
    flagged = NoiseStep(NoiseConfig(("a", "b")))(table, "pairwise").kept.drop_columns(["a", "b"])
    flagged = flagged.set_column(
        flagged.column_names.index("noise_flag"),
        "noise_flag",
        pa.array([True, False, True, False, None, False]),  # a null flag (never scored) is kept
    )
    res = Executor(tmp_path / "work", batch_rows=2).run_table(flagged, [DropNoisyStep()], "pairwise")
    assert res.table("pairwise").column("record_id").to_pylist() == ["r1", "r3", "r4", "r5"]
    rej = res.rejected()
    assert rej.column("record_id").to_pylist() == ["r0", "r2"]
    assert set(rej.column("reason").to_pylist()) == {REASON} and set(rej.column("step").to_pylist()) == {DROP_STEP}
    assert [json.loads(d) for d in rej.column("detail").to_pylist()] == [
        {"noise_votes": 2, "noise_voters": 2},
        {"noise_votes": 2, "noise_voters": 2},
    ]
    c = res.count(DROP_STEP)
    assert c.rows_in == 6 == c.rows_kept + c.rows_rejected and c.reasons == {REASON: 2}


def test_drop_noisy_without_noise_columns_says_what_to_run():
    with pytest.raises(StepError, match="prefmill noise") as e:
        DropNoisyStep()(_pairs(["chosen_better"]), "pairwise")
    assert "\n" not in str(e.value)


def test_flagged_share_per_source_and_annotator_skips_ties():
    table = _pairs(["chosen_better", "chosen_better", "tie", "chosen_better"], j=[0.0, 0.0, 0.0, 0.9])
    out = NoiseStep(NoiseConfig(("j",)))(table, "pairwise").kept
    by = flagged_share(out)
    assert by["source_file"] == {
        "a.jsonl": {"pairs": 2, "flagged": 2, "share": 1.0},
        "b.jsonl": {"pairs": 1, "flagged": 0, "share": 0.0},  # the tie is not a pair to flag
    }
    assert by["annotator_id"] == {
        "(none)": {"pairs": 2, "flagged": 1, "share": 0.5},
        "ann1": {"pairs": 1, "flagged": 1, "share": 1.0},
    }
    assert "origin" not in by  # only the keys the table has
