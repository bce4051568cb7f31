import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

import curation.isa as isa
from curation.errors import CurationError
from curation.isa import isa_fit, isa_scores


def mixture(n_big=450, n_small=50, d=24, seed=0, dtype=np.float64):
    """A dense cluster and a small, wider, far-away one (the 'informative' minority)."""
    rng = np.random.default_rng(seed)
    big = rng.normal(size=(n_big, d)) * 0.3 + 1.0
    small = rng.normal(size=(n_small, d)) * 0.8 - 1.0
    return np.vstack([big, small]).astype(dtype)


def test_delta_entropy_is_the_leave_one_out_resubstitution_change():
    f = isa_fit(mixture(), n_components_pca=8, normalize=False)
    s = f.surprisal
    assert f.entropy == pytest.approx(s.mean())
    loo = f.entropy - (s.sum() - s) / (len(s) - 1)  # H(D) - H(D \ {i}), every i at once
    np.testing.assert_allclose(f.delta_entropy, loo, rtol=0, atol=1e-12)
    assert np.argsort(f.delta_entropy).tolist() == np.argsort(s).tolist()  # ranking = surprisal


def test_matches_an_independent_sklearn_pca_gmm_pipeline():
    x = mixture(seed=1)
    ours = isa_fit(x, n_components_pca=6, normalize=False, reg_covar=1e-9).delta_entropy
    z = PCA(n_components=6).fit_transform(x)  # not whitened: dH must not care
    gmm = GaussianMixture(2, covariance_type="full", reg_covar=1e-9, random_state=0).fit(z)
    s = -gmm.score_samples(z)
    ref = (s - s.mean()) / (len(s) - 1)
    np.testing.assert_allclose(ours, ref, atol=1e-6 * np.abs(ref).max())


def test_low_density_rows_rank_highest():
    x = mixture()
    dh = isa_scores(x, n_components_pca=8, normalize=False)
    assert dh[450:].mean() > 0 > dh[:450].mean()
    top = np.argsort(-dh)[:50]
    assert (top >= 450).mean() > 0.8


def test_planted_outliers_rank_first_on_normalised_embeddings():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 64)) * 0.05 + np.eye(64)[0]  # near one direction on the sphere
    x[:5] = rng.normal(size=(5, 64))  # five random directions
    dh = isa_scores(x)
    assert set(np.argsort(-dh)[:5]) == set(range(5))


def test_scale_and_whitening_do_not_change_scores():
    x = mixture(seed=2)
    a = isa_scores(x, n_components_pca=8, normalize=False)
    b = isa_scores(x * 37.0 + 5.0, n_components_pca=8, normalize=False)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9)


def test_normalize_ignores_row_length():
    x = mixture(seed=4)
    lengths = np.random.default_rng(0).uniform(0.5, 3.0, size=(len(x), 1))
    np.testing.assert_allclose(isa_scores(x, 8), isa_scores(x * lengths, 8), rtol=1e-6, atol=1e-10)


def test_chunked_moments_and_projection_equal_one_shot(monkeypatch):
    x = mixture(seed=5).astype(np.float32)
    full = isa_fit(x, 8)
    monkeypatch.setattr(isa, "_CHUNK", 37)
    chunked = isa_fit(x, 8)
    np.testing.assert_allclose(chunked.delta_entropy, full.delta_entropy, rtol=1e-6, atol=1e-9)
    assert chunked.explained_variance == pytest.approx(full.explained_variance)


def test_float32_input_is_scored_in_float64():
    dh = isa_scores(mixture(dtype=np.float32), 8)
    assert dh.dtype == np.float64 and np.isfinite(dh).all()


def test_no_refit_ranking_agrees_with_true_refit_leave_one_out():
    # the resubstitution shortcut skips refitting; check it ranks like refitting the GMM without i
    x = mixture(n_big=180, n_small=20, d=6, seed=6)
    z = PCA(n_components=3).fit_transform(x)

    def entropy(rows):  # resubstitution entropy of a GMM fitted on `rows`
        return -GaussianMixture(2, random_state=0, tol=1e-8).fit(rows).score_samples(rows).mean()

    with threadpool_limits(1):  # 200 tiny fits: threaded BLAS only spins on a shared machine
        h = entropy(z)
        refit = np.array([h - entropy(np.delete(z, i, 0)) for i in range(len(z))])
    shortcut = isa_scores(x, 3, normalize=False)
    assert spearmanr(refit, shortcut).statistic > 0.95


def test_seeded_and_deterministic():
    x = mixture(seed=7)
    np.testing.assert_array_equal(isa_scores(x, 8, seed=3), isa_scores(x, 8, seed=3))


def test_max_fit_rows_scores_every_row():
    x = mixture(n_big=900, n_small=100, seed=8)
    f = isa_fit(x, 8, max_fit_rows=300, normalize=False)
    assert f.delta_entropy.shape == (1000,)
    assert spearmanr(f.delta_entropy, isa_scores(x, 8, normalize=False)).statistic > 0.9


def test_small_n_shrinks_pca_dims_and_reports_it():
    x = np.random.default_rng(0).normal(size=(20, 384))
    f = isa_fit(x)  # asks for 32 dims; 20 rows / 2 components leaves at most 9
    assert f.pca_dim == 9 and f.params["pca_dim"] == 9
    assert np.isfinite(f.delta_entropy).all()


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.empty((0, 8)), "empty"),
        (np.ones(8), "2-D"),
        (np.random.default_rng(0).normal(size=(19, 8)), "at least 20 rows"),
        (np.ones((50, 8)), "identical"),
        (np.array([["a", "b"]] * 30), "real numbers"),
        ([[1.0, 2.0], [3.0]], "2-D"),
    ],
)
def test_bad_input_raises_curation_error(bad, match):
    with pytest.raises(CurationError, match=match):
        isa_scores(bad)


@pytest.mark.parametrize("row", [np.nan, np.inf, 0.0])
def test_nan_inf_zero_rows_are_refused_with_a_count(row):
    x = mixture()
    x[[3, 9]] = row
    with pytest.raises(CurationError, match="2 of 500 rows"):
        isa_scores(x)


@pytest.mark.parametrize(
    "kw",
    [
        {"gmm_components": 0},
        {"n_components_pca": 0},
        {"gmm_components": 1.5},
        {"covariance_type": "banana"},
        {"max_fit_rows": 5},
    ],
)
def test_bad_parameters(kw):
    with pytest.raises(CurationError):
        isa_scores(mixture(), **kw)


def test_curation_error_is_a_value_error():
    assert issubclass(CurationError, ValueError)
