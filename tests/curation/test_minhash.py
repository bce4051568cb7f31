"""Vectorised MinHash: datasketch-identical signatures, planted near-dups found, distinct texts kept apart."""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from datasketch import MinHash

from curation import minhash as mh

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
_PUNCT = re.compile(r"[^\w\s]+")


def _hh_dialogues(n: int) -> list[str]:
    with gzip.open(DATA / "hh_rlhf_harmless_base" / "test.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(line)["chosen"].strip() for line in f]
    docs = sorted({d for d in docs if 80 <= len(d.split()) <= 400})
    return random.Random(0).sample(docs, n)


def _py_shingles(text: str, n: int = 5) -> set:
    w = _PUNCT.sub(" ", text.lower()).split()
    return {tuple(w[i : i + n]) for i in range(max(1, len(w) - n + 1))} if w else set()


def _py_jaccard(a: str, b: str) -> float:
    sa, sb = _py_shingles(a), _py_shingles(b)
    return len(sa & sb) / len(sa | sb)


@pytest.fixture(scope="module")
def docs() -> list[str]:
    return _hh_dialogues(40)


def test_permutations_are_datasketchs():
    a, b = mh.permutations(128, seed=1)
    da, db = MinHash(num_perm=128, seed=1).permutations
    np.testing.assert_array_equal(a, da)
    np.testing.assert_array_equal(b, db)


@pytest.mark.parametrize("mode", ["word", "auto", "char"])
def test_signatures_bit_identical_to_datasketch(docs, mode):
    texts = docs[:5] + ["Ünïcode — text, with punctuation!", "hi", ""]
    sh = mh.shingle(texts, mode=mode)
    sig = mh.signatures(sh, num_perm=128, seed=1)
    for i in range(len(texts)):
        m = MinHash(num_perm=128, seed=1, hashfunc=int)  # datasketch applies fmix32 + affine32 itself
        m.update_batch([int(h) for h in sh.doc(i)])
        np.testing.assert_array_equal(sig[i], m.hashvalues, err_msg=f"doc {i} ({mode})")


def test_word_shingles_and_exact_jaccard_match_python_sets(docs):
    sh = mh.shingle(docs[:8], mode="word")
    for i, d in enumerate(docs[:8]):
        assert len(np.unique(sh.doc(i))) == len(_py_shingles(d))  # same shingles, no hash collisions
    edited = [d.replace(" the ", " a ", 2) for d in docs[:4]]
    sh2 = mh.shingle(docs[:4] + edited, mode="word")
    got = mh.pair_jaccard(sh2, np.arange(4), np.arange(4) + 4)
    want = [_py_jaccard(a, b) for a, b in zip(docs[:4], edited)]
    np.testing.assert_allclose(got, want)


def _variants(doc: str, rng: random.Random) -> dict[str, str]:
    words = doc.split(" ")
    k = rng.randrange(1, len(words) - 1)
    typo = words[:k] + [words[k][::-1] + "x"] + words[k + 1 :]
    sents = re.split(r"(?<=[.?!])\s+", doc)
    swapped = sents
    if len(sents) >= 6:
        j = rng.randrange(1, len(sents) - 2)
        swapped = sents[:j] + [sents[j + 1], sents[j]] + sents[j + 2 :]
    return {"typo": " ".join(typo), "space": "  ".join(doc.split()) + "\n", "reorder": " ".join(swapped), "exact": doc}


def test_planted_near_duplicates_found_and_distinct_docs_kept_apart(docs):
    rng = random.Random(1)
    originals = docs[:30]
    texts, source = list(originals), list(range(len(originals)))
    for i, d in enumerate(originals[:15]):
        for v in _variants(d, rng).values():
            texts.append(v)
            source.append(i)
    order = list(range(len(texts)))
    rng.shuffle(order)
    texts, source = [texts[i] for i in order], np.asarray(source)[order]
    res = mh.near_duplicate_clusters(texts, threshold=0.8)
    # ground truth from independent Python shingle sets: same source and J >= 0.8 → must share a cluster
    checked = 0
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            jac = _py_jaccard(texts[i], texts[j])
            if source[i] == source[j] and jac >= 0.8:
                checked += 1
                assert res.cluster_id[i] == res.cluster_id[j], (i, j, jac)
            if source[i] != source[j]:
                assert jac < 0.5  # the sample really holds distinct documents
                assert res.cluster_id[i] != res.cluster_id[j], (i, j)
    assert checked >= 60  # 15 sources x 5 copies: most of their 150 pairs are real near-duplicates
    # representative = lowest row index of the cluster, and it is its own representative
    for c in np.unique(res.cluster_id):
        members = np.flatnonzero(res.cluster_id == c)
        assert (res.representative[members] == members.min()).all()
    assert (res.pairs[:, 0] < res.pairs[:, 1]).all() and (res.similarity >= 0.8).all()


def test_lsh_params_reach_the_recall_target():
    b, r = mh.lsh_params(0.8, 128)
    assert b * r <= 128
    curve = lambda s, b, r: 1 - (1 - s**r) ** b  # noqa: E731
    assert curve(0.8, b, r) >= 0.97
    assert curve(0.8, b, r) > curve(0.8, 9, 13) + 0.3  # datasketch's own pick finds ~40% at J = 0.8
    assert curve(0.3, b, r) < 0.01  # unrelated texts rarely become candidates


def test_empty_and_very_short_texts():
    texts = ["", None, "   ", "hi", "hi!", "ok", "a b", "?!"]
    res = mh.near_duplicate_clusters(texts)
    assert len(res.cluster_id) == len(texts)
    empties = [0, 1, 2, 7]  # "?!" is empty after punctuation stripping
    assert len(set(res.cluster_id[empties])) == len(empties)  # empties never merge
    assert res.cluster_id[3] == res.cluster_id[4]  # "hi" and "hi!" normalise to the same text
    assert res.cluster_id[3] != res.cluster_id[5]
    empty = mh.near_duplicate_clusters([])
    assert empty.cluster_id.shape == (0,) and empty.pairs.shape == (0, 2)
    assert mh.near_duplicate_clusters(pa.array(["same text here", None, "same text here"])).cluster_id.tolist() == [
        0,
        1,
        0,
    ]


def test_char_ngrams_catch_typos_in_short_texts():
    a = "How do I bake sourdough bread at home without a starter?"
    b = "How do I bake sourdough bread at home without a startr?"
    c = "What is the tallest mountain in South America?"
    auto = mh.near_duplicate_clusters([a, b, c], threshold=0.8)
    word = mh.near_duplicate_clusters([a, b, c], threshold=0.8, mode="word")
    assert auto.cluster_id[0] == auto.cluster_id[1] != auto.cluster_id[2]
    assert word.cluster_id[0] != word.cluster_id[1]  # one typo kills most word 5-shingles of a short text


def test_normalisation_is_a_parameter():
    texts = ["Hello World, this is one sentence.", "hello   world this is one sentence"]
    assert mh.near_duplicate_clusters(texts).cluster_id.tolist() == [0, 0]
    assert mh.near_duplicate_clusters(texts, normalize=()).cluster_id.tolist() == [0, 1]
    with pytest.raises(ValueError):
        mh.near_duplicate_clusters(texts, normalize=("stem",))


def test_many_copies_cost_star_edges_not_all_pairs(docs):
    texts = [docs[0]] * 300 + docs[1:20]
    res = mh.near_duplicate_clusters(texts)
    assert (res.representative[:300] == 0).all()
    assert len(set(res.cluster_id[300:])) == 19
    assert len(res.pairs) < 2 * 300  # not 300*299/2


def test_verification_only_removes_candidates(docs):
    texts = docs[:20] + [d[: len(d) // 2] for d in docs[:5]]  # halves: J ~ 0.5, often LSH candidates at r=7
    raw = mh.near_duplicate_clusters(texts, verify="none", bands=(32, 4))
    exact = mh.near_duplicate_clusters(texts, verify="exact", bands=(32, 4))
    raw_set = {tuple(p) for p in raw.pairs}
    assert {tuple(p) for p in exact.pairs} <= raw_set
    assert len(exact.pairs) < len(raw.pairs)
    assert (exact.similarity >= 0.8).all()
