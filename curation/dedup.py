"""Dedup logic over canonical Arrow tables: exact, near (MinHash), semantic (embeddings), and pair-aware rules.

Each function looks at a whole table at once (never per worker) and returns a ``Decision``: a boolean
``remove`` mask, the reason (one string or one per row), the row index each removed row duplicates
(``None`` for removals that duplicate nothing) and a JSON ``detail`` per row. The steps in
``curation.steps`` turn decisions into kept and rejected rows; a duplicate names the kept representative
(the lowest row index of its group).

By default rows only duplicate each other when their ``annotator_id`` and ``label`` agree (``by=``): the
same pair judged by two annotators is two judgements, not a duplicate, and minority preferences must survive
dedup (MaxMin-RLHF).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.minhash import (
    NORMALISE_ALL,
    components,
    hash_strings,
    near_duplicate_clusters,
    normalise,
    pair_jaccard,
    shingle,
)
from curation.recipes import shape_of, text_array

DEFAULT_BY = ("annotator_id", "label")

# (remove mask, reason: one string or one per row, duplicated row index per row or None, detail per row or None)
Decision = tuple[np.ndarray, np.ndarray | str, np.ndarray | None, list[str | None] | None]


def _keep_all(n: int, reason: str) -> Decision:
    return np.zeros(n, bool), reason, None, None


# ---------------------------------------------------------------- helpers


def _codes(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Dense int code per row; nulls get one code of their own."""
    if isinstance(values, pa.ChunkedArray):  # combine first: per-chunk dictionaries would not agree
        values = values.combine_chunks()
    enc = pc.dictionary_encode(values, null_encoding="encode")
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def _group_codes(table: pa.Table, by: Sequence[str] | None, base: np.ndarray | None = None) -> np.ndarray:
    """One int code per distinct combination of ``base`` and the ``by`` columns that exist."""
    cols = [] if base is None else [np.asarray(base, np.int64)]
    for name in by or ():
        if name in table.column_names:
            cols.append(_codes(table.column(name)))
    if not cols:
        return np.zeros(table.num_rows, np.int64)
    if len(cols) == 1:
        return cols[0]
    return np.unique(np.stack(cols, 1), axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _first_of_group(codes: np.ndarray) -> np.ndarray:
    """Row index of the first row of each row's group (the representative)."""
    if not len(codes):
        return np.zeros(0, np.int64)
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)].astype(np.int64)


def _details(rows: np.ndarray, **cols: np.ndarray) -> list[str | None]:
    out: list[str | None] = [None] * len(rows)
    for i in np.flatnonzero(rows):
        out[i] = json.dumps({k: _plain(v[i]) for k, v in cols.items()})
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return round(float(v), 4)
    return v.item() if hasattr(v, "item") else v


def _edge_max(n: int, pairs: np.ndarray, sim: np.ndarray) -> np.ndarray:
    best = np.zeros(n, np.float64)
    if len(pairs):
        np.maximum.at(best, pairs[:, 0], sim)
        np.maximum.at(best, pairs[:, 1], sim)
    return best


def _by_graph(
    table: pa.Table, pairs: np.ndarray, sim: np.ndarray, by: Sequence[str] | None, reason: str, sim_name: str
) -> Decision:
    n = table.num_rows
    _, comp = components(n, pairs)
    rep = _first_of_group(_group_codes(table, by, comp))
    remove = rep != np.arange(n)
    size = np.bincount(rep, minlength=n)[rep]
    return remove, reason, rep, _details(remove, **{sim_name: _edge_max(n, pairs, sim)}, group_size=size)


# ---------------------------------------------------------------- exact / near / semantic


def exact_duplicates(table: pa.Table, recipe: str = "pair", by: Sequence[str] | None = DEFAULT_BY) -> Decision:
    """Repeated rows: same ``record_id`` (reason ``duplicate_record``) or same recipe text (after the
    builders' normalisation; reason ``exact_duplicate``); the first row of each group is kept."""
    if table.num_rows == 0:
        return _keep_all(0, "exact_duplicate")
    text_codes = _codes(text_array(table, recipe))
    rep = _first_of_group(_group_codes(table, by, text_codes))
    remove = rep != np.arange(table.num_rows)
    ids = _codes(table.column("record_id"))
    reason = np.where(ids == ids[rep], "duplicate_record", "exact_duplicate")
    return remove, reason, rep, _details(remove, recipe=np.full(table.num_rows, recipe, object))


def near_duplicates(
    table: pa.Table,
    recipe: str = "pair",
    threshold: float = 0.8,
    by: Sequence[str] | None = DEFAULT_BY,
    **minhash_kw: Any,
) -> Decision:
    """MinHash near-duplicates of the recipe text over the whole table (reason ``near_duplicate``)."""
    if table.num_rows == 0:
        return _keep_all(0, "near_duplicate")
    res = near_duplicate_clusters(text_array(table, recipe), threshold=threshold, **minhash_kw)
    return _by_graph(table, res.pairs, res.similarity, by, "near_duplicate", "jaccard")


def _unit(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float32 unit rows, valid mask): NaN/inf or zero-norm rows are invalid and never match anything."""
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"vectors must be 2-D (rows, dim), got shape {x.shape}")
    finite = np.nan_to_num(x, posinf=0, neginf=0)
    norms = np.sqrt(np.einsum("ij,ij->i", finite, finite, dtype=np.float64))
    valid = np.isfinite(x).all(axis=1) & (norms > 0)
    out = np.zeros_like(x)
    out[valid] = x[valid] / norms[valid, None].astype(np.float32)
    return out, valid


def similar_pairs(
    vectors: np.ndarray, threshold: float, groups: np.ndarray | None = None, block: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i < j) with cosine >= ``threshold`` (within equal ``groups`` when given), as (pairs, cos).

    Blockwise: at most ``block`` x ``block`` similarities exist at once, never the n x n matrix. With
    ``groups``, singleton groups are skipped and small groups are packed into shared blocks.
    """
    x, valid = _unit(vectors)
    n = len(x)
    g = np.zeros(n, np.int64) if groups is None else np.asarray(groups).astype(np.int64, copy=False)
    rows = np.flatnonzero(valid)
    rows = rows[np.argsort(g[rows], kind="stable")]
    gs = g[rows]
    out_p, out_s = [], []

    def emit(a: np.ndarray, b: np.ndarray, ga: np.ndarray, gb: np.ndarray, same: bool) -> None:
        sim = x[a] @ x[b].T
        mask = sim >= threshold
        if groups is not None:
            mask &= ga[:, None] == gb[None, :]
        if same:
            mask &= np.triu(np.ones_like(mask), 1)
        i, j = np.nonzero(mask)
        if len(i):
            out_p.append(np.stack([np.minimum(a[i], b[j]), np.maximum(a[i], b[j])], 1))
            out_s.append(sim[i, j].astype(np.float64))

    if len(rows) > 1:
        bounds = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1], True])
        starts, sizes = bounds[:-1], np.diff(bounds)
        big = sizes > block
        for s, m in zip(starts[big], sizes[big]):  # big groups: upper-triangle tiles
            for a0 in range(s, s + m, block):
                for b0 in range(a0, s + m, block):
                    a, b = rows[a0 : min(a0 + block, s + m)], rows[b0 : min(b0 + block, s + m)]
                    emit(a, b, gs[a0 : a0 + len(a)], gs[b0 : b0 + len(b)], a0 == b0)
        small = (~big) & (sizes > 1)
        if small.any():  # pack consecutive small groups: a group starting in chunk k belongs to chunk k
            sel = np.repeat(small, sizes)
            packed, pg = rows[sel], gs[sel]
            pstart = np.r_[0, np.cumsum(sizes[small])[:-1]]
            chunk = np.repeat(pstart // block, sizes[small])
            cb = np.flatnonzero(np.r_[True, chunk[1:] != chunk[:-1], True])
            for c0, c1 in zip(cb[:-1], cb[1:]):
                emit(packed[c0:c1], packed[c0:c1], pg[c0:c1], pg[c0:c1], True)
    if not out_p:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    return np.concatenate(out_p), np.concatenate(out_s)


def semantic_duplicates(
    table: pa.Table,
    vectors: np.ndarray,
    threshold: float = 0.95,
    within: np.ndarray | pa.Array | pa.ChunkedArray | None = None,
    by: Sequence[str] | None = DEFAULT_BY,
    block: int = 2048,
) -> Decision:
    """Rows whose embeddings have cosine >= ``threshold`` (transitively) are duplicates (``semantic_duplicate``).

    ``vectors`` are row-aligned. ``within`` (e.g. the ``prompt_cluster`` column) restricts comparisons to rows
    of the same cluster; otherwise a blockwise all-pairs scan. Bad vectors (NaN, zero) are kept, never matched.
    """
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(vectors) != table.num_rows:
        raise ValueError(f"need one vector per row: {table.num_rows} rows, vectors of shape {vectors.shape}")
    if table.num_rows == 0:
        return _keep_all(0, "semantic_duplicate")
    groups = None
    if within is not None:
        groups = _codes(
            within if isinstance(within, (pa.Array, pa.ChunkedArray)) else pa.array(np.asarray(within).tolist())
        )
    pairs, sim = similar_pairs(vectors, threshold, groups, block)
    return _by_graph(table, pairs, sim, by, "semantic_duplicate", "cosine")


# ---------------------------------------------------------------- pair-aware rules


def pair_similarity(a: pa.Array | Sequence[str], b: pa.Array | Sequence[str], char_ngram: int = 5) -> np.ndarray:
    """Row-wise similarity of two text columns: 1.0 when equal after normalisation, else the exact Jaccard of
    their character n-gram sets (robust to typos and to one-word differences in short texts)."""
    na, nb = normalise(a, NORMALISE_ALL), normalise(b, NORMALISE_ALL)
    n = len(na)
    sh = shingle(pa.concat_arrays([na, nb]), mode="char", char_ngram=char_ngram, normalize=())
    sim = pair_jaccard(sh, np.arange(n), np.arange(n) + n)
    equal = pc.equal(na, nb).to_numpy(zero_copy_only=False)
    return np.where(equal, 1.0, sim)


def near_identical(table: pa.Table, threshold: float = 0.9) -> Decision:
    """Pairwise rows whose chosen and rejected are near-identical carry no preference: reason
    ``near_identical_pair`` (similarity in ``detail``). Row by row, so it runs per batch."""
    if shape_of(table) != "pairwise":
        raise ValueError("near_identical_pairs needs pairwise rows (chosen/rejected)")
    if table.num_rows == 0:
        return _keep_all(0, "near_identical_pair")
    sim = pair_similarity(text_array(table, "chosen"), text_array(table, "rejected"))
    remove = sim >= threshold
    return remove, "near_identical_pair", None, _details(remove, similarity=sim)


def prompt_clusters(
    table: pa.Table,
    vectors: np.ndarray | None = None,
    threshold: float = 0.7,
    embed_threshold: float = 0.9,
    **minhash_kw: Any,
) -> pa.Array:
    """Each row's prompt cluster: the ``prompt_id`` of the cluster's representative prompt (lowest row index).

    Distinct prompts are clustered by MinHash over the prompt text (char n-grams for short prompts); with
    row-aligned prompt ``vectors``, prompts with cosine >= ``embed_threshold`` are merged too.
    """
    n = table.num_rows
    if n == 0:
        return pa.array([], pa.string())
    pid = _codes(table.column("prompt_id"))
    _, first, inverse = np.unique(pid, return_index=True, return_inverse=True)
    order = np.argsort(first)  # distinct prompts in first-appearance order
    first = first[order]
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    u_of_row = rank[inverse.reshape(-1)]
    uniq = table.take(pa.array(first))
    res = near_duplicate_clusters(text_array(uniq, "prompt"), threshold=threshold, **minhash_kw)
    pairs = res.pairs
    if vectors is not None:
        vectors = np.asarray(vectors)
        if len(vectors) != n:
            raise ValueError(f"need one vector per row: {n} rows, {len(vectors)} vectors")
        emb_pairs, _ = similar_pairs(vectors[first], embed_threshold)
        pairs = np.concatenate([pairs, emb_pairs])
    _, rep = components(len(first), pairs)
    ids = uniq.column("prompt_id").combine_chunks()
    return ids.take(pa.array(rep[u_of_row]))


def _priority(values: pa.Array | pa.ChunkedArray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random uint64 per value: depends on the value and seed only, not on row order."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    h = hash_strings(values.cast(pa.large_string()))
    with np.errstate(over="ignore"):
        h = (h ^ np.uint64(seed & 0xFFFFFFFFFFFFFFFF)) * np.uint64(0x9E3779B97F4A7C15)
    return h ^ (h >> np.uint64(29))


def cluster_cap(table: pa.Table, cap: int, seed: int = 0, column: str = "prompt_cluster") -> Decision:
    """At most ``cap`` rows per cluster, a seeded random choice that does not depend on row order
    (reason ``cluster_cap``); stops one popular prompt from dominating the data."""
    if cap < 1:
        raise ValueError("cap must be >= 1")
    if column not in table.column_names:
        raise ValueError(f"no {column!r} column: run prompt_clusters first")
    n = table.num_rows
    if n == 0:
        return _keep_all(0, "cluster_cap")
    cl = _codes(table.column(column))
    order = np.lexsort((_priority(table.column("record_id"), seed), cl))
    first = np.flatnonzero(np.r_[True, cl[order][1:] != cl[order][:-1]])
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - np.repeat(first, np.diff(np.r_[first, n]))
    remove = rank >= cap
    size = np.bincount(cl)[cl]
    clusters = table.column(column).combine_chunks().to_numpy(zero_copy_only=False)
    return remove, "cluster_cap", None, _details(remove, cluster=clusters, cluster_rows=size, cap=np.full(n, cap))
