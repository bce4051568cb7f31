"""Budgeted subset selection over embeddings: ISA, random, or k-center; optionally per stratum.

Every row gets a reason, so a step can count `rows_in = selected + not_selected + bad_embedding`:
  ""                      selected
  "not_selected:<method>" valid but outside the budget
  "bad_embedding"         NaN/inf or zero-norm vector (never selectable; counted, never a crash)

Budget: a float in (0, 1] is a fraction of the *valid* rows (rounded half up, at least 1); an int
is a row count, 1 <= count <= valid rows.

Strata (source, annotator group, ...): the budget is split across strata in proportion to their
valid rows (largest-remainder rounding), and every non-empty stratum keeps at least one row when
the budget allows, so a minority group is not erased. ISA scores come from one GMM over all
valid rows (density is a property of the whole pool); ranking and k-center run inside each stratum.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np

from curation.errors import BAD_EMBEDDING, CurationError, as_matrix, bad_rows, blas_threads, normalize_rows
from curation.isa import MIN_ROWS_PER_COMPONENT, isa_fit

METHODS = ("isa", "random", "kcenter")
MODES = ("topk", "stochastic")


class Selection(NamedTuple):
    """Per-row arrays and a summary (what a run reports)."""

    selected: np.ndarray  # bool (n,)
    scores: np.ndarray  # float (n,): ISA dH / random key / k-center distance; NaN for bad rows (and for
    #                     k-center rows of a stratum that got no quota)
    reasons: np.ndarray  # object (n,) of str, see the module docstring
    summary: dict  # method, n_target, rows_in, selected, not_selected, bad_embedding, info, strata


def select(
    method: str,
    vectors: Any,
    budget: float | int,
    *,
    seed: int = 0,
    mode: str = "topk",
    strata: np.ndarray | None = None,
    temperature: float = 1.0,
    direction: Literal["high", "low"] = "high",
    isa_params: dict | None = None,
    isa_fallback: Literal["error", "random"] = "error",
) -> Selection:
    """Pick a budgeted subset of rows of `vectors` (n, d): method "isa", "random" or "kcenter".

    mode (ISA only): "topk" keeps the largest entropy change (DEFAULT, §5); "stochastic" samples
        without replacement with P proportional to softmax(z/temperature), z = standardised
        surprisal (Gumbel-top-k, i.e. exact successive sampling).
    direction (ISA only): "high" keeps surprising rows (DEFAULT), "low" the typical ones — the
        paper's direction is not confirmed, so both are offered.
    isa_params: extra keyword arguments for `curation.isa.isa_fit` (n_components_pca, ...);
        its GMM seed is `seed` unless isa_params sets one.
    isa_fallback: when the valid rows are too few for the GMM, "error" raises CurationError and
        "random" selects at random and records `info["fallback"]`.
    k-center: greedy farthest-point on L2-normalised rows, first centre drawn with `seed`;
        O(n_stratum * k * d) time, O(n) extra memory besides one normalised copy (no n x n).
    """
    if method not in METHODS:
        raise CurationError(f"method must be one of {METHODS}, got {method!r}")
    if mode not in MODES:
        raise CurationError(f"mode must be one of {MODES}, got {mode!r}")
    if direction not in ("high", "low"):
        raise CurationError(f"direction must be 'high' or 'low', got {direction!r}")
    if not (np.isfinite(temperature) and temperature > 0):
        raise CurationError(f"temperature must be > 0, got {temperature!r}")
    x = as_matrix(vectors)
    n = x.shape[0]
    bad = bad_rows(x)
    valid = np.flatnonzero(~bad)
    if valid.size == 0:
        raise CurationError(f"all {n} rows are NaN/inf or zero-norm: nothing to select from")
    k = resolve_budget(budget, valid.size)
    labels, names = _strata_codes(strata, n)
    quotas, dropped = allocate(np.bincount(labels[valid], minlength=len(names)), k)

    rng = np.random.default_rng(seed)
    xv = x if valid.size == n else x[valid]
    info: dict = {"mode": mode, "direction": direction, "seed": seed} if method == "isa" else {"seed": seed}
    used = method
    params: dict[str, Any] = {"seed": seed} | dict(isa_params or {})
    if method == "isa" and valid.size < MIN_ROWS_PER_COMPONENT * params.get("gmm_components", 2):
        if isa_fallback != "random":
            isa_fit(xv, **params)  # raises the CurationError that explains the minimum
        used = "random"
        info["fallback"] = f"random: {valid.size} valid rows are too few for the ISA GMM"

    scores_v = np.full(valid.size, np.nan)  # k-center strata with a zero quota stay NaN
    keys = None
    if used == "isa":
        fit = isa_fit(xv, **params)
        scores_v[:] = fit.delta_entropy
        info.update(
            entropy=fit.entropy,
            pca_dim=fit.pca_dim,
            gmm_converged=fit.gmm_converged,
            explained_variance=fit.explained_variance,
            isa_params=fit.params,
        )
        z = (fit.surprisal - fit.surprisal.mean()) / (fit.surprisal.std() or 1.0)
        keys = z if direction == "high" else -z
        if mode == "stochastic":
            keys = keys / temperature + rng.gumbel(size=valid.size)
    elif used == "random":
        keys = scores_v[:] = rng.random(valid.size)
    else:
        xv = normalize_rows(xv)

    chosen_v = np.zeros(valid.size, dtype=bool)
    lab_v = labels[valid]
    for s in np.flatnonzero(quotas):
        idx = np.flatnonzero(lab_v == s)
        if keys is not None:
            top = np.argsort(-keys[idx], kind="stable")[: quotas[s]]
            chosen_v[idx[top]] = True
        else:
            sub = xv if idx.size == valid.size else xv[idx]  # no second n x d copy without strata
            with blas_threads(1):  # one mat-vec per centre: threads only spin on shared cores
                picks, dist = kcenter_greedy(sub, int(quotas[s]), rng)
            chosen_v[idx[picks]] = True
            scores_v[idx] = dist

    selected = np.zeros(n, dtype=bool)
    selected[valid] = chosen_v
    scores = np.full(n, np.nan)
    scores[valid] = scores_v
    reasons = np.full(n, f"not_selected:{method}", dtype=object)
    reasons[selected] = ""
    reasons[bad] = BAD_EMBEDDING
    if dropped:
        info["strata_dropped"] = [names[i] for i in dropped]
    sel_by = np.bincount(labels[selected], minlength=len(names))
    val_by = np.bincount(labels[valid], minlength=len(names))
    summary = {
        "method": method,
        "n_target": k,
        "rows_in": n,
        "selected": int(selected.sum()),
        "not_selected": int(valid.size - selected.sum()),
        BAD_EMBEDDING: int(bad.sum()),
        "info": info,
        "strata": {}
        if strata is None
        else {names[i]: {"valid": int(val_by[i]), "selected": int(sel_by[i])} for i in range(len(names))},
    }
    return Selection(selected, scores, reasons, summary)


def resolve_budget(budget: Any, n_valid: int) -> int:
    """Row count for `budget` (fraction in (0, 1] of `n_valid`, or an int count)."""
    if isinstance(budget, (bool, np.bool_)):
        raise CurationError(f"budget must be a fraction in (0, 1] or a row count, got {budget!r}")
    if isinstance(budget, (int, np.integer)):
        if not 1 <= budget <= n_valid:
            raise CurationError(f"budget count must be in [1, {n_valid}] (valid rows), got {budget}")
        return int(budget)
    if isinstance(budget, (float, np.floating)):
        if not (np.isfinite(budget) and 0 < budget <= 1):
            raise CurationError(f"budget fraction must be in (0, 1], got {budget!r}")
        return max(1, min(n_valid, int(np.floor(budget * n_valid + 0.5))))
    raise CurationError(f"budget must be a float in (0, 1] or an int count, got {type(budget).__name__}")


def allocate(sizes: np.ndarray, k: int) -> tuple[np.ndarray, list[int]]:
    """Split `k` rows over strata of `sizes`: proportional, largest remainder, >= 1 per non-empty
    stratum when k allows. Returns (quotas, indices of non-empty strata that got 0)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    exact = k * sizes / sizes.sum()
    q = np.floor(exact).astype(np.int64)
    nonempty = sizes > 0
    if k >= nonempty.sum():
        q[nonempty] = np.maximum(q[nonempty], 1)  # no group is erased
    while q.sum() > k:  # the >=1 floor overshot: take from the most over-served stratum
        over = np.where(q > 1, q - exact, -np.inf)
        q[np.argmax(over)] -= 1
    while q.sum() < k:  # hand out the rest by largest remainder, never above a stratum's size
        cand = np.where(q < sizes, exact - q, -np.inf)
        q[np.argmax(cand)] += 1
    return q, [int(i) for i in np.flatnonzero(nonempty & (q == 0))]


def kcenter_greedy(x_unit: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Greedy farthest-point (Gonzalez) k-center on unit rows.

    Returns (picked row indices in pick order, per-row distance): for picked rows the distance to
    the nearest earlier centre when picked (2.0, the sphere's diameter, for the first); for the
    others the final distance to their nearest centre (the coverage radius they contribute)."""
    n = x_unit.shape[0]
    mind = np.full(n, np.inf)
    picks = np.empty(k, dtype=np.int64)
    at_pick = np.empty(k)
    cur = int(rng.integers(n))
    for t in range(k):
        picks[t] = cur
        at_pick[t] = min(mind[cur], 2.0)
        # |a-b|^2 = 2 - 2 a.b on the unit sphere: one mat-vec per centre, no n x n matrix
        d = np.sqrt(np.clip(2.0 - 2.0 * (x_unit @ x_unit[cur]), 0.0, None))
        np.minimum(mind, d, out=mind)
        mind[cur] = -1.0  # never re-pick a centre; np.minimum keeps the -1 (duplicates sit at 0)
        cur = int(np.argmax(mind))
    dist = mind.copy()
    dist[picks] = at_pick
    return picks, dist


def _strata_codes(strata: Any, n: int) -> tuple[np.ndarray, list[str]]:
    if strata is None:
        return np.zeros(n, dtype=np.int64), ["all"]
    s = np.asarray(strata)
    if s.ndim != 1 or s.shape[0] != n:
        raise CurationError(f"strata must be 1-D with one value per row ({n}), got shape {s.shape}")
    names, codes = np.unique(s.astype(str), return_inverse=True)  # str: None/NaN become a stratum
    return codes.astype(np.int64), [str(v) for v in names]
