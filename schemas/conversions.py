"""Named, recorded conversions between feedback shapes (DESIGN §2).

Every output row carries the policy that made it (``ranking->pairs:adjacent``,
``ratings->pairs:overall:margin>=1``, ``pairs->binary``, ...), ``from_record_id(s)`` in ``meta`` and
the source row's lineage columns. Ties never become a chosen/rejected pair, and a completion is
never paired with itself (identical content carries no preference and would be an invalid pair).
Rows are built with ``schemas.records`` so ids match rows ingested directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from schemas.ids import conversation_id
from schemas.records import binary, pairwise, to_table

LINEAGE = ("format", "source_file", "source_row", "run_id")
RANKING_POLICIES = ("all", "adjacent", "best_vs_rest")


def _num(x: float) -> str:
    return f"{x:g}"


def _carry(src: dict, out: dict) -> dict:
    for k in LINEAGE:
        if k in src:
            out[k] = src[k]
    return out


def _meta(src: dict, **extra: Any) -> dict:
    """Source meta plus provenance keys (the source's own policy kept as ``from_policy``)."""
    meta = orjson.loads(src["meta"]) if src.get("meta") else {}
    if not isinstance(meta, dict):
        meta = {"source_meta": meta}
    if src.get("policy"):
        meta["from_policy"] = src["policy"]
    meta.update(extra)
    return meta


def _completion_keys(row: dict, key: str, items: str) -> list:
    ids = row.get(key)
    return list(ids) if ids is not None else [conversation_id(c) for c in row[items]]


# ------------------------------------------------------------------------------------- rankings


def _levels(row: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(item positions, sort key: lower = better, level: 0 = best, basis) — ranks win over scores.

    Items without a usable rank/score are left out of the ordering.
    """
    n = len(row["completions"])
    basis = "ranks" if row.get("ranks") is not None else "scores" if row.get("scores") is not None else None
    if basis is None:
        raise ValueError(f"ranks_invalid: listwise row {row.get('record_id')} has neither ranks nor scores")
    values = row[basis]
    if len(values) != n:
        raise ValueError(f"ranks_invalid: {len(values)} {basis} for {n} completions in {row.get('record_id')}")
    vals = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    pos = np.flatnonzero(np.isfinite(vals))
    key = vals[pos] if basis == "ranks" else -vals[pos]  # scores: higher is better
    _, level = np.unique(key, return_inverse=True)
    return pos, key, level.reshape(-1), basis


def _ranking_mask(level: np.ndarray, policy: str) -> np.ndarray:
    """mask[a, b]: item a is preferred to item b under ``policy``; equal levels (ties) never are."""
    a, b = level[:, None], level[None, :]
    if policy == "all":
        return a < b
    if policy == "adjacent":
        return a + 1 == b  # consecutive distinct levels
    if policy == "best_vs_rest":
        return (a == 0) & (b > 0)
    raise ValueError(f"unknown ranking policy {policy!r}; expected one of {', '.join(RANKING_POLICIES)}")


def ranking_to_pairs(row: dict, policy: str = "all") -> list[dict]:
    """Pairwise rows from a listwise row; margin = rank (or score) difference."""
    pos, key, level, basis = _levels(row)
    ids = _completion_keys(row, "completion_ids", "completions")
    comps, out = row["completions"], []
    for a, b in zip(*np.nonzero(_ranking_mask(level, policy))):
        i, j = int(pos[a]), int(pos[b])
        if ids[i] == ids[j]:
            continue
        pair = pairwise(
            row["prompt"],
            comps[i],
            comps[j],
            label="chosen_better",
            margin=float(key[b] - key[a]),
            origin=row["origin"],
            annotator_id=row.get("annotator_id"),
            policy=f"ranking->pairs:{policy}",
            meta=_meta(row, from_record_id=row.get("record_id"), from_items=[i, j], order_basis=basis),
        )
        out.append(_carry(row, pair))
    return out


def ranking_to_binary(row: dict, top_k: int = 1) -> list[dict]:
    """Items on the ``top_k`` best rank levels → True, the others → False; an all-tied list → nothing."""
    if top_k < 1:
        raise ValueError("top_k must be >= 1")
    pos, key, level, basis = _levels(row)
    if len(pos) == 0 or level.max() == 0:
        return []
    scores = row.get("scores")
    out = []
    for p, lv in zip(pos, level):
        i = int(p)
        score = None if scores is None or scores[i] is None else float(scores[i])
        b = binary(
            row["prompt"],
            row["completions"][i],
            label=bool(lv < top_k),
            score=score,
            origin=row["origin"],
            annotator_id=row.get("annotator_id"),
            policy=f"ranking->binary:top{top_k}",
            meta=_meta(row, from_record_id=row.get("record_id"), from_item=i, level=int(lv), order_basis=basis),
        )
        out.append(_carry(row, b))
    return out


# -------------------------------------------------------------------------------------- ratings


def rating_value(row: dict, attribute: str) -> float | None:
    """The row's finite value for ``attribute``, else None."""
    for r in row.get("ratings") or []:
        if r.get("attribute") == attribute and r.get("value") is not None and math.isfinite(r["value"]):
            return float(r["value"])
    return None


def ratings_to_pairs(rows: list[dict], attribute: str = "overall", min_margin: float = 1.0) -> list[dict]:
    """Pairs between ratings rows of one prompt whose ``attribute`` differs by at least ``min_margin``.

    Rows are grouped by ``prompt_id``; rows without the attribute take no part.
    """
    if not min_margin > 0:
        raise ValueError("min_margin must be > 0 (a zero margin would turn ties into pairs)")
    policy = f"ratings->pairs:{attribute}:margin>={_num(min_margin)}"
    groups: dict[str, list[tuple[dict, float]]] = {}
    for row in rows:
        v = rating_value(row, attribute)
        if v is not None:
            groups.setdefault(row["prompt_id"], []).append((row, v))
    out = []
    for members in groups.values():
        vals = np.array([v for _, v in members])
        ids = [r.get("completion_id") or conversation_id(r["completion"]) for r, _ in members]
        for i, j in zip(*np.nonzero(vals[:, None] - vals[None, :] >= min_margin)):
            (c, vc), (r, vr) = members[i], members[j]
            if ids[i] == ids[j]:
                continue
            annot = c.get("annotator_id") if c.get("annotator_id") == r.get("annotator_id") else None
            pair = pairwise(
                c["prompt"],
                c["completion"],
                r["completion"],
                label="chosen_better",
                margin=vc - vr,
                origin=c["origin"],
                annotator_id=annot,
                policy=policy,
                meta={
                    "from_record_ids": [c.get("record_id"), r.get("record_id")],
                    "attribute": attribute,
                    "values": [vc, vr],
                },
            )
            out.append(_carry(c, pair))
    return out


def ratings_to_binary(
    row: dict, attribute: str = "overall", desirable_at_least: float = 4.0, undesirable_at_most: float = 2.0
) -> list[dict]:
    """One binary row when the value is in the desirable or undesirable band; the middle band → nothing."""
    if not undesirable_at_most < desirable_at_least:
        raise ValueError("undesirable_at_most must be below desirable_at_least")
    v = rating_value(row, attribute)
    if v is None or undesirable_at_most < v < desirable_at_least:
        return []
    policy = f"ratings->binary:{attribute}:>={_num(desirable_at_least)}:<={_num(undesirable_at_most)}"
    b = binary(
        row["prompt"],
        row["completion"],
        label=v >= desirable_at_least,
        score=v,
        origin=row["origin"],
        annotator_id=row.get("annotator_id"),
        policy=policy,
        meta=_meta(row, from_record_id=row.get("record_id"), attribute=attribute),
    )
    return [_carry(row, b)]


# ---------------------------------------------------------------------------------------- pairs


def pairs_to_binary(row: dict) -> list[dict]:
    """chosen → True, rejected → False; a tie → nothing."""
    if row["label"] != "chosen_better":
        return []
    out = []
    for side, label in (("chosen", True), ("rejected", False)):
        b = binary(
            row["prompt"],
            row[side],
            label=label,
            origin=row["origin"],
            annotator_id=row.get("annotator_id"),
            policy="pairs->binary",
            meta=_meta(row, from_record_id=row.get("record_id"), pair_role=side, margin=row.get("margin")),
        )
        out.append(_carry(row, b))
    return out


# ---------------------------------------------------------------------------------------- tables

_PER_ROW: dict[tuple[str, str], Callable[..., list[dict]]] = {
    ("listwise", "pairwise"): ranking_to_pairs,
    ("listwise", "binary"): ranking_to_binary,
    ("pairwise", "binary"): pairs_to_binary,
    ("ratings", "binary"): ratings_to_binary,
}


def convert_table(table: pa.Table, src_shape: str, target: str, **policy_args: Any) -> pa.Table:
    """Convert a canonical table to ``target``'s schema with the named policy arguments.

    listwise→pairwise (``policy``), listwise→binary (``top_k``), ratings→pairwise (``attribute``,
    ``min_margin``), pairwise→binary, ratings→binary (``attribute``, ``desirable_at_least``,
    ``undesirable_at_most``). Same shape → the table unchanged.
    """
    if src_shape == target:
        return table
    rows = table.to_pylist()  # row building hashes each output row (records.*), so it is per-row anyway
    if (src_shape, target) == ("ratings", "pairwise"):
        out = ratings_to_pairs(rows, **policy_args)
    elif (src_shape, target) in _PER_ROW:
        fn = _PER_ROW[(src_shape, target)]
        out = [o for row in rows for o in fn(row, **policy_args)]
    else:
        raise ValueError(f"no conversion from {src_shape} to {target}")
    return to_table(out, target)


__all__ = [
    "ranking_to_pairs",
    "ranking_to_binary",
    "ratings_to_pairs",
    "ratings_to_binary",
    "pairs_to_binary",
    "convert_table",
    "rating_value",
    "RANKING_POLICIES",
    "LINEAGE",
]
