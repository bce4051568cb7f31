"""Best-of-N wall-clock timing shared by the benches (the minimum is the least disturbed by other load)."""

from __future__ import annotations

import time


def best_of(fn, repeats: int):
    """(fastest wall seconds over ``repeats`` calls of ``fn``, the last call's result)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out
