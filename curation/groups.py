"""MaxMin-RLHF preference groups: EM over users with one embedding Bradley-Terry head per group.

Follows the authors' code (`josephxu1234/MaxMinRLHF`): hard EM over *users*
(here any grouping key: annotator, source, prompt cluster — recorded as `grouping_key`), init
`user u -> cluster u mod K`, M-step = fit each cluster's BT head on its users' pairs, E-step =
move each user to the head with the highest summed log-likelihood of that user's pairs, 10
rounds. The heads are our CPU stand-in for the paper's LoRA reward models: r_k = w_k . e, fitted
by the same L2 logistic regression as `curation.reward` (§7 "faithful-yet-practical").
Soft EM (responsibilities with mixture weights; not in the authors' code) is `method="soft"`.

K is chosen by held-out log-likelihood (`choose_k`): each user's pairs are dealt into folds,
users are assigned by the E-step on their *training* pairs only, and their held-out pairs are
scored with that head — assigning on the held-out pairs themselves would favour large K.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import logsumexp

from curation.errors import CurationError, as_matrix
from curation.reward import DEFAULT_CS, DEFAULT_RECIPE, BTRewardModel, choose_C, fit_weights, objective


@dataclass(frozen=True)
class GroupModel:
    assign: dict  # key -> group index
    heads: list  # list[BTRewardModel], one per group
    loglik_trace: list  # training log-lik after each E-step (hard: of the assigned heads)
    objective_trace: list  # penalised loss after each M-step; hard EM never increases it
    grouping_key: str
    k: int
    init: str
    method: str
    converged: bool  # assignments stopped changing before `iters` ran out
    iters_run: int
    mix_weights: np.ndarray = field(default_factory=lambda: np.ones(1))  # soft EM pi_k; hard: shares

    def assign_keys(self, diffs: Any, keys: Any) -> dict:
        """E-step for (possibly new) keys on the given pairs: key -> best head."""
        d = as_matrix(diffs, "diffs")
        u, inv = _codes(keys, len(d))
        user_ll = _user_loglik(_pair_loglik(d, self._W()), inv, len(u))
        return dict(zip(u.tolist(), np.argmax(user_ll, axis=1).tolist()))

    def loglik(self, diffs: Any, keys: Any) -> np.ndarray:
        """Per-pair log P(chosen > rejected) under each pair's group head; keys this model has not
        seen are assigned by the E-step on these pairs (as the authors do for held-out users)."""
        d = as_matrix(diffs, "diffs")
        u, inv = _codes(keys, len(d))
        ll = _pair_loglik(d, self._W())
        g = np.array([self.assign.get(x, -1) for x in u.tolist()], dtype=np.int64)
        new = g < 0
        if new.any():
            g[new] = np.argmax(_user_loglik(ll, inv, len(u))[new], axis=1)
        return ll[np.arange(len(d)), g[inv]]

    @property
    def groups_used(self) -> int:
        """Groups that kept at least one key (hard EM can empty a group: it is then K-1 groups)."""
        return len(set(self.assign.values()))

    def min_score(self, e: Any) -> np.ndarray:
        """MaxMin reward min_k w_k . e (for best-of-n or a worst-group objective)."""
        return np.min(np.asarray(e, dtype=np.float64) @ self._W().T, axis=-1)

    def _W(self) -> np.ndarray:
        return np.stack([h.weights for h in self.heads])


def fit_groups(
    diffs: Any,
    group_keys: Any,
    k: int,
    iters: int = 10,
    init: str = "mod",
    seed: int = 0,
    *,
    C: float | None = 1.0,
    method: str = "hard",
    n_init: int = 1,
    grouping_key: str = "annotator",
    model_name: str = "",
    recipe: str = DEFAULT_RECIPE,
) -> GroupModel:
    """EM over the users in `group_keys` (one key per pair of `diffs` = e(chosen) - e(rejected)).

    init: "mod" (authors': u-th sorted key -> u mod k) or "random" (a seeded balanced shuffle).
    C: L2 inverse strength of every head (DEFAULT 1.0); None picks it once by CV on all pairs.
    method: "hard" (authors') or "soft" (responsibility-weighted M-step, mixture weights).
    n_init: runs of EM; the first uses `init`, the others seeded balanced random inits; the run
        with the lowest final penalised loss (soft: highest log-likelihood) wins (hard EM has local optima; DEFAULT 1 =
        the authors' single run).
    An empty cluster keeps its previous head (its users all found a better one)."""
    d = as_matrix(diffs, "diffs").astype(np.float64, copy=False)
    if not np.isfinite(d).all():
        raise CurationError("diffs contain NaN/inf: drop failed embeddings before fitting groups")
    keys_u, inv = _codes(group_keys, len(d))
    n_u = len(keys_u)
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise CurationError(f"k must be a positive int, got {k!r}")
    if k > n_u:
        raise CurationError(f"k={k} groups but only {n_u} distinct {grouping_key} keys")
    if iters < 1:
        raise CurationError(f"iters must be >= 1, got {iters}")
    if init not in ("mod", "random"):
        raise CurationError(f"init must be 'mod' or 'random', got {init!r}")
    if method not in ("hard", "soft"):
        raise CurationError(f"method must be 'hard' or 'soft', got {method!r}")
    if not isinstance(n_init, (int, np.integer)) or n_init < 1:
        raise CurationError(f"n_init must be a positive int, got {n_init!r}")
    rng = np.random.default_rng(seed)
    if C is None:
        C = choose_C(d, np.ones(len(d)), DEFAULT_CS, 5, rng)[0]
    best, best_crit = None, np.inf
    for run in range(int(n_init)):
        z0 = np.arange(n_u) % k if (init == "mod" and run == 0) else rng.permutation(n_u) % k
        fit = _em(d, inv, keys_u, z0, int(k), iters, float(C), method)
        # hard: lowest penalised loss; soft: highest marginal log-likelihood
        crit = fit.objective_trace[-1] if method == "hard" else -fit.loglik_trace[-1]
        if best is None or crit < best_crit - 1e-9:
            best, best_crit = fit, crit
    assert best is not None  # n_init >= 1
    return _package(best, d, inv, keys_u, float(C), grouping_key, init, method, model_name, recipe)


@dataclass
class _Fit:
    z: np.ndarray
    W: np.ndarray
    pi: np.ndarray
    loglik_trace: list
    objective_trace: list
    converged: bool
    iters_run: int


def _em(
    d: np.ndarray,
    inv: np.ndarray,
    keys_u: np.ndarray,
    z: np.ndarray,
    k: int,
    iters: int,
    C: float,
    method: str,
) -> _Fit:
    n_u = len(keys_u)
    resp = np.eye(k)[z]  # users x groups; one-hot for hard EM
    pi = resp.mean(axis=0)
    W = np.zeros((k, d.shape[1]))
    ll_trace, obj_trace, converged, it = [], [], False, 0
    for it in range(1, iters + 1):  # noqa: B007 (``it`` is the number of rounds run, reported below)
        W, obj = _m_step(d, inv, resp, W, C)
        obj_trace.append(obj)
        user_ll = _user_loglik(_pair_loglik(d, W), inv, n_u)
        if method == "hard":
            cur = user_ll[np.arange(n_u), z]
            best = np.argmax(user_ll, axis=1)
            z_new = np.where(user_ll[np.arange(n_u), best] > cur + 1e-9, best, z)  # ties keep: no flapping
            ll_trace.append(float(user_ll[np.arange(n_u), z_new].sum()))
            resp_new = np.eye(k)[z_new]
            done = np.array_equal(z_new, z)
            z = z_new
        else:
            logp = np.log(np.maximum(pi, 1e-300)) + user_ll
            ll_trace.append(float(logsumexp(logp, axis=1).sum()))
            resp_new = np.exp(logp - logsumexp(logp, axis=1, keepdims=True))
            done = np.abs(resp_new - resp).max() < 1e-6
            pi = resp_new.mean(axis=0)
            z = np.argmax(resp_new, axis=1)
        changed = not done
        resp = resp_new
        if done:
            converged = True
            break
    if changed:  # heads must belong to the final assignment
        W, obj = _m_step(d, inv, resp, W, C)
        obj_trace.append(obj)
    if method == "hard":
        pi = resp.mean(axis=0)
    return _Fit(z, W, pi, ll_trace, obj_trace, converged, it)


def _package(
    fit: _Fit,
    d: np.ndarray,
    inv: np.ndarray,
    keys_u: np.ndarray,
    C: float,
    grouping_key: str,
    init: str,
    method: str,
    model_name: str,
    recipe: str,
) -> GroupModel:
    z, W, k = fit.z, fit.W, fit.W.shape[0]
    heads = []
    pair_g = z[inv]
    for g in range(k):
        sel = pair_g == g
        m = d[sel] @ W[g]
        heads.append(
            BTRewardModel(
                weights=W[g].copy(),
                C=float(C),
                model_name=model_name,
                recipe=recipe,
                train_stats={
                    "n_pairs": int(sel.sum()),
                    "n_keys": int((z == g).sum()),
                    "train_accuracy": float((m > 0).mean()) if sel.any() else float("nan"),
                    "calibration": "none (EM head)",
                    "grouping_key": grouping_key,
                },
            )
        )
    return GroupModel(
        assign=dict(zip(keys_u.tolist(), z.tolist())),
        heads=heads,
        loglik_trace=fit.loglik_trace,
        objective_trace=fit.objective_trace,
        grouping_key=grouping_key,
        k=int(k),
        init=init,
        method=method,
        converged=fit.converged,
        iters_run=fit.iters_run,
        mix_weights=fit.pi,
    )


_TIE = 1e-6  # nats per pair


@dataclass(frozen=True)
class KChoice:
    best_k: int
    heldout_loglik: dict  # k -> mean held-out log-lik per pair
    heldout_se: dict  # k -> paired standard error of (top-scoring k - this k)
    models: dict  # k -> GroupModel fitted on all pairs
    n_heldout: int  # pairs scored out-of-fold (keys with one pair are never held out)
    folds: int
    rule: str


def choose_k(
    diffs: Any,
    keys: Any,
    k_range: Iterable[int] = range(1, 6),
    holdout: float = 0.2,
    seed: int = 0,
    rule: str = "1se",
    n_init: int = 4,
    cross_fit: bool = True,
    **fit_kwargs: Any,
) -> KChoice:
    """Pick K by held-out log-likelihood of each key's own held-out pairs.

    Each key's pairs are shuffled and dealt into round(1/holdout) folds, so a key with 2+ pairs
    always keeps one to train on (keys with one pair only train). cross_fit=True (DEFAULT) scores
    every fold in turn, so every such pair is scored once out-of-fold (less noise than one split);
    False scores fold 0 only (a single `holdout` split). Held-out pairs use the head their key
    got from the E-step on its training pairs.
    rule "max": the best mean (ties within 1e-6 nats -> smaller K); "1se" (DEFAULT): the
    smallest K within one paired standard error of the best (splitting a real group costs little,
    so argmax over-splits on small data).
    n_init (DEFAULT 4 here) restarts EM so a stuck run does not decide K; other kwargs go to
    `fit_groups`. `models` are refitted on all pairs."""
    d = as_matrix(diffs, "diffs")
    if not 0 < holdout < 1:
        raise CurationError(f"holdout must be in (0, 1), got {holdout}")
    if rule not in ("max", "1se"):
        raise CurationError(f"rule must be 'max' or '1se', got {rule!r}")
    try:
        ks = sorted({int(x) for x in k_range})
    except (TypeError, ValueError):
        raise CurationError(f"k_range must hold positive ints, got {k_range!r}") from None
    if not ks or ks[0] < 1:
        raise CurationError(f"k_range must hold positive ints, got {list(k_range)}")
    u, inv = _codes(keys, len(d))
    ks = [k for k in ks if k <= len(u)]
    if not ks:
        raise CurationError(f"every k in {list(k_range)} exceeds the {len(u)} distinct keys")
    folds = max(2, int(round(1 / holdout)))
    fold_of = _fold_ids(inv, len(u), folds, np.random.default_rng(seed))
    if (fold_of < 0).all():
        raise CurationError("no key has 2+ pairs: nothing to hold out for choosing K")
    keys_arr = np.asarray(keys)
    fit_kwargs.setdefault("seed", seed)
    fit_kwargs["n_init"] = n_init
    ll = {k: np.full(len(d), np.nan) for k in ks}
    for f in range(folds if cross_fit else 1):
        held = fold_of == f
        if not held.any():
            continue
        for k in ks:
            if k <= len(np.unique(inv[~held])):
                m = fit_groups(d[~held], keys_arr[~held], k, **fit_kwargs)
                ll[k][held] = m.loglik(d[held], keys_arr[held])
    scored = np.isfinite(np.stack([ll[k] for k in ks])).all(axis=0)
    per_pair = {k: ll[k][scored] for k in ks}
    means = {k: float(v.mean()) for k, v in per_pair.items()}
    top = max(means, key=lambda k: (means[k], -k))
    se = {
        k: float(np.std(per_pair[top] - v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
        for k, v in per_pair.items()
    }
    # TIE: a K whose extra groups ended empty scores like K-1 up to optimiser noise (~1e-7)
    within = {k for k in means if means[top] - means[k] <= (se[k] if rule == "1se" else 0.0) + _TIE}
    best = min(within)
    models = {k: fit_groups(d, keys_arr, k, **fit_kwargs) for k in ks}
    return KChoice(
        best_k=best,
        heldout_loglik=means,
        heldout_se=se,
        models=models,
        n_heldout=int(scored.sum()),
        folds=folds if cross_fit else 1,
        rule=rule,
    )


# ---- helpers -------------------------------------------------------------------------------
def _codes(keys: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(keys)
    if a.ndim != 1 or a.shape[0] != n:
        raise CurationError(f"need one group key per pair ({n}), got shape {a.shape}")
    try:
        return np.unique(a, return_inverse=True)
    except TypeError:  # mixed types (e.g. None and str): compare as text
        return np.unique(a.astype(str), return_inverse=True)


def _pair_loglik(d: np.ndarray, W: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -(d @ W.T))  # (n_pairs, k)


def _user_loglik(pair_ll: np.ndarray, inv: np.ndarray, n_u: int) -> np.ndarray:
    return np.stack([np.bincount(inv, weights=pair_ll[:, g], minlength=n_u) for g in range(pair_ll.shape[1])], axis=1)


def _m_step(d: np.ndarray, inv: np.ndarray, resp: np.ndarray, W_prev: np.ndarray, C: float) -> tuple[np.ndarray, float]:
    W = W_prev.copy()
    obj = 0.0
    for g in range(resp.shape[1]):
        sw = resp[inv, g]
        rows = sw > 0  # hard EM: only the cluster's own pairs
        if rows.any():  # empty cluster: keep the previous head
            W[g] = fit_weights(d[rows], C, sw[rows], w0=W_prev[g])
        obj += objective(d[rows], W[g], C, sw[rows])
    return W, obj


def _fold_ids(inv: np.ndarray, n_u: int, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold of each pair: each key's pairs in random order dealt round-robin; -1 for lone pairs."""
    order = rng.permutation(len(inv))
    order = order[np.argsort(inv[order], kind="stable")]  # grouped by key, random within key
    sizes = np.bincount(inv, minlength=n_u)
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    fold = np.empty(len(inv), dtype=np.int64)
    fold[order] = (np.arange(len(inv)) - start[inv[order]]) % folds
    fold[sizes[inv] < 2] = -1
    return fold
