"""Embedding Bradley-Terry reward model: r(x, y) = w . e(x, y), P(a > b) = sigmoid(w . (e_a - e_b) / T).

Fit: L2 logistic regression without intercept on pair differences d = e(chosen) - e(rejected),
symmetrised (each d with label 1 plus -d with label 0). Symmetrising makes the two classes exist
by construction and forces P(a > b) = 1 - P(b > a); an intercept would be a position bias, so
there is none. The loss is solved directly (L-BFGS): C * sum_i 2*softplus(-w.d_i) + |w|^2 / 2,
which is exactly scikit-learn's LogisticRegression(fit_intercept=False, C=C) on the symmetrised
set, without materialising the doubled matrix.

C comes from the caller or from k-fold CV (folds split by pair, so a pair and its mirror never
straddle folds). Calibration: a temperature T (Platt scaling without intercept, the only Platt
form that keeps the antisymmetry) fitted on a held-out share of pairs; the ECE before/after is
reported cross-fitted (T fitted on one half of the held-out pairs, measured on the other).

What to embed for a response is a *recipe* (stored with the model so re-embedding is detectable):
DEFAULT "prompt_newline_response" = embedding of prompt + "\\n" + response.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit

from curation.errors import CurationError, as_matrix, blas_threads
from curation.recipes import text_array

RECIPES = {
    "prompt_newline_response": lambda prompt, response: f"{prompt}\n{response}",
    "response_only": lambda prompt, response: response,
}
DEFAULT_RECIPE = "prompt_newline_response"
DEFAULT_CS = (0.01, 0.1, 1.0, 10.0, 100.0)  # DEFAULT grid; embedding diffs have norm ~0.1-1
MIN_CALIBRATION_PAIRS = 20  # DEFAULT: below this a fitted T is noise; T = 1 and say so
ECE_BINS = 10  # DEFAULT: equal-width confidence bins over [0.5, 1]
_FORMAT = "prefmill.bt_reward/1"


def response_texts(prompts: Sequence[str], responses: Sequence[str], recipe: str = DEFAULT_RECIPE) -> list[str]:
    """Texts to embed for (prompt, response) pairs under `recipe`."""
    if recipe not in RECIPES:
        raise CurationError(f"unknown recipe {recipe!r}; known: {sorted(RECIPES)}")
    if len(prompts) != len(responses):
        raise CurationError(f"{len(prompts)} prompts but {len(responses)} responses")
    f = RECIPES[recipe]
    return [f(p, r) for p, r in zip(prompts, responses)]


def preference_pairs(table: pa.Table, sample: int | None = None, seed: int = 0) -> pa.Table:
    """The pairs that carry a preference (label ``chosen_better``; ties do not), optionally a seeded sample
    of ``sample`` of them in table order."""
    table = table.filter(pc.equal(table.column("label"), "chosen_better"))
    if sample is not None and sample < table.num_rows:
        idx = np.sort(np.random.default_rng(seed).choice(table.num_rows, sample, replace=False))
        table = table.take(pa.array(idx))
    if table.num_rows == 0:
        raise CurationError("no non-tie pairs to learn from")
    return table


def pair_texts(table: pa.Table, recipe: str = DEFAULT_RECIPE) -> list[str]:
    """Texts to embed for pairwise rows under ``recipe``: every (prompt, chosen), then every (prompt, rejected)."""
    prompts = text_array(table, "prompt").to_pylist()
    return response_texts(prompts, text_array(table, "chosen").to_pylist(), recipe) + response_texts(
        prompts, text_array(table, "rejected").to_pylist(), recipe
    )


@dataclass(frozen=True)
class BTRewardModel:
    weights: np.ndarray  # (d,)
    temperature: float = 1.0
    C: float = 1.0
    model_name: str = ""  # embedding model the weights belong to
    recipe: str = DEFAULT_RECIPE
    train_stats: dict = field(default_factory=dict)

    # ---- fitting -------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        diffs: Any,
        *,
        C: float | None = None,
        Cs: Sequence[float] = DEFAULT_CS,
        cv: int = 5,
        holdout: float = 0.2,
        seed: int = 0,
        sample_weight: Any = None,
        model_name: str = "",
        recipe: str = DEFAULT_RECIPE,
    ) -> BTRewardModel:
        """Fit on diffs (n_pairs, d) = e(chosen) - e(rejected).

        C: fixed inverse L2 strength; None picks it from `Cs` by `cv`-fold CV log-loss.
        holdout: share of pairs kept out of the weights to fit the temperature (0 = no
            calibration, T = 1, all pairs train the weights).
        sample_weight: per-pair weights (soft EM, importance weights).
        NaN/inf diffs raise CurationError; all-zero diffs carry no preference and are dropped
        (counted in train_stats["dropped_zero_diff"])."""
        d = as_matrix(diffs, "diffs").astype(np.float64, copy=False)
        if not np.isfinite(d).all():
            raise CurationError("diffs contain NaN/inf: embed failures must be dropped before fitting")
        sw = np.ones(len(d)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if sw.shape != (len(d),) or not np.isfinite(sw).all() or (sw < 0).any():
            raise CurationError("sample_weight must be finite, >= 0, one per pair")
        if not 0 <= holdout < 1:
            raise CurationError(f"holdout must be in [0, 1), got {holdout}")
        if C is not None and not (np.isfinite(C) and C > 0):
            raise CurationError(f"C must be > 0, got {C}")
        keep = np.abs(d).sum(axis=1) > 0
        stats: dict = {"n_pairs": int(len(d)), "dropped_zero_diff": int((~keep).sum()), "dim": int(d.shape[1])}
        d, sw = d[keep], sw[keep]
        if len(d) == 0 or sw.sum() == 0:
            raise CurationError("no informative pairs: every diff is zero or has zero weight")

        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(d))
        n_hold = int(round(holdout * len(d)))
        if 0 < n_hold < MIN_CALIBRATION_PAIRS:
            stats["calibration"] = f"skipped: {n_hold} held-out pairs < {MIN_CALIBRATION_PAIRS}"
            n_hold = 0
        hold, train = perm[:n_hold], perm[n_hold:]

        if C is not None:
            stats["C_selection"] = "given"
        else:
            C, stats["C_selection"], stats["cv_logloss"] = choose_C(d[train], sw[train], Cs, cv, rng)
        w = fit_weights(d[train], float(C), sw[train])
        m_train = d[train] @ w
        stats.update(
            C=float(C),
            n_train=int(len(train)),
            n_holdout=int(n_hold),
            train_accuracy=_acc(m_train, sw[train]),
            train_logloss=_logloss(m_train, sw[train]),
        )
        T = 1.0
        if n_hold:
            m = d[hold] @ w
            T = fit_temperature(m, sw[hold])
            stats.update(_calibration_report(m, sw[hold], T, rng))
            stats.setdefault("calibration", "temperature")
        elif "calibration" not in stats:
            stats["calibration"] = "none (holdout=0)"
        stats["temperature"] = float(T)
        return cls(weights=w, temperature=float(T), C=float(C), model_name=model_name, recipe=recipe, train_stats=stats)

    # ---- scoring -------------------------------------------------------------------------
    def score(self, e: Any) -> np.ndarray:
        """Linear reward w . e for rows of e (n, d) (or one vector -> scalar array)."""
        return self._rows(e) @ self.weights

    def margin(self, e_a: Any, e_b: Any) -> np.ndarray:
        """Raw reward difference r(a) - r(b) = w . (e_a - e_b) (uncalibrated logit)."""
        return self.score(e_a) - self.score(e_b)

    def prob(self, e_a: Any, e_b: Any) -> np.ndarray:
        """Calibrated P(a preferred over b) = sigmoid(margin / T)."""
        return expit(self.margin(e_a, e_b) / self.temperature)

    def pair_loglik(self, diffs: Any, calibrated: bool = False) -> np.ndarray:
        """log P(chosen > rejected) per pair of diffs (n, d); raw logits unless `calibrated`."""
        m = self._rows(diffs) @ self.weights
        if calibrated:
            m = m / self.temperature
        return -np.logaddexp(0.0, -m)

    def _rows(self, e: Any) -> np.ndarray:
        e = np.asarray(e, dtype=np.float64)
        if e.shape[-1:] != self.weights.shape:
            raise CurationError(f"embedding dim {e.shape[-1:]} does not match the model's {self.weights.shape}")
        return e

    # ---- storage -------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """npz: weights, temperature, C, and JSON meta (model name, recipe, train stats)."""
        meta = {
            "format": _FORMAT,
            "model_name": self.model_name,
            "recipe": self.recipe,
            "train_stats": self.train_stats,
        }
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            weights=self.weights,
            temperature=np.float64(self.temperature),
            C=np.float64(self.C),
            meta=np.array(json.dumps(meta, default=_json_default)),
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> BTRewardModel:
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as z:
                meta = json.loads(str(z["meta"][()]))
                if meta.get("format") != _FORMAT:
                    raise CurationError(f"unknown reward-model format {meta.get('format')!r}")
                return cls(
                    weights=z["weights"].astype(np.float64),
                    temperature=float(z["temperature"]),
                    C=float(z["C"]),
                    model_name=meta["model_name"],
                    recipe=meta["recipe"],
                    train_stats=meta["train_stats"],
                )
        except CurationError:
            raise
        except Exception as e:  # zip/npz/json/key errors: one clear message
            raise CurationError(f"not a BTRewardModel blob: {type(e).__name__}: {e}") from None

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> BTRewardModel:
        return cls.from_bytes(Path(path).read_bytes())


def score_pairs(model: BTRewardModel, e_prompt_chosen: Any, e_prompt_rejected: Any) -> tuple[np.ndarray, np.ndarray]:
    """(calibrated P(chosen > rejected), raw margin) per pair; embeddings under `model.recipe`."""
    return model.prob(e_prompt_chosen, e_prompt_rejected), model.margin(e_prompt_chosen, e_prompt_rejected)


# ---- numerics ------------------------------------------------------------------------------
def fit_weights(d: np.ndarray, C: float, sw: np.ndarray | None = None, w0: np.ndarray | None = None) -> np.ndarray:
    """argmin_w  C * sum_i sw_i * 2 * softplus(-w.d_i) + |w|^2 / 2  (the symmetrised logistic loss).

    Runs with one BLAS thread: its mat-vecs are small (see `curation.errors.blas_threads`)."""
    sw = np.ones(len(d)) if sw is None else sw
    if len(d) == 0 or sw.sum() == 0:
        return np.zeros(d.shape[1]) if w0 is None else w0
    with blas_threads(1):
        return _lbfgs(d, C, sw, w0)


def _lbfgs(d: np.ndarray, C: float, sw: np.ndarray, w0: np.ndarray | None) -> np.ndarray:
    def f(w: np.ndarray) -> tuple[float, np.ndarray]:
        m = d @ w
        loss = 2.0 * C * (sw @ np.logaddexp(0.0, -m)) + 0.5 * (w @ w)
        grad = -2.0 * C * (d.T @ (sw * expit(-m))) + w
        return loss, grad

    res = minimize(
        f,
        np.zeros(d.shape[1]) if w0 is None else w0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 1000, "gtol": 1e-6},
    )
    return res.x


def objective(d: np.ndarray, w: np.ndarray, C: float, sw: np.ndarray | None = None) -> float:
    """The penalised loss `fit_weights` minimises (for EM monotonicity checks)."""
    sw = np.ones(len(d)) if sw is None else sw
    return float(2.0 * C * (sw @ np.logaddexp(0.0, -(d @ w))) + 0.5 * (w @ w))


def fit_temperature(m: np.ndarray, sw: np.ndarray | None = None) -> float:
    """T minimising the held-out NLL of sigmoid(m / T); searched on log T in [-5, 5]."""
    sw = np.ones(len(m)) if sw is None else sw
    res = minimize_scalar(lambda t: sw @ np.logaddexp(0.0, -m * np.exp(-t)), bounds=(-5.0, 5.0), method="bounded")
    return float(np.exp(res.x))


def ece(m: np.ndarray, T: float = 1.0, sw: np.ndarray | None = None, bins: int = ECE_BINS) -> float:
    """Expected calibration error of pairwise predictions. Pair orientation is arbitrary, so use
    confidence = max(p, 1 - p) and correct = (p > 1/2), binned equal-width over [0.5, 1]."""
    sw = np.ones(len(m)) if sw is None else sw
    p = expit(m / T)
    conf = np.maximum(p, 1 - p)
    correct = (m > 0).astype(np.float64)
    b = np.minimum(((conf - 0.5) * 2 * bins).astype(np.int64), bins - 1)
    wsum = np.bincount(b, weights=sw, minlength=bins)
    gap = np.bincount(b, weights=sw * conf, minlength=bins) - np.bincount(b, weights=sw * correct, minlength=bins)
    return float(np.abs(gap).sum() / wsum.sum())


def _calibration_report(m: np.ndarray, sw: np.ndarray, T: float, rng: np.random.Generator) -> dict:
    order = rng.permutation(len(m))
    a, b = order[: len(m) // 2], order[len(m) // 2 :]
    Ta, Tb = fit_temperature(m[a], sw[a]), fit_temperature(m[b], sw[b])
    wa, wb = sw[a].sum(), sw[b].sum()
    cross = (ece(m[b], Ta, sw[b]) * wb + ece(m[a], Tb, sw[a]) * wa) / (wa + wb)
    return {
        "holdout_accuracy": _acc(m, sw),
        "holdout_logloss_raw": _logloss(m, sw),
        "holdout_logloss_calibrated": _logloss(m / T, sw),
        "ece_raw": ece(m, 1.0, sw),
        "ece_calibrated_crossfit": float(cross),
    }


def choose_C(
    d: np.ndarray, sw: np.ndarray, Cs: Sequence[float], cv: int, rng: np.random.Generator
) -> tuple[float, str, dict]:
    """(C with the lowest k-fold CV log-loss, how it was chosen, loss per C); folds split pairs.
    Within a fold the Cs run in ascending order, each warm-started from the previous solution
    (the regularisation path): large C from zero takes L-BFGS many times longer."""
    folds = min(int(cv), len(d) // 2)
    if folds < 2:
        return 1.0, "default (too few pairs for CV)", {}
    fold_of = rng.permutation(len(d)) % folds
    grid = sorted(float(c) for c in Cs)
    tot, wt = np.zeros(len(grid)), np.zeros(len(grid))
    for f in range(folds):
        tr, te = fold_of != f, fold_of == f
        w = None
        for i, C in enumerate(grid):
            w = fit_weights(d[tr], C, sw[tr], w0=w)
            tot[i] += sw[te] @ np.logaddexp(0.0, -(d[te] @ w))
            wt[i] += sw[te].sum()
    losses = {C: (tot[i] / wt[i] if wt[i] else np.inf) for i, C in enumerate(grid)}
    best = min(losses, key=lambda c: (losses[c], c))  # ties -> stronger regularisation
    return best, "cv", {repr(c): float(v) for c, v in losses.items()}


def _acc(m: np.ndarray, sw: np.ndarray) -> float:
    return float((sw @ ((m > 0) + 0.5 * (m == 0))) / sw.sum())


def _logloss(m: np.ndarray, sw: np.ndarray) -> float:
    return float((sw @ np.logaddexp(0.0, -m)) / sw.sum())


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
