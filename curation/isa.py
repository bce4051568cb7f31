"""ISA: information-theoretic subsampling scores (Khera et al., arXiv 2411.10545; US 2026/0073236 A1).

What is sourced and what is ours:

* paper abstract: a **two-component GMM** and entropy-based sampling  -> `gmm_components=2`
* patent claims 1-2: per-element **entropy change = H(D) - H(D \\ {i})**, elements are embeddings
* DEFAULT (ours): PCA to 32 dims first (a full-covariance GMM in 384 dims is ill-conditioned),
  full covariance, L2-normalised inputs, whitened PCA scores, the resubstitution entropy estimate
  with no refit, and (in `select`) top-k by largest entropy change.

Derivation (resubstitution estimate, GMM fitted once on all N points, not refitted per point):
with surprisal s_j = -log p(z_j) under the fitted GMM,

    H(D)       ~= (1/N)     * sum_j s_j
    H(D \\ {i}) ~= (1/(N-1)) * sum_{j != i} s_j = (N*H(D) - s_i) / (N-1)
    dH_i        = H(D) - H(D \\ {i}) = (s_i - H(D)) / (N-1)

so ranking by dH is ranking by surprisal: low-density ("informative") examples first. dH is also
unchanged by any affine map of the space (it shifts every s_j by the same log-Jacobian), which is
why whitening the PCA scores — done only for conditioning — changes no score.

Memory: the PCA is done by hand in row chunks (a moments pass and a projection pass), so
a 200k x 384 float32 input is never copied; the largest temporaries are the n x pca_dim scores.
Exact duplicates sit in the densest spots and get very negative dH: dedup before ISA.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from curation.errors import CurationError, as_matrix
from curation.errors import blas_threads as _blas_threads

DEFAULT_PCA_DIM = 32  # DEFAULT: §5 suggests 32-64
DEFAULT_GMM_COMPONENTS = 2  # paper
MIN_ROWS_PER_COMPONENT = 10  # DEFAULT: below this a GMM component is fitted to noise
_CHUNK = 4096  # rows per pass: 4096 x 384 float64 = 12 MiB temporaries


@dataclass(frozen=True)
class ISAFit:
    """Everything `isa_scores` computes, for the `isa_scores` warehouse table (§5 Data records)."""

    delta_entropy: np.ndarray  # dH_i = (s_i - H) / (N - 1); larger = more informative
    surprisal: np.ndarray  # s_i = -log p(z_i) in the whitened PCA space (= -gmm_logpdf)
    entropy: float  # H(D), resubstitution estimate, nats, whitened PCA space
    component: np.ndarray  # most likely GMM component of each row
    pca_dim: int  # dims actually used (may be below the request: see `isa_fit`)
    explained_variance: float  # share of total variance kept by the PCA
    gmm_converged: bool
    params: dict = field(default_factory=dict)


def isa_scores(
    vectors: Any,
    n_components_pca: int = DEFAULT_PCA_DIM,
    gmm_components: int = DEFAULT_GMM_COMPONENTS,
    seed: int = 0,
    **kwargs: Any,
) -> np.ndarray:
    """Per-example entropy change dH_i (float64, shape (n,)); see the module docstring.

    Keyword arguments go to `isa_fit`. Raises `CurationError` on empty input, NaN/inf or
    zero-norm rows (filter them first; `select` does and reports them), or too few rows."""
    return isa_fit(vectors, n_components_pca, gmm_components, seed, **kwargs).delta_entropy


def isa_fit(
    vectors: Any,
    n_components_pca: int = DEFAULT_PCA_DIM,
    gmm_components: int = DEFAULT_GMM_COMPONENTS,
    seed: int = 0,
    *,
    covariance_type: str = "full",
    normalize: bool = True,
    reg_covar: float = 1e-6,
    max_fit_rows: int | None = None,
    max_iter: int = 200,
    blas_threads: int | None = 1,
) -> ISAFit:
    """Fit PCA -> GMM and score every row.

    n_components_pca: requested PCA dims; the dims used are
        min(request, d, rank of the data, n // gmm_components - 1) so that each component has more
        points than dimensions (a documented fallback; `ISAFit.pca_dim` says what was used).
    gmm_components: GMM components (paper: 2). n must be >= 10 per component, else CurationError.
    normalize: L2-normalise rows first (cosine geometry, as for all sentence-transformer work).
    reg_covar: added to covariance diagonals; relative, since the PCA scores are whitened.
    max_fit_rows: fit the GMM on a seeded random subset of this many rows (all rows are scored);
        None fits on all rows.
    blas_threads: BLAS thread cap while fitting (DEFAULT 1: faster on shared cores, see
        `curation.errors.blas_threads`); None keeps the library default.
    """
    with _blas_threads(blas_threads):
        return _isa_fit(
            vectors,
            n_components_pca,
            gmm_components,
            seed,
            covariance_type,
            normalize,
            reg_covar,
            max_fit_rows,
            max_iter,
        )


def _isa_fit(
    vectors: Any,
    n_components_pca: int,
    gmm_components: int,
    seed: int,
    covariance_type: str,
    normalize: bool,
    reg_covar: float,
    max_fit_rows: int | None,
    max_iter: int,
) -> ISAFit:
    x = as_matrix(vectors)
    n, d = x.shape
    if not isinstance(gmm_components, (int, np.integer)) or gmm_components < 1:
        raise CurationError(f"gmm_components must be a positive int, got {gmm_components!r}")
    if not isinstance(n_components_pca, (int, np.integer)) or n_components_pca < 1:
        raise CurationError(f"n_components_pca must be a positive int, got {n_components_pca!r}")
    if covariance_type not in ("full", "tied", "diag", "spherical"):
        raise CurationError(f"covariance_type must be full|tied|diag|spherical, got {covariance_type!r}")
    if max_fit_rows is not None and max_fit_rows < MIN_ROWS_PER_COMPONENT * gmm_components:
        raise CurationError(
            f"max_fit_rows={max_fit_rows} is below the GMM minimum of {MIN_ROWS_PER_COMPONENT * gmm_components} rows"
        )
    min_rows = MIN_ROWS_PER_COMPONENT * gmm_components
    if n < min_rows:
        raise CurationError(
            f"ISA needs at least {min_rows} rows for a {gmm_components}-component GMM "
            f"({MIN_ROWS_PER_COMPONENT} per component), got {n}; use method='random' or 'kcenter'"
        )

    mean, cov = _moments(x, normalize)
    evals, evecs = np.linalg.eigh(cov)  # ascending
    evals, evecs = evals[::-1], evecs[:, ::-1]
    total = float(evals.clip(min=0).sum())
    if not total > 1e-12 * (total + float(mean @ mean)):  # relative: rounding leaves ~1e-33
        raise CurationError("all rows are identical (zero variance): nothing for ISA to rank")
    rank = int((evals > evals[0] * 1e-10).sum())  # drop directions with no variance
    k = int(min(n_components_pca, d, rank, n // gmm_components - 1))
    basis = evecs[:, :k] / np.sqrt(evals[:k])  # project + whiten in one matmul
    # float32 in -> the GMM runs in float32 (2-7x faster here, half the memory); the scores are
    # whitened, so its covariances are well conditioned for float32 Cholesky
    z = _project(x, mean, basis, normalize).astype(x.dtype, copy=False)

    rng = np.random.default_rng(seed)
    fit_rows = z
    if max_fit_rows is not None and n > max_fit_rows:
        fit_rows = z[np.sort(rng.choice(n, size=int(max_fit_rows), replace=False))]
    gmm = GaussianMixture(
        n_components=int(gmm_components),
        covariance_type=covariance_type,
        reg_covar=reg_covar,
        max_iter=max_iter,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported via gmm_converged
        gmm.fit(fit_rows)

    surprisal = -gmm.score_samples(z).astype(np.float64)
    entropy = float(surprisal.mean())
    delta = (surprisal - entropy) / (n - 1)
    return ISAFit(
        delta_entropy=delta,
        surprisal=surprisal,
        entropy=entropy,
        component=gmm.predict(z),
        pca_dim=k,
        explained_variance=float(evals[:k].sum() / total),
        gmm_converged=bool(gmm.converged_),
        params={
            "n_components_pca": int(n_components_pca),
            "pca_dim": k,
            "gmm_components": int(gmm_components),
            "covariance_type": covariance_type,
            "normalize": normalize,
            "reg_covar": reg_covar,
            "max_fit_rows": max_fit_rows,
            "seed": seed,
            "estimator": "resubstitution",
        },
    )


def _rows(x: np.ndarray, lo: int, normalize: bool) -> np.ndarray:  # one chunk, float64
    c = x[lo : lo + _CHUNK].astype(np.float64)
    if normalize:
        c /= np.linalg.norm(c, axis=1, keepdims=True)
    return c


def _moments(x: np.ndarray, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance in one chunked float64 pass, which also refuses NaN/inf/zero rows
    (their squared norm is non-finite or 0). cov = (X'X - n mu mu') / (n - 1): in float64 the
    cancellation costs ~1e-13 relative on unit-norm rows, far below the PCA's needs."""
    n, d = x.shape
    total, gram, n_bad = np.zeros(d), np.zeros((d, d)), 0
    for lo in range(0, n, _CHUNK):
        c = x[lo : lo + _CHUNK].astype(np.float64)
        sq = np.einsum("ij,ij->i", c, c)
        n_bad += int((~(np.isfinite(sq) & (sq > 0))).sum())
        if n_bad:
            continue  # keep counting, skip the arithmetic
        if normalize:
            c /= np.sqrt(sq)[:, None]
        total += c.sum(axis=0)
        gram += c.T @ c
    if n_bad:
        raise CurationError(
            f"{n_bad} of {n} rows are NaN/inf or zero-norm; drop them first "
            "(curation.select.select rejects them as 'bad_embedding')"
        )
    mean = total / n
    return mean, (gram - n * np.outer(mean, mean)) / max(n - 1, 1)


def _project(x: np.ndarray, mean: np.ndarray, basis: np.ndarray, normalize: bool) -> np.ndarray:
    z = np.empty((x.shape[0], basis.shape[1]))
    for lo in range(0, x.shape[0], _CHUNK):
        z[lo : lo + _CHUNK] = (_rows(x, lo, normalize) - mean) @ basis
    return z
