"""ROUGE-L F1 (LCS-based) without a package, for I-SHEEP's near-duplicate instruction filter.

Tokenisation follows rouge-score's default (no stemming): lowercase, every non-alphanumeric
character is a separator. The LCS length uses the bit-parallel algorithm (Allison–Dix / Hyyrö) on
Python integers: one pass over ``b`` with a few big-int operations per token, so comparing a new
instruction against thousands of accepted ones stays cheap without a C extension.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    return [t for t in _NON_ALNUM.split(text.lower()) if t]


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences."""
    if not a or not b:
        return 0
    if len(a) > len(b):
        a, b = b, a  # bit-vector over the shorter sequence
    masks: dict[str, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - bin(v).count("1")


def rouge_l_f(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F1 between token sequences (rouge-score's ``fmeasure`` with β = 1)."""
    lcs = lcs_length(a, b)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(b), lcs / len(a)
    return 2 * p * r / (p + r)


class RougeIndex:
    """Accepted texts; ``max_score(text)`` is the highest ROUGE-L F1 of ``text`` against them.

    Only texts sharing at least one token can score above 0, so candidates are found through an
    inverted index instead of scanning every accepted text.
    """

    def __init__(self, texts: Iterable[str] = ()):
        self._toks: list[list[str]] = []
        self._post: dict[str, list[int]] = {}
        for t in texts:
            self.add(t)

    def __len__(self) -> int:
        return len(self._toks)

    def add(self, text: str) -> None:
        toks = rouge_tokens(text)
        idx = len(self._toks)
        self._toks.append(toks)
        for tok in set(toks):
            self._post.setdefault(tok, []).append(idx)

    def max_score(self, text: str) -> tuple[float, int | None]:
        toks = rouge_tokens(text)
        cands: set[int] = set()
        for tok in set(toks):
            cands.update(self._post.get(tok, ()))
        best, arg = 0.0, None
        for i in cands:
            s = rouge_l_f(toks, self._toks[i])
            if s > best:
                best, arg = s, i
        return best, arg
