import numpy as np
import pytest
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from curation.errors import CurationError
from curation.reward import (
    DEFAULT_RECIPE,
    BTRewardModel,
    ece,
    fit_temperature,
    fit_weights,
    response_texts,
    score_pairs,
)


def bt_pairs(n=1500, d=24, scale=4.0, seed=0):
    """Embeddings of chosen/rejected responses whose preference follows a planted BT reward."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    w *= scale / np.linalg.norm(w)
    a, b = rng.normal(size=(n, d)) / np.sqrt(d), rng.normal(size=(n, d)) / np.sqrt(d)
    a_wins = rng.random(n) < expit((a - b) @ w)
    chosen = np.where(a_wins[:, None], a, b)
    rejected = np.where(a_wins[:, None], b, a)
    return chosen, rejected, w


def test_fit_equals_sklearn_logistic_regression_on_the_symmetrised_set():
    c, r, _ = bt_pairs(n=400, d=10)
    d = c - r
    for C in (0.05, 3.0):
        ours = fit_weights(d, C)
        lr = LogisticRegression(C=C, fit_intercept=False, tol=1e-12, max_iter=10000)
        lr.fit(np.vstack([d, -d]), np.r_[np.ones(len(d)), np.zeros(len(d))])
        np.testing.assert_allclose(ours, lr.coef_[0], atol=1e-4 * np.abs(ours).max())


def test_recovers_the_planted_reward_direction():
    c, r, w = bt_pairs(n=3000, seed=1)
    m = BTRewardModel.fit(c - r, seed=0)
    cos = m.weights @ w / np.linalg.norm(m.weights) / np.linalg.norm(w)
    assert cos > 0.9
    c2, r2, _ = bt_pairs(n=2000, seed=2)
    bayes = np.mean((c2 - r2) @ w > 0)
    assert np.mean(m.margin(c2, r2) > 0) > bayes - 0.03


def test_prob_is_antisymmetric_and_margin_is_a_reward_difference():
    c, r, _ = bt_pairs(n=500)
    m = BTRewardModel.fit(c - r)
    np.testing.assert_allclose(m.prob(c, r) + m.prob(r, c), 1.0, atol=1e-12)
    np.testing.assert_allclose(m.margin(c, r), m.score(c) - m.score(r))
    np.testing.assert_allclose(m.prob(c, r), expit(m.margin(c, r) / m.temperature))
    p, mg = score_pairs(m, c, r)
    np.testing.assert_allclose(p, m.prob(c, r))
    np.testing.assert_allclose(mg, m.margin(c, r))
    assert m.score(c[0]).shape == ()


def test_orientation_of_pairs_does_not_bias_the_model():
    # no intercept + symmetrised data: swapping chosen/rejected everywhere gives exactly -w
    c, r, _ = bt_pairs(n=300)
    w1 = fit_weights(c - r, 1.0)
    w2 = fit_weights(r - c, 1.0)
    np.testing.assert_allclose(w1, -w2, atol=1e-6)


def test_cv_picks_strong_regularisation_for_scarce_noisy_data():
    c, r, _ = bt_pairs(n=60, d=200, scale=1.0, seed=3)
    scarce = BTRewardModel.fit(c - r, holdout=0)
    c, r, _ = bt_pairs(n=4000, d=8, scale=8.0, seed=4)
    rich = BTRewardModel.fit(c - r, holdout=0)
    assert scarce.C < rich.C
    assert scarce.train_stats["C_selection"] == "cv" and len(scarce.train_stats["cv_logloss"]) == 5


def test_given_C_is_used():
    c, r, _ = bt_pairs(n=200)
    m = BTRewardModel.fit(c - r, C=0.3, holdout=0)
    assert m.C == 0.3 and m.train_stats["C_selection"] == "given"
    np.testing.assert_allclose(m.weights, fit_weights(c - r, 0.3))


def test_fit_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    true_logit = rng.normal(size=40000) * 3
    y = rng.random(40000) < expit(true_logit)
    m = np.where(y, true_logit, -true_logit) * 2.5  # a model 2.5x over-confident
    assert fit_temperature(m) == pytest.approx(2.5, rel=0.05)


def test_ece_is_small_when_calibrated_and_large_when_overconfident():
    rng = np.random.default_rng(1)
    logit = rng.normal(size=40000) * 2
    y = rng.random(40000) < expit(logit)
    m = np.where(y, logit, -logit)
    assert ece(m) < 0.02
    assert ece(m * 4) > 0.1
    assert ece(m * 4, T=4.0) == pytest.approx(ece(m))


def test_overconfident_fit_gets_a_temperature_above_one_and_better_holdout_loss():
    c, r, _ = bt_pairs(n=400, d=150, scale=2.0, seed=5)
    m = BTRewardModel.fit(c - r, C=1000.0, holdout=0.3)  # near-unregularised on few pairs
    s = m.train_stats
    assert m.temperature > 1.0
    assert s["holdout_logloss_calibrated"] <= s["holdout_logloss_raw"]
    assert s["ece_calibrated_crossfit"] < s["ece_raw"]
    assert s["n_train"] + s["n_holdout"] == 400 and s["calibration"] == "temperature"


def test_too_few_holdout_pairs_skip_calibration_and_say_so():
    c, r, _ = bt_pairs(n=30)
    m = BTRewardModel.fit(c - r, holdout=0.2)
    assert m.temperature == 1.0 and m.train_stats["calibration"].startswith("skipped")
    assert m.train_stats["n_train"] == 30


def test_zero_diffs_are_dropped_and_counted():
    c, r, _ = bt_pairs(n=200)
    d = c - r
    d[:7] = 0.0
    m = BTRewardModel.fit(d, C=1.0, holdout=0)
    assert m.train_stats["dropped_zero_diff"] == 7
    np.testing.assert_allclose(m.weights, fit_weights(d[7:], 1.0))


def test_sample_weight_zero_equals_leaving_the_pair_out():
    c, r, _ = bt_pairs(n=200)
    w = np.ones(200)
    w[:50] = 0
    np.testing.assert_allclose(fit_weights(c - r, 1.0, w), fit_weights((c - r)[50:], 1.0), atol=1e-6)


@pytest.mark.parametrize(
    "diffs, kw, match",
    [
        (np.empty((0, 4)), {}, "empty"),
        (np.zeros((5, 4)), {}, "no informative pairs"),
        (np.array([[np.nan, 1.0]] * 5), {}, "NaN"),
        (np.ones((5, 4)), {"sample_weight": np.ones(3)}, "sample_weight"),
        (np.ones((5, 4)), {"sample_weight": -np.ones(5)}, "sample_weight"),
        (np.ones((5, 4)), {"holdout": 1.0}, "holdout"),
        (np.ones((5, 4)), {"C": 0.0}, "C must be"),
        (np.ones(4), {}, "2-D"),
    ],
)
def test_bad_fit_input(diffs, kw, match):
    with pytest.raises(CurationError, match=match):
        BTRewardModel.fit(diffs, **kw)


def test_single_orientation_data_still_has_two_classes():
    # "one class only" cannot happen: every pair is also seen mirrored with label 0
    d = np.abs(np.random.default_rng(0).normal(size=(50, 6)))
    m = BTRewardModel.fit(d, holdout=0)
    assert np.all(m.margin(d, np.zeros_like(d)) > 0)


def test_dimension_mismatch_is_a_curation_error():
    c, r, _ = bt_pairs(n=100, d=8)
    m = BTRewardModel.fit(c - r, holdout=0)
    with pytest.raises(CurationError, match="dim"):
        m.prob(np.ones((2, 9)), np.ones((2, 9)))


def test_bytes_and_file_round_trip(tmp_path):
    c, r, _ = bt_pairs(n=300)
    m = BTRewardModel.fit(c - r, model_name="all-MiniLM-L6-v2", recipe="response_only", seed=3)
    m2 = BTRewardModel.from_bytes(m.to_bytes())
    np.testing.assert_array_equal(m2.weights, m.weights)
    assert (m2.temperature, m2.C, m2.model_name, m2.recipe) == (m.temperature, m.C, "all-MiniLM-L6-v2", "response_only")
    assert m2.train_stats == m.train_stats and m2.train_stats["n_pairs"] == 300
    np.testing.assert_array_equal(m2.prob(c, r), m.prob(c, r))
    p = m.save(tmp_path / "rm.npz")
    m3 = BTRewardModel.load(p)
    np.testing.assert_array_equal(m3.weights, m.weights)
    assert m3.train_stats["cv_logloss"] == m.train_stats["cv_logloss"]


@pytest.mark.parametrize("blob", [b"", b"not an npz", b"PK\x03\x04garbage"])
def test_garbage_bytes_are_a_curation_error(blob):
    with pytest.raises(CurationError, match="not a BTRewardModel"):
        BTRewardModel.from_bytes(blob)


def test_foreign_npz_is_refused(tmp_path):
    import io

    buf = io.BytesIO()
    np.savez(buf, weights=np.ones(3), temperature=1.0, C=1.0, meta=np.array('{"format": "other/9"}'))
    with pytest.raises(CurationError, match="format"):
        BTRewardModel.from_bytes(buf.getvalue())


def test_response_texts_recipe():
    assert DEFAULT_RECIPE == "prompt_newline_response"
    assert response_texts(["Q1", "Q2"], ["A1", "A2"]) == ["Q1\nA1", "Q2\nA2"]
    assert response_texts(["Q"], ["A"], recipe="response_only") == ["A"]
    with pytest.raises(CurationError, match="unknown recipe"):
        response_texts(["Q"], ["A"], recipe="nope")
    with pytest.raises(CurationError, match="prompts"):
        response_texts(["Q"], [])
