"""Benchmark decontamination: a word n-gram index over benchmark prompts, matched against texts in batches.

Method (OLMo-style): texts are normalised (lowercase; every Unicode punctuation mark or symbol deleted,
so "don't" = "dont" and "f(x)" = "fx"; whitespace collapsed) and cut into words. A benchmark item with at
least ``n`` words is matched by its distinct word ``n``-grams: a text matches the item when the share of
the item's n-grams found in the text reaches ``threshold``. The share is the *benchmark item's coverage*,
not the text's: a prompt that quotes a benchmark question inside a longer message (an added sentence, a
preamble, several questions pasted together) stays contaminated however long it is, while a coverage of
the prompt would dilute with every added word. An item shorter than ``n`` words has no n-gram; it needs
an exact match of the whole normalised text.

Speed: the index is built once (a vocabulary of the benchmarks' words, and the sorted 64-bit hashes of
their n-grams with the items holding each). A batch of texts is matched with Arrow string kernels and
numpy only: words are mapped to vocabulary ids in one ``index_in`` (an n-gram with a word no benchmark
uses cannot match, so it is never hashed), the remaining windows are hashed in ``n`` vectorised passes
and looked up with one ``searchsorted``. No loop over texts × benchmark items.

Not built: the optional embedding near-match stage (paraphrases that share no 8-gram are not caught).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.errors import CurationError

DEFAULT_NGRAM = 8  # OLMo 3's decontamination: 8-grams ...
DEFAULT_THRESHOLD = 0.5  # ... with a coverage of 0.5

_PUNCT = r"[\p{P}\p{S}]+"  # Unicode punctuation and symbols (every ASCII one among them)
_ASCII_PUNCT = r"[[:punct:]]+"  # the ASCII ones: ~3x faster than the Unicode classes
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier of the polynomial n-gram hash


class DecontamError(CurationError):
    """Bad decontamination input (benchmark files, n-gram size, threshold): one line, nothing checked."""


def check_params(ngram: int, threshold: float) -> None:
    if isinstance(ngram, bool) or not isinstance(ngram, int) or ngram < 1:
        raise DecontamError(f"--ngram must be a whole number ≥ 1, got {ngram!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise DecontamError(f"--threshold must be in (0, 1] (a share of a benchmark item's n-grams), got {threshold!r}")


def _strings(texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> pa.Array:
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not isinstance(texts, pa.Array):
        texts = pa.array(list(texts), pa.string())
    if pa.types.is_large_string(texts.type):
        texts = texts.cast(pa.string())
    return texts


def _split(texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> pa.ListArray:
    s = pc.utf8_lower(_strings(texts).fill_null(""))
    # Unicode kernels only for texts with a non-ASCII character (~3 % of real prompts); the ASCII ones are
    # ~3x faster and give the same words on ASCII text
    wide = pc.invert(pc.string_is_ascii(s)).to_numpy(zero_copy_only=False)
    if not wide.any():
        return _ascii_words(s)
    w, a = np.flatnonzero(wide), np.flatnonzero(~wide)
    sub = pc.replace_substring_regex(s.take(pa.array(w)), _PUNCT, "")
    wide_lists = pc.utf8_split_whitespace(pc.utf8_trim_whitespace(sub))
    pos = np.empty(len(s), np.int64)
    pos[a], pos[w] = np.arange(len(a)), len(a) + np.arange(len(w))
    return pa.concat_arrays([_ascii_words(s.take(pa.array(a))), wide_lists]).take(pa.array(pos))


def _ascii_words(s: pa.Array) -> pa.ListArray:
    s = pc.replace_substring_regex(s, _ASCII_PUNCT, "")
    return pc.ascii_split_whitespace(pc.ascii_trim_whitespace(s))  # "" → [""]: the only empty word


def _layout(lists: pa.ListArray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(flat words, words per text, start of each text in the flat words), empty words dropped."""
    lens = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = lists.flatten()
    empty = pc.equal(pc.binary_length(flat), 0).to_numpy(zero_copy_only=False)
    if empty.any():
        owner = np.repeat(np.arange(len(lens), dtype=np.int64), lens)
        lens = lens - np.bincount(owner[empty], minlength=len(lens))
        flat = flat.filter(pa.array(~empty))
    return flat, lens, np.cumsum(lens) - lens


def words(texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> pa.ListArray:
    """The normalised words of each text (an empty list for a text without words)."""
    flat, lens, _ = _layout(_split(texts))
    return pa.ListArray.from_arrays(pa.array(np.r_[0, np.cumsum(lens)].astype(np.int32)), flat)


def normalised(texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> pa.Array:
    """Lowercased, punctuation stripped, whitespace collapsed (null → "")."""
    return pc.binary_join(words(texts), " ")


def _joined(flat: pa.Array, lens: np.ndarray, starts: np.ndarray, rows: np.ndarray) -> pa.Array:
    """The normalised text of the texts ``rows`` (their words joined by one space)."""
    k = lens[rows]
    idx = np.repeat(starts[rows], k) + (np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k))
    values = flat.take(pa.array(idx, pa.int64()))
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(np.r_[0, np.cumsum(k)].astype(np.int32)), values), " ")


def _ngram_hashes(ids: np.ndarray, lens: np.ndarray, starts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash, owner text) of every word n-gram that lies inside one text and has no unknown word (id < 0)."""
    m = len(ids)
    if m < n:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    # window [j, j + n): no unknown word in it, and no text starting inside it after j
    unknown = np.zeros(m + 1, np.int32)
    np.cumsum(ids < 0, out=unknown[1:])
    first = np.zeros(m, bool)
    first[starts[lens > 0]] = True
    begun = np.zeros(m + 1, np.int32)
    np.cumsum(first, out=begun[1:])
    ok = (unknown[n:] == unknown[: m - n + 1]) & (begun[n:] == begun[1 : m - n + 2])
    pos = np.flatnonzero(ok)
    h = np.zeros(len(pos), np.uint64)
    w = ids.astype(np.uint64)
    for k in range(n):  # h = Σ id[k]·M^(n-1-k) mod 2^64
        h = h * _MULT + w[pos + k]
    return h, np.searchsorted(np.cumsum(lens), pos, side="right")


@dataclass(frozen=True)
class Matches:
    """The best benchmark item of each text: item index (-1: none reached the threshold), its coverage,
    and how many of its n-grams were found out of how many it has (0 of 0 for an exact short match)."""

    item: np.ndarray
    coverage: np.ndarray
    matched: np.ndarray
    total: np.ndarray

    @property
    def hit(self) -> np.ndarray:
        return self.item >= 0


@dataclass
class NgramIndex:
    """Word n-grams of benchmark items (see the module docstring). Built once; picklable (numpy + Arrow)."""

    n: int
    threshold: float
    vocab: pa.Array  # the benchmarks' distinct words; position = word id
    keys: np.ndarray  # uint64, sorted distinct n-gram hashes
    ptr: np.ndarray  # int64, len(keys) + 1: the items holding keys[k] are key_items[ptr[k]:ptr[k + 1]]
    key_items: np.ndarray  # int64 item indices
    item_ngrams: np.ndarray  # int64 distinct n-grams per item (0: a short item, exact match only)
    item_words: np.ndarray  # int64 words per item
    short_texts: pa.Array  # normalised text of each distinct short item
    short_items: np.ndarray  # int64 item index of each short text (the first item with that text)

    @classmethod
    def build(cls, texts: Sequence[str], n: int = DEFAULT_NGRAM, threshold: float = DEFAULT_THRESHOLD) -> NgramIndex:
        check_params(n, threshold)
        flat, lens, starts = _layout(_split(texts))
        vocab = pc.unique(flat) if len(flat) else pa.array([], pa.string())
        ids = pc.index_in(flat, value_set=vocab).to_numpy(zero_copy_only=False).astype(np.int64)
        h, owner = _ngram_hashes(ids, lens, starts, n)
        # distinct (item, n-gram) pairs, sorted by hash
        pairs = np.unique(np.stack([h, owner.astype(np.uint64)], 1), axis=0) if len(h) else np.empty((0, 2), np.uint64)
        ph, pitem = pairs[:, 0], pairs[:, 1].astype(np.int64)
        keys, first = np.unique(ph, return_index=True)
        ptr = np.append(first, len(ph)).astype(np.int64)
        item_ngrams = np.bincount(pitem, minlength=len(lens)).astype(np.int64)
        short = np.flatnonzero((lens > 0) & (lens < n))
        st, si = [], []
        seen: set[str] = set()
        for i, t in zip(short.tolist(), _joined(flat, lens, starts, short).to_pylist()):
            if t not in seen:  # a few items at most; the first item with a text answers for it
                seen.add(t)
                st.append(t)
                si.append(i)
        return cls(
            n,
            float(threshold),
            vocab,
            keys,
            ptr,
            pitem,
            item_ngrams,
            lens,
            pa.array(st, pa.string()),
            np.asarray(si, np.int64),
        )

    @property
    def items(self) -> int:
        return len(self.item_words)

    def match(self, texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> Matches:
        """The best item per text at or above the threshold (ties: the lower item index)."""
        texts = _strings(texts)
        m = len(texts)
        item = np.full(m, -1, np.int64)
        cov = np.zeros(m, np.float64)
        matched = np.zeros(m, np.int64)
        total = np.zeros(m, np.int64)
        if m == 0:
            return Matches(item, cov, matched, total)
        flat, lens, starts = _layout(_split(texts))
        if len(self.keys) and len(flat) >= self.n:
            ids = pc.index_in(flat, value_set=self.vocab).fill_null(-1).to_numpy(zero_copy_only=False)
            h, owner = _ngram_hashes(ids.astype(np.int64), lens, starts, self.n)
            k = np.minimum(np.searchsorted(self.keys, h), len(self.keys) - 1)
            hit = self.keys[k] == h
            if hit.any():
                # each distinct n-gram of a text counts once
                combo = np.unique(owner[hit] * len(self.keys) + k[hit])
                own, key = combo // len(self.keys), combo % len(self.keys)
                cnt = self.ptr[key + 1] - self.ptr[key]
                rep = np.repeat(np.arange(len(key)), cnt)
                within = np.arange(len(rep)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
                its = self.key_items[self.ptr[key][rep] + within]
                pair, found = np.unique(own[rep] * self.items + its, return_counts=True)
                p_own, p_item = pair // self.items, pair % self.items
                p_cov = found / self.item_ngrams[p_item]
                good = p_cov >= self.threshold
                p_own, p_item, p_cov, found = p_own[good], p_item[good], p_cov[good], found[good]
                order = np.lexsort((p_item, -p_cov, p_own))  # per text: highest coverage, then lowest item
                first = order[np.r_[True, p_own[order][1:] != p_own[order][:-1]]] if len(order) else order
                t = p_own[first]
                item[t], cov[t] = p_item[first], p_cov[first]
                matched[t], total[t] = found[first], self.item_ngrams[p_item[first]]
        # a short item can only equal a whole text of as many words
        cand = np.flatnonzero(np.isin(lens, self.item_words[self.short_items]) & (cov < 1.0))
        if len(cand):
            norm = _joined(flat, lens, starts, cand)
            sidx = pc.index_in(norm, value_set=self.short_texts).fill_null(-1).to_numpy(zero_copy_only=False)
            exact = cand[sidx >= 0]  # a whole-text match beats a partial n-gram match
            item[exact] = self.short_items[sidx[sidx >= 0]]
            cov[exact] = 1.0
            matched[exact] = total[exact] = 0
        return Matches(item, cov, matched, total)
