"""ISA scoring on 200k x 384 synthetic embeddings: time and peak memory, with a plain-sklearn baseline.

    .venv/bin/python -m bench.isa [--n 200000] [--d 384] [--no-baseline]

Data: an 8-component Gaussian mixture in d dims, float32 (what sentence-transformers returns).
Memory: `peak_mib` is tracemalloc's peak of memory allocated *during* the call above what was
live before it (numpy/scikit-learn buffers are traced; BLAS/OpenMP scratch and torch are not).
`maxrss_mib` (resource.getrusage) is the process-wide peak RSS: it includes the input, the
libraries and whichever run peaked, and cannot be reset, so it is an upper bound, not per call.
Baseline: sklearn PCA(32) + GaussianMixture(2) + score_samples on the same array (the straight
textbook route; sklearn's PCA centres a copy of X), under the same BLAS thread cap. The two GMMs
can settle in different local optima (a 2-component fit of 8 clusters), so `spearman_vs_ours`
below 1 is expected; the exact-match check is tests/curation/test_isa.py. Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import tracemalloc

import numpy as np

from curation.errors import blas_threads
from curation.isa import isa_fit


def synthetic(n: int, d: int, seed: int = 0, k: int = 8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d)).astype(np.float32)
    x = rng.standard_normal((n, d), dtype=np.float32)
    x *= 0.6
    x += centres[rng.integers(k, size=n)]
    return x


def measure(fn):
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    t = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] - before
    return out, seconds, peak / 2**20


def baseline(x: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    z = PCA(n_components=32, random_state=0).fit_transform(xn)
    s = -GaussianMixture(2, covariance_type="full", random_state=0).fit(z).score_samples(z)
    return (s - s.mean()) / (len(s) - 1)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--blas-threads", type=int, default=1, help="0 = library default (all cores)")
    args = ap.parse_args(argv)

    x = synthetic(args.n, args.d)
    tracemalloc.start()
    threads = args.blas_threads or None
    fit, seconds, peak = measure(lambda: isa_fit(x, blas_threads=threads))
    out = {
        "n": args.n,
        "d": args.d,
        "seconds": round(seconds, 2),
        "peak_mib": round(peak, 1),
        "input_mib": round(x.nbytes / 2**20, 1),
        "peak_method": "tracemalloc, allocations during the call",
        "pca_dim": fit.pca_dim,
        "gmm_converged": fit.gmm_converged,
        "blas_threads": threads or "default",
    }
    if not args.no_baseline:
        with blas_threads(threads):  # same thread budget as ours
            ref, b_seconds, b_peak = measure(lambda: baseline(x))
        rho = float(np.corrcoef(np.argsort(np.argsort(fit.delta_entropy)), np.argsort(np.argsort(ref)))[0, 1])
        out["baseline"] = {
            "name": "sklearn PCA(32)+GaussianMixture(2)",
            "seconds": round(b_seconds, 2),
            "peak_mib": round(b_peak, 1),
            "spearman_vs_ours": round(rho, 4),
        }
    tracemalloc.stop()
    out["maxrss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
