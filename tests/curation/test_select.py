import numpy as np
import pytest

from curation.errors import CurationError
from curation.isa import isa_scores
from curation.select import allocate, kcenter_greedy, resolve_budget, select


def pool(n=1000, d=32, seed=0):
    rng = np.random.default_rng(seed)
    big = rng.normal(size=(n - n // 10, d)) * 0.3 + 1.0
    small = rng.normal(size=(n // 10, d)) - 1.0
    return np.vstack([big, small]).astype(np.float32)


def clusters(n_clusters=10, per=40, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.normal(size=(d, d)))[0][:n_clusters]  # orthonormal directions
    x = np.repeat(centres, per, axis=0) + rng.normal(size=(n_clusters * per, d)) * 0.02
    return x, np.repeat(np.arange(n_clusters), per)


# ---- budget ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "budget, n, want",
    [
        (0.1, 1000, 100),
        (1.0, 7, 7),
        (0.001, 10, 1),
        (0.25, 10, 3),
        (5, 10, 5),
        (np.int64(10), 10, 10),
        (np.float32(0.5), 4, 2),
    ],
)
def test_resolve_budget(budget, n, want):
    assert resolve_budget(budget, n) == want


@pytest.mark.parametrize("budget", [0.0, -0.1, 1.5, float("nan"), float("inf"), 0, -3, 11, True, "10", None])
def test_bad_budget_is_a_curation_error(budget):
    with pytest.raises(CurationError, match="budget"):
        resolve_budget(budget, 10)


@pytest.mark.parametrize("method", ["isa", "random", "kcenter"])
def test_selects_exactly_the_budget_and_explains_every_row(method):
    x = pool()
    r = select(method, x, 0.1, seed=1)
    assert r.selected.sum() == r.summary["n_target"] == 100
    assert set(r.reasons[r.selected]) == {""}
    assert set(r.reasons[~r.selected]) == {f"not_selected:{method}"}
    counts = {k: r.summary[k] for k in ("rows_in", "selected", "not_selected", "bad_embedding")}
    assert counts == {"rows_in": 1000, "selected": 100, "not_selected": 900, "bad_embedding": 0}
    assert r.summary["method"] == method
    assert np.isfinite(r.scores).all()


@pytest.mark.parametrize("method", ["isa", "random", "kcenter"])
def test_nan_and_zero_rows_are_rejected_and_counted(method):
    x = pool()
    x[3] = np.nan
    x[7] = 0.0
    x[11, 5] = np.inf
    r = select(method, x, 0.1)
    bad = [3, 7, 11]
    assert list(r.reasons[bad]) == ["bad_embedding"] * 3
    assert not r.selected[bad].any() and np.isnan(r.scores[bad]).all()
    c = r.summary
    assert c["bad_embedding"] == 3 and c["rows_in"] == c["selected"] + c["not_selected"] + c["bad_embedding"]
    assert c["selected"] == round(0.1 * 997)  # the fraction is of the valid rows


def test_all_bad_rows_is_a_clear_error():
    with pytest.raises(CurationError, match="all 4 rows"):
        select("random", np.zeros((4, 3)), 0.5)


# ---- ISA -----------------------------------------------------------------------------------
def test_isa_topk_takes_the_highest_entropy_change():
    x = pool()
    r = select("isa", x, 0.1, seed=0)
    dh = isa_scores(x, seed=0)
    np.testing.assert_allclose(r.scores, dh)
    assert r.scores[r.selected].min() >= r.scores[~r.selected].max()
    assert r.summary["info"]["pca_dim"] == 32 and "entropy" in r.summary["info"]


def test_isa_direction_low_takes_the_typical_rows():
    r = select("isa", pool(), 0.1, direction="low")
    assert r.scores[r.selected].max() <= r.scores[~r.selected].min()


def test_isa_prefers_the_rare_cluster_random_does_not():
    x = pool()
    isa = select("isa", x, 0.1)
    rnd = select("random", x, 0.1, seed=0)
    assert isa.selected[900:].sum() > 80  # rare 10 % of the pool fills most of the budget
    assert rnd.selected[900:].sum() < 25


def test_stochastic_mode_is_seeded_biased_and_temperature_controlled():
    x = pool()
    a = select("isa", x, 0.1, mode="stochastic", seed=1)
    b = select("isa", x, 0.1, mode="stochastic", seed=1)
    c = select("isa", x, 0.1, mode="stochastic", seed=2)
    np.testing.assert_array_equal(a.selected, b.selected)
    assert not np.array_equal(a.selected, c.selected)
    assert a.selected.sum() == 100
    rnd = select("random", x, 0.1, seed=1)
    assert a.scores[a.selected].mean() > a.scores[rnd.selected].mean()  # biased to high dH
    cold = select("isa", x, 0.1, mode="stochastic", temperature=1e-4, seed=1)
    np.testing.assert_array_equal(cold.selected, select("isa", x, 0.1).selected)
    hot = select("isa", x, 0.1, mode="stochastic", temperature=1e4, seed=1)
    assert hot.selected[900:].sum() < 30  # near uniform


def test_isa_too_few_rows_errors_or_falls_back_when_asked():
    x = np.random.default_rng(0).normal(size=(15, 8))
    with pytest.raises(CurationError, match="at least 20 rows"):
        select("isa", x, 0.5)
    r = select("isa", x, 0.5, isa_fallback="random")
    assert r.selected.sum() == 8 and "fallback" in r.summary["info"]
    assert set(r.reasons[~r.selected]) == {"not_selected:isa"}


def test_isa_params_reach_the_fit():
    r = select("isa", pool(), 0.1, isa_params={"n_components_pca": 4})
    assert r.summary["info"]["pca_dim"] == 4


# ---- strata --------------------------------------------------------------------------------
def test_allocate_is_proportional_and_keeps_minorities():
    q, dropped = allocate(np.array([900, 90, 10]), 50)
    assert q.sum() == 50 and q.tolist() == [45, 4, 1] and dropped == []
    q, _ = allocate(np.array([990, 5, 5]), 10)
    assert q.sum() == 10 and (q[1:] >= 1).all()
    q, _ = allocate(np.array([3, 0, 7]), 10)
    assert q.tolist() == [3, 0, 7]
    q, dropped = allocate(np.array([50, 30, 20]), 2)
    assert q.sum() == 2 and dropped == [2]


@pytest.mark.parametrize("seed", range(20))
def test_allocate_invariants(seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, 50, size=rng.integers(1, 8))
    sizes[0] += 1
    k = int(rng.integers(1, sizes.sum() + 1))
    q, dropped = allocate(sizes, k)
    assert q.sum() == k and (q <= sizes).all() and (q >= 0).all()
    if k >= (sizes > 0).sum():
        assert (q[sizes > 0] >= 1).all() and dropped == []


@pytest.mark.parametrize("method", ["isa", "random", "kcenter"])
def test_strata_keep_their_share_and_the_minority_survives(method):
    x = pool()
    # the minority is placed inside the dense cluster: without strata ISA would skip it entirely
    strata = np.array(["minority"] * 15 + ["web"] * 600 + ["forum"] * 385)
    r = select(method, x, 0.05, strata=strata, seed=0)
    assert r.summary["strata"] == {
        "forum": {"valid": 385, "selected": 19},
        "minority": {"valid": 15, "selected": 1},
        "web": {"valid": 600, "selected": 30},
    }
    assert r.selected.sum() == 50


def test_without_strata_isa_erases_a_dense_minority():
    x = pool()
    minority = np.zeros(1000, dtype=bool)
    minority[:15] = True  # inside the dense cluster
    assert select("isa", x, 0.05).selected[minority].sum() == 0


def test_strata_dropped_when_budget_is_below_the_number_of_strata():
    x = pool(100)
    r = select("random", x, 2, strata=np.repeat(["a", "b", "c"], [50, 30, 20]))
    assert r.selected.sum() == 2 and r.summary["info"]["strata_dropped"] == ["c"]


def test_strata_must_match_rows():
    with pytest.raises(CurationError, match="one value per row"):
        select("random", pool(), 0.1, strata=np.zeros(5))


# ---- k-center ----------------------------------------------------------------------------
def test_kcenter_covers_every_cluster():
    x, label = clusters()
    r = select("kcenter", x, 10, seed=3)
    assert sorted(label[r.selected]) == list(range(10))


def test_kcenter_radius_beats_random():
    x, _ = clusters(n_clusters=12, per=30)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)

    def radius(sel):
        return np.sqrt(np.clip(2 - 2 * (unit @ unit[sel].T), 0, None)).min(axis=1).max()

    kc = select("kcenter", x, 12, seed=0)
    rnd = select("random", x, 12, seed=0)
    assert radius(kc.selected) < radius(rnd.selected)
    # scores of unselected rows are their distance to the nearest centre
    np.testing.assert_allclose(kc.scores[~kc.selected].max(), radius(kc.selected), rtol=1e-5)


def test_kcenter_uses_directions_only():
    x, _ = clusters()
    scale = np.random.default_rng(1).uniform(0.1, 10, size=(len(x), 1))
    a = select("kcenter", x, 10, seed=5)
    b = select("kcenter", x * scale, 10, seed=5)
    np.testing.assert_array_equal(a.selected, b.selected)


def test_kcenter_with_duplicates_never_repicks():
    x = np.repeat(np.eye(4), 10, axis=0)  # 4 distinct points, 10 copies each
    picks, dist = kcenter_greedy(x, 9, np.random.default_rng(0))
    assert len(set(picks.tolist())) == 9
    assert len({int(np.argmax(x[p])) for p in picks[:4]}) == 4  # the 4 distinct points come first
    assert dist.min() >= 0


def test_random_is_seeded():
    x = pool()
    a, b, c = (select("random", x, 0.1, seed=s).selected for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"method": "best"}, "method"),
        ({"mode": "greedy"}, "mode"),
        ({"direction": "up"}, "direction"),
        ({"temperature": 0}, "temperature"),
    ],
)
def test_bad_options(kw, match):
    args = {"method": "isa", "vectors": pool(100), "budget": 0.1} | kw
    with pytest.raises(CurationError, match=match):
        select(**args)


def test_empty_and_non_matrix_input():
    with pytest.raises(CurationError, match="empty"):
        select("random", np.empty((0, 4)), 0.5)
    with pytest.raises(CurationError, match="2-D"):
        select("random", np.ones(4), 0.5)


def test_kcenter_stratum_without_quota_is_left_unscored():
    r = select("kcenter", pool(100), 2, strata=np.repeat(["a", "b", "c"], [50, 30, 20]))
    assert r.summary["info"]["strata_dropped"] == ["c"]
    assert np.isnan(r.scores[80:]).all() and np.isfinite(r.scores[:80]).all()
