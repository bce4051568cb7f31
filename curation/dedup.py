"""Dedup steps over canonical Arrow tables: exact, near (MinHash), semantic (embeddings), and pair-aware rules.

Every step returns ``DedupResult(kept, removed, stats)``; ``removed`` has the warehouse's removal columns
``(record_id, step, reason, duplicate_of, detail)`` — a duplicate names the record it duplicates (the kept
representative: the lowest row index of its group), other removals leave ``duplicate_of`` null. All steps
run over the whole table at once (never per worker).

By default rows only duplicate each other when their ``annotator_id`` and ``label`` agree (``by=``): the
same pair judged by two annotators is two judgements, not a duplicate, and minority preferences must survive
dedup (DESIGN.md §7, MaxMin-RLHF).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

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

REMOVALS = pa.schema(
    [
        pa.field("record_id", pa.string()),
        pa.field("step", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("duplicate_of", pa.string()),
        pa.field("detail", pa.string()),
    ]
)
DEFAULT_BY = ("annotator_id", "label")


@dataclass
class DedupResult:
    kept: pa.Table
    removed: pa.Table  # REMOVALS
    stats: dict = field(default_factory=dict)

    @property
    def step_counts(self) -> dict:
        """rows_in = rows_kept + rows_rejected + rows_duplicate (docs/contracts.md "Counting")."""
        dup = self.removed.num_rows - self.removed.column("duplicate_of").null_count
        return {
            "rows_in": self.kept.num_rows + self.removed.num_rows,
            "rows_kept": self.kept.num_rows,
            "rows_rejected": self.removed.num_rows - dup,
            "rows_duplicate": dup,
        }


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


def _result(
    table: pa.Table,
    remove: np.ndarray,
    step: str,
    reason: np.ndarray | str,
    dup_of: np.ndarray | None,
    detail: list[str | None] | None,
    stats: dict,
) -> DedupResult:
    """Split ``table`` by the boolean ``remove`` mask into kept rows and removal records."""
    idx = np.flatnonzero(remove)
    ids = table.column("record_id").combine_chunks()
    reasons = [reason] * len(idx) if isinstance(reason, str) else list(np.asarray(reason)[idx])
    removed = pa.table(
        {
            "record_id": ids.take(pa.array(idx, pa.int64())),
            "step": pa.array([step] * len(idx), pa.string()),
            "reason": pa.array(reasons, pa.string()),
            "duplicate_of": (
                ids.take(pa.array(dup_of[idx], pa.int64())) if dup_of is not None else pa.nulls(len(idx), pa.string())
            ),
            "detail": pa.array([detail[i] for i in idx] if detail is not None else [None] * len(idx), pa.string()),
        },
        schema=REMOVALS,
    )
    kept = table.filter(pa.array(~remove)) if len(idx) else table
    stats = {"rows_in": table.num_rows, "rows_kept": kept.num_rows, "rows_removed": len(idx), **stats}
    return DedupResult(kept, removed, stats)


def _details(rows: np.ndarray, **cols) -> list[str | None]:
    out: list[str | None] = [None] * len(rows)
    for i in np.flatnonzero(rows):
        out[i] = json.dumps(
            {
                k: (
                    round(float(v[i]), 4)
                    if isinstance(v[i], (float, np.floating))
                    else v[i].item()
                    if hasattr(v[i], "item")
                    else v[i]
                )
                for k, v in cols.items()
            }
        )
    return out


def _edge_max(n: int, pairs: np.ndarray, sim: np.ndarray) -> np.ndarray:
    best = np.zeros(n, np.float64)
    if len(pairs):
        np.maximum.at(best, pairs[:, 0], sim)
        np.maximum.at(best, pairs[:, 1], sim)
    return best


def _dedup_by_graph(
    table: pa.Table, pairs: np.ndarray, sim: np.ndarray, by, step: str, reason: str, stats: dict, sim_name: str
) -> DedupResult:
    n = table.num_rows
    _, comp = components(n, pairs)
    rep = _first_of_group(_group_codes(table, by, comp))
    remove = rep != np.arange(n)
    size = np.bincount(rep, minlength=n)[rep]
    detail = _details(remove, **{sim_name: _edge_max(n, pairs, sim)}, group_size=size)
    return _result(table, remove, step, reason, rep, detail, stats)


# ---------------------------------------------------------------- exact / near / semantic


def exact_dedup(table: pa.Table, recipe: str = "pair", by: Sequence[str] | None = DEFAULT_BY) -> DedupResult:
    """Drop repeated rows: same ``record_id`` (reason ``duplicate_record``) or same recipe text (after the
    builders' normalisation; reason ``exact_duplicate``), keeping the first row of each group."""
    if table.num_rows == 0:
        return _result(table, np.zeros(0, bool), "exact_dedup", "exact_duplicate", None, None, {})
    text_codes = _codes(text_array(table, recipe))
    rep = _first_of_group(_group_codes(table, by, text_codes))
    remove = rep != np.arange(table.num_rows)
    ids = _codes(table.column("record_id"))
    reason = np.where(ids == ids[rep], "duplicate_record", "exact_duplicate")
    detail = _details(remove, recipe=np.full(table.num_rows, recipe, object))
    return _result(table, remove, "exact_dedup", reason, rep, detail, {"recipe": recipe})


def near_dedup(
    table: pa.Table, recipe: str = "pair", threshold: float = 0.8, by: Sequence[str] | None = DEFAULT_BY, **minhash_kw
) -> DedupResult:
    """MinHash near-duplicates of the recipe text over the whole table (reason ``near_duplicate``)."""
    if table.num_rows == 0:
        return _result(table, np.zeros(0, bool), "near_dedup", "near_duplicate", None, None, {})
    res = near_duplicate_clusters(text_array(table, recipe), threshold=threshold, **minhash_kw)
    stats = {"recipe": recipe, "threshold": threshold, "bands": list(res.bands), "edges": int(len(res.pairs))}
    return _dedup_by_graph(table, res.pairs, res.similarity, by, "near_dedup", "near_duplicate", stats, "jaccard")


def _unit(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float32 unit rows, valid mask): NaN/inf or zero-norm rows are invalid and never match anything."""
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"vectors must be 2-D (rows, dim), got shape {x.shape}")
    norms = np.sqrt(
        np.einsum(
            "ij,ij->i", np.nan_to_num(x, posinf=0, neginf=0), np.nan_to_num(x, posinf=0, neginf=0), dtype=np.float64
        )
    )
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


def semantic_dedup(
    table: pa.Table,
    vectors: np.ndarray,
    threshold: float = 0.95,
    within: np.ndarray | pa.Array | None = None,
    by: Sequence[str] | None = DEFAULT_BY,
    block: int = 2048,
) -> DedupResult:
    """Rows whose embeddings have cosine >= ``threshold`` (transitively) are duplicates (``semantic_duplicate``).

    ``vectors`` are row-aligned. ``within`` (e.g. the ``prompt_cluster`` column) restricts comparisons to rows
    of the same cluster; otherwise a blockwise all-pairs scan. Bad vectors (NaN, zero) are kept, counted.
    """
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(vectors) != table.num_rows:
        raise ValueError(f"need one vector per row: {table.num_rows} rows, vectors of shape {vectors.shape}")
    if table.num_rows == 0:
        return _result(table, np.zeros(0, bool), "semantic_dedup", "semantic_duplicate", None, None, {})
    groups = (
        None
        if within is None
        else _codes(
            within if isinstance(within, (pa.Array, pa.ChunkedArray)) else pa.array(np.asarray(within).tolist())
        )
    )
    pairs, sim = similar_pairs(vectors, threshold, groups, block)
    stats = {
        "threshold": threshold,
        "edges": int(len(pairs)),
        "bad_vectors": int((~_unit(vectors)[1]).sum()),
        "within_clusters": within is not None,
    }
    return _dedup_by_graph(table, pairs, sim, by, "semantic_dedup", "semantic_duplicate", stats, "cosine")


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


def near_identical_pairs(table: pa.Table, threshold: float = 0.9) -> DedupResult:
    """Pairwise rows whose chosen and rejected are near-identical carry no preference: reason
    ``near_identical_pair`` (similarity in ``detail``)."""
    if shape_of(table) != "pairwise":
        raise ValueError("near_identical_pairs needs pairwise rows (chosen/rejected)")
    if table.num_rows == 0:
        return _result(table, np.zeros(0, bool), "near_identical_pairs", "near_identical_pair", None, None, {})
    sim = pair_similarity(text_array(table, "chosen"), text_array(table, "rejected"))
    remove = sim >= threshold
    return _result(
        table,
        remove,
        "near_identical_pairs",
        "near_identical_pair",
        None,
        _details(remove, similarity=sim),
        {"threshold": threshold},
    )


def prompt_clusters(
    table: pa.Table,
    vectors: np.ndarray | None = None,
    threshold: float = 0.7,
    embed_threshold: float = 0.9,
    column: str = "prompt_cluster",
    **minhash_kw,
) -> pa.Table:
    """Add ``column``: the ``prompt_id`` of the cluster's representative prompt (lowest row index).

    Distinct prompts are clustered by MinHash over the prompt text (char n-grams for short prompts); with
    row-aligned prompt ``vectors``, prompts with cosine >= ``embed_threshold`` are merged too.
    """
    n = table.num_rows
    if n == 0:
        return _set_column(table, column, pa.array([], pa.string()))
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
    return _set_column(table, column, ids.take(pa.array(rep[u_of_row])))


def _set_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


def _priority(values: pa.Array | pa.ChunkedArray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random uint64 per value: depends on the value and seed only, not on row order."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    h = hash_strings(values.cast(pa.large_string()))
    with np.errstate(over="ignore"):
        h = (h ^ np.uint64(seed & 0xFFFFFFFFFFFFFFFF)) * np.uint64(0x9E3779B97F4A7C15)
    return h ^ (h >> np.uint64(29))


def cap_per_cluster(table: pa.Table, cap: int, seed: int = 0, column: str = "prompt_cluster") -> DedupResult:
    """Keep at most ``cap`` rows per cluster, a seeded random choice that does not depend on row order
    (reason ``cluster_cap``); stops one popular prompt from dominating the data."""
    if cap < 1:
        raise ValueError("cap must be >= 1")
    if column not in table.column_names:
        raise ValueError(f"no {column!r} column: run prompt_clusters first")
    n = table.num_rows
    if n == 0:
        return _result(table, np.zeros(0, bool), "cap_per_cluster", "cluster_cap", None, None, {"cap": cap})
    cl = _codes(table.column(column))
    order = np.lexsort((_priority(table.column("record_id"), seed), cl))
    first = np.flatnonzero(np.r_[True, cl[order][1:] != cl[order][:-1]])
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - np.repeat(first, np.diff(np.r_[first, n]))
    remove = rank >= cap
    size = np.bincount(cl)[cl]
    clusters = table.column(column).combine_chunks().to_numpy(zero_copy_only=False)
    detail = _details(remove, cluster=clusters, cluster_rows=size, cap=np.full(n, cap))
    return _result(table, remove, "cap_per_cluster", "cluster_cap", None, detail, {"cap": cap, "seed": seed})


def cluster_split(cluster_ids: np.ndarray | pa.Array | Sequence, test_fraction: float, seed: int = 0) -> np.ndarray:
    """Boolean ``is_test`` per row, assigned by whole clusters so near-duplicate prompts never sit in both
    train and test. Clusters are taken in a seeded hash order until the test share is closest to
    ``test_fraction``; the result depends on the cluster ids and seed, not on row order. Null ids form one
    cluster."""
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError("test_fraction must be in [0, 1]")
    arr = cluster_ids if isinstance(cluster_ids, (pa.Array, pa.ChunkedArray)) else pa.array(list(cluster_ids))
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    if n == 0:
        return np.zeros(0, bool)
    arr = arr.cast(pa.string())
    arr = arr.fill_null("\x00null")  # rows without a cluster id travel together (order-independent)
    enc = pc.dictionary_encode(arr)
    codes = enc.indices.to_numpy().astype(np.int64)
    sizes = np.bincount(codes, minlength=len(enc.dictionary))
    order = np.argsort(_priority(enc.dictionary, seed), kind="stable")
    cum = np.cumsum(sizes[order])
    target = test_fraction * n
    k = int(np.searchsorted(cum, target))  # clusters order[:k] stay under target, order[:k+1] reach it
    below = cum[k - 1] if k > 0 else 0
    if k < len(cum) and cum[k] - target < target - below:
        k += 1  # including the crossing cluster gets closer to the target
    is_test_cluster = np.zeros(len(sizes), bool)
    is_test_cluster[order[:k]] = True
    return is_test_cluster[codes]
