import math

import numpy as np
import pytest

from judges.generators.difficulty import COLUMNS, DifficultyConfig, DifficultyStep, difficulty_columns
from schemas import records
from schemas.registry import STEPS
from schemas.step import StepError
from tests.judges.generators.scripted import ScriptedEngine


def test_formulas():
    cols = difficulty_columns([-10.0, -30.0, -20.0], [-20.0, -10.0, -20.0], [10, 10, 4], [5, 20, 8], beta=0.1)
    # c = log π(y_l) − log π(y_w)
    assert cols["ref_logratio"].tolist() == [-10.0, 20.0, 0.0]
    assert cols["ref_correct"].tolist() == [True, False, True]  # c ≤ 0 (a tie counts as correct)
    # per-token: −20/5 − (−10/10) = −3; −10/20 − (−30/10) = 2.5; −20/8 − (−20/4) = 2.5
    assert cols["ref_logratio_norm"].tolist() == pytest.approx([-3.0, 2.5, 2.5])
    assert cols["ref_correct_norm"].tolist() == [True, False, False]
    # flip threshold = −log σ(βc) (Thm 4.1) = softplus(−βc)
    for c, thr in zip([-10.0, 20.0, 0.0], cols["flip_loss_threshold"]):
        assert thr == pytest.approx(-math.log(1 / (1 + math.exp(-0.1 * c))))
    assert cols["flip_loss_threshold"][2] == pytest.approx(math.log(2))
    # harder pairs (larger c) need a smaller loss to flip
    assert cols["flip_loss_threshold"][1] < cols["flip_loss_threshold"][2] < cols["flip_loss_threshold"][0]
    # no overflow at extreme log-ratios
    big = difficulty_columns([0.0], [-1e6], [1], [1], beta=1.0)["flip_loss_threshold"]
    assert np.isfinite(big).all() and big[0] == pytest.approx(1e6)


def _pair(prompt, chosen, rejected):
    return records.pairwise(
        [{"role": "user", "content": prompt}],
        [{"role": "assistant", "content": chosen}],
        [{"role": "assistant", "content": rejected}],
    )


def _run(engine, rows, config=None):
    step = DifficultyStep(config, engine=engine)
    step.setup()
    table = records.to_table(rows, "pairwise")
    return table, step(table, "pairwise"), step.take_counts()


def test_step_adds_columns_from_reference_logprobs():
    ref = ScriptedEngine(
        logprob={"kind reply": -4.0, "rude reply": -12.0, "long careful reply": -36.0}, model="ref-model"
    )
    pairs = [
        _pair("Hi", "kind reply", "rude reply"),  # reference already prefers chosen: c = −8
        _pair("Hi", "long careful reply", "rude reply"),  # c = +24 raw, per-token −1.2 − (−2) = +0.8
        {**_pair("Hi", "a", "b"), "chosen": [{"role": "assistant", "content": "a"}] * 2},
    ]
    table, res, counts = _run(ref, pairs, DifficultyConfig(beta=0.5))
    a, b, c = res.kept.to_pylist()  # annotating: every row stays, in order
    assert res.kept.column_names == table.column_names + COLUMNS
    assert a["record_id"] == pairs[0]["record_id"] and a["ref_model"] == "ref-model"
    assert a["ref_logratio"] == pytest.approx(-8.0) and a["ref_correct"] is True
    assert b["ref_logratio"] == pytest.approx(24.0) and b["ref_correct"] is False
    assert b["ref_logratio_norm"] == pytest.approx(-12.0 / 10 - (-36.0 / 18))
    assert b["flip_loss_threshold"] == pytest.approx(math.log1p(math.exp(-0.5 * 24.0)))
    assert b["difficulty_beta"] == 0.5
    assert all(c[k] is None for k in COLUMNS)  # two chosen messages: no judged turn to score
    (rej,) = res.rejected.to_pylist()
    assert rej["record_id"] == pairs[2]["record_id"] and rej["reason"] == "difficulty_unsupported_shape"
    assert (counts.rows_in, counts.rows_kept, counts.rows_rejected) == (3, 2, 1)


def test_logprob_failures_are_rejected_rows():
    eng = ScriptedEngine()
    eng.tokenizer = None  # no tokenizer and no server to ask: every item fails, counted
    _, res, counts = _run(eng, [_pair("Hi", "x", "y"), _pair("Hey", "x", "z")])
    assert res.kept.column("ref_logratio").null_count == 2
    assert counts.reasons == {"difficulty_logprob_failed": 2}


def test_registered_and_needs_an_engine():
    assert STEPS.get("difficulty").obj is DifficultyStep and STEPS.get("difficulty").extra["stage"] == "judge"
    with pytest.raises(StepError, match="reference engine"):
        DifficultyStep()
