"""Curation errors, the shared embedding-matrix checks, and the BLAS thread limit.

Bad input to a curation step is the caller's problem, not a crash: it raises `CurationError` (a
`PrefmillError`, and a `ValueError` so callers that already catch ValueError keep working) with a message that says what
to fix, or — where a step can go on without the row — the row is rejected with a counted reason.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from typing import Any

import numpy as np

from schemas.errors import PrefmillError

BAD_EMBEDDING = "bad_embedding"


class CurationError(PrefmillError, ValueError):
    """Input a curation step cannot work with (empty data, bad budget, too few rows, ...)."""


def as_matrix(vectors: Any, name: str = "vectors") -> np.ndarray:
    """`vectors` as a 2-D float array (float32 stays float32: 200k x 384 is 300 MB, not 600)."""
    try:
        x = np.asarray(vectors)
    except (TypeError, ValueError) as e:  # ragged lists
        raise CurationError(f"{name} must be a 2-D numeric array: {e}") from None
    if x.ndim != 2:
        raise CurationError(f"{name} must be 2-D (n_rows, dim), got shape {x.shape}")
    if x.shape[0] == 0:
        raise CurationError(f"{name} is empty: nothing to curate")
    if x.shape[1] == 0:
        raise CurationError(f"{name} has zero columns")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise CurationError(f"{name} must be real numbers, got dtype {x.dtype}")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    return x


def bad_rows(x: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """Boolean mask of rows that are non-finite or have zero norm (no direction to compare).

    Chunked so the check on a 200k x 384 matrix never allocates an n x d temporary."""
    bad = np.empty(x.shape[0], dtype=bool)
    for lo in range(0, x.shape[0], chunk):
        c = x[lo : lo + chunk]
        finite = np.isfinite(c).all(axis=1)
        # squared norm in float64: float32 squares of ~1e-20 components underflow to 0
        sq = np.einsum("ij,ij->i", c, c, dtype=np.float64)
        bad[lo : lo + chunk] = ~finite | ~(sq > 0)
    return bad


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Unit-L2 copy of `x` (rows must be finite and non-zero; see `bad_rows`)."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64)).astype(x.dtype)
    return x / norms[:, None]


@lru_cache(maxsize=1)
def _threadpools() -> Any:
    from threadpoolctl import ThreadpoolController  # scikit-learn's dependency

    return ThreadpoolController()


def blas_threads(n: int | None = 1) -> contextlib.AbstractContextManager:
    """Context manager capping BLAS threads at `n` (None: leave the library default).

    Curation runs beside other processes (Beam workers, other jobs) on few cores; there,
    threaded OpenBLAS spin-waits on its mat-vecs: ISA on 20k rows took 5.4 s with 2 threads and
    0.8 s with 1, and the reward model's L-BFGS fits were 40x slower (measured on the 2-core
    dev machine under load)."""
    if n is None:
        return contextlib.nullcontext()
    return _threadpools().limit(limits=int(n), user_api="blas")
