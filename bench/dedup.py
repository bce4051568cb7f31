"""Near-duplicate benchmark: prefmill's whole-dataset MinHash vs datasketch on planted duplicates.

    .venv/bin/python -m bench.dedup [--n 20000] [--threshold 0.8] [--repeats 2] [--seed 0]

Data: "originals" are built from sentences of the real texts in examples/data (hh-rlhf dialogues, oasst
messages, LLaMA-Factory texts), concatenated to lengths drawn from the real documents (50-600 words). Then
planted, by fraction of n: exact copies, whitespace variants (extra spaces/tabs/newlines), typo variants
(1 character edit per ~100 words), reordered variants (two adjacent sentences swapped) and hard negatives
(the first half of an original + other sentences). All shuffled.

Ground truth, pairwise: two docs are duplicates iff they are in the same planted group. A group is an
original plus every copy/variant whose independent pure-Python Jaccard to it (set of word 5-shingles after
lower-casing and punctuation stripping) is >= threshold; variants below it (short docs with a typo, reorders
of short docs, all hard negatives) are their own group, i.e. planted non-duplicates. Variants just above the
threshold are counted in the output ("variants_within_0.05_above"): these are where MinHash estimates flip.
Predicted pairs that are not planted but have independent J >= threshold (accidental repeats in the source
text) count as true duplicates too (pooled from both methods). Predicted pairs = all pairs inside a predicted
cluster (what dedup acts on); counted with a contingency table, so big clusters cost nothing to score.

Timing covers everything from raw strings to clusters: prefmill = ``near_duplicate_clusters``; datasketch =
Python normalise + 5-shingles + ``MinHash.bulk`` + ``MinHashLSH`` (its default params for the threshold)
insert + query + the same connected components. Best of ``--repeats`` for both.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time

import numpy as np

from bench import _data
from bench._timing import best_of
from curation.minhash import components, near_duplicate_clusters

_SENT = re.compile(r"(?<=[.!?])\s+|\n+")
_PUNCT = re.compile(r"[^\w\s]+")


def _words(text: str) -> list[str]:
    return _PUNCT.sub(" ", text.lower()).split()


def _jaccard(a: str, b: str, n: int = 5) -> float:
    wa, wb = _words(a), _words(b)
    sa = {tuple(wa[i : i + n]) for i in range(max(1, len(wa) - n + 1))}
    sb = {tuple(wb[i : i + n]) for i in range(max(1, len(wb) - n + 1))}
    return len(sa & sb) / max(1, len(sa | sb))


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 2:
        return word + rng.choice("abcdefghijklmnopqrstuvwxyz")
    i = rng.randrange(len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swap
    if kind == 1:
        return word[:i] + word[i + 1 :]  # drop
    if kind == 2:
        return word[:i] + word[i] + word[i:]  # double
    return word[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz") + word[i + 1 :]  # replace


def build(n: int, threshold: float, seed: int) -> tuple[list[str], np.ndarray, dict]:
    rng = random.Random(seed)
    docs = _data.documents()
    pool = sorted({s.strip() for d in docs for s in _SENT.split(d) if len(s.split()) >= 3})
    lengths = [min(600, max(50, len(d.split()))) for d in docs]
    frac = {"exact": 0.05, "whitespace": 0.04, "typo": 0.08, "reorder": 0.06, "negative": 0.05}
    n_planted = {k: int(n * v) for k, v in frac.items()}
    n_orig = n - sum(n_planted.values())
    originals = []  # (sentences, text)
    for _ in range(n_orig):
        target, sents, words = rng.choice(lengths), [], 0
        while words < target:
            s = rng.choice(pool)
            sents.append(s)
            words += len(s.split())
        originals.append((sents, " ".join(sents)))
    texts = [t for _, t in originals]
    group = list(range(n_orig))
    made = dict.fromkeys(frac, 0)
    stats = dict.fromkeys(["variants_below_threshold", "negatives_above_threshold", "variants_within_0.05_above"], 0)
    for kind, count in n_planted.items():
        while made[kind] < count:
            src = rng.randrange(n_orig)
            sents, text = originals[src]
            if kind == "exact":
                v = text
            elif kind == "whitespace":
                v = "".join(
                    w + (rng.choice(["  ", "\n", "\t", " \n "]) if rng.random() < 0.1 else " ") for w in text.split()
                ) + rng.choice(["", " ", "\n"])
            elif kind == "typo":
                ws = text.split(" ")
                for k in rng.sample(range(len(ws)), max(1, len(ws) // 100)):
                    ws[k] = _typo(ws[k], rng)
                v = " ".join(ws)
            elif kind == "reorder":
                if len(sents) < 4:
                    continue
                k = rng.randrange(1, len(sents) - 2)
                s2 = sents[:k] + [sents[k + 1], sents[k]] + sents[k + 2 :]
                v = " ".join(s2)
            else:  # negative: first half kept, the rest replaced
                half = sents[: max(1, len(sents) // 2)]
                extra, words = [], sum(len(s.split()) for s in sents[len(half) :])
                while words > 0:
                    s = rng.choice(pool)
                    extra.append(s)
                    words -= len(s.split())
                v = " ".join(half + extra)
            j = _jaccard(text, v) if kind in ("typo", "reorder", "negative") else 1.0
            texts.append(v)
            # a variant is a duplicate iff its independent Jaccard to the source reaches the threshold
            group.append(src if j >= threshold else len(texts) - 1)
            made[kind] += 1
            stats["variants_below_threshold"] += int(j < threshold and kind != "negative")
            stats["negatives_above_threshold"] += int(j >= threshold and kind == "negative")
            stats["variants_within_0.05_above"] += int(threshold <= j < threshold + 0.05)
    order = list(range(len(texts)))
    rng.shuffle(order)
    return [texts[i] for i in order], np.asarray(group)[order], {"originals": n_orig, **made, **stats}


def datasketch_clusters(texts: list[str], threshold: float, num_perm: int = 128) -> np.ndarray:
    from datasketch import MinHash, MinHashLSH

    shingles = []
    for t in texts:
        w = _words(t)
        shingles.append({" ".join(w[i : i + 5]).encode() for i in range(max(1, len(w) - 4))} if w else set())
    sigs = MinHash.bulk(shingles, num_perm=num_perm)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    with lsh.insertion_session() as session:
        for i, m in enumerate(sigs):
            session.insert(i, m)
    found = [(i, j) for i, m in enumerate(sigs) for j in lsh.query(m) if j > i]
    return components(len(texts), np.asarray(found, np.int64).reshape(-1, 2))[0]


def _pair_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """(true positives, predicted pairs, true pairs) by pair counting over the contingency table."""
    c2 = lambda x: int((x * (x - 1) // 2).sum())  # noqa: E731
    _, cell = np.unique(np.stack([pred, truth], 1), axis=0, return_counts=True)
    return c2(cell), c2(np.unique(pred, return_counts=True)[1]), c2(np.unique(truth, return_counts=True)[1])


def _pool_accidental(texts, truth, preds, threshold, limit=200_000) -> np.ndarray:
    """Add predicted-but-unplanted pairs whose independent Jaccard >= threshold to the truth (pooling)."""
    extra: list[tuple[int, int]] = []
    for pred in preds:
        order = np.argsort(pred, kind="stable")
        bounds = np.flatnonzero(np.r_[True, pred[order][1:] != pred[order][:-1], True])
        for s, e in zip(bounds[:-1], bounds[1:]):
            members = order[s:e]
            if len(members) < 2 or len(np.unique(truth[members])) < 2:
                continue
            for a in range(len(members)):
                for b in range(a + 1, len(members)):
                    i, j = members[a], members[b]
                    if truth[i] != truth[j] and len(extra) < limit and _jaccard(texts[i], texts[j]) >= threshold:
                        extra.append((i, j))
    if not extra:
        return truth
    # merge planted groups with the accidental edges
    base = np.stack([np.arange(len(truth)), np.unique(truth, return_inverse=True)[1] + len(truth)], 1)
    edges = np.concatenate([base, np.asarray(extra, np.int64)])
    return components(2 * len(truth), edges)[0][: len(truth)]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    texts, planted, made = build(args.n, args.threshold, args.seed)
    build_s = time.perf_counter() - t0
    print(f"built {len(texts)} docs in {build_s:.1f}s: {made}", file=sys.stderr)

    t_pm, res = best_of(lambda: near_duplicate_clusters(texts, threshold=args.threshold), args.repeats)
    print(f"prefmill {t_pm:.2f}s bands={res.bands}", file=sys.stderr)
    t_ds, ds = best_of(lambda: datasketch_clusters(texts, args.threshold), args.repeats)
    print(f"datasketch {t_ds:.2f}s", file=sys.stderr)

    truth = _pool_accidental(texts, planted, [res.cluster_id, ds], args.threshold)
    out = {
        "bench": "dedup",
        "n": len(texts),
        "threshold": args.threshold,
        "bands": list(res.bands),
        "planted": made,
        "accidental_groups_merged": int(len(np.unique(planted)) - len(np.unique(truth))),
    }
    for name, pred in (("prefmill", res.cluster_id), ("datasketch", ds)):
        tp, pp, tt = _pair_counts(pred, truth)
        out[f"{name}_precision"] = round(tp / pp, 4) if pp else 1.0
        out[f"{name}_recall"] = round(tp / tt, 4) if tt else 1.0
        out[f"{name}_pred_pairs"] = pp
    out["true_pairs"] = _pair_counts(truth, truth)[2]
    out["prefmill_s"], out["datasketch_s"] = round(t_pm, 3), round(t_ds, 3)
    out["prefmill_docs_per_s"] = round(len(texts) / t_pm, 1)
    out["datasketch_docs_per_s"] = round(len(texts) / t_ds, 1)
    out["speedup"] = round(t_ds / t_pm, 2)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
