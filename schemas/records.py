"""Builders for canonical rows. Adapters and generators call these; they normalise and hash.

Each builder returns a plain dict matching the shape's Arrow schema minus the lineage columns
(``source_file``, ``source_row``, ``run_id``, ``format``), which the reader fills in.
"""
from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa

from schemas.canonical import schema_for
from schemas.ids import conversation_bytes, conversation_id, digest, normalise_messages


def _meta(meta: dict | None) -> str | None:
    if not meta:
        return None
    return orjson.dumps(meta, default=str).decode()


def _common(shape: str, prompt: list[dict], origin: str, annotator_id: str | None,
            policy: str | None, meta: dict | None) -> tuple[dict, bytes]:
    """The shared columns, plus the prompt's serialised bytes (hashed again into record_id)."""
    pb = conversation_bytes(prompt)
    return {
        "prompt": prompt,
        "prompt_id": digest(pb),
        "origin": origin,
        "annotator_id": None if annotator_id is None else str(annotator_id),
        "policy": policy,
        "meta": _meta(meta),
    }, pb


def pairwise(prompt: list[dict], chosen: list[dict], rejected: list[dict], *, label: str = "chosen_better",
             margin: float | None = None, origin: str = "human", annotator_id: str | None = None,
             policy: str | None = None, meta: dict | None = None) -> dict:
    prompt, chosen, rejected = (normalise_messages(x) for x in (prompt, chosen, rejected))
    row, pb = _common("pairwise", prompt, origin, annotator_id, policy, meta)
    cb, rb = conversation_bytes(chosen), conversation_bytes(rejected)
    row.update(
        chosen=chosen, rejected=rejected, chosen_id=digest(cb), rejected_id=digest(rb), label=label,
        margin=None if margin is None else float(margin),
        record_id=digest(b"pairwise", pb, cb, rb, label.encode(),
                         (row["annotator_id"] or "").encode(), (policy or "").encode()),
    )
    return row


def binary(prompt: list[dict], completion: list[dict], *, label: bool, score: float | None = None,
           origin: str = "human", annotator_id: str | None = None, policy: str | None = None,
           meta: dict | None = None) -> dict:
    prompt, completion = normalise_messages(prompt), normalise_messages(completion)
    row, pb = _common("binary", prompt, origin, annotator_id, policy, meta)
    cb = conversation_bytes(completion)
    row.update(
        completion=completion, completion_id=digest(cb), label=bool(label),
        score=None if score is None else float(score),
        record_id=digest(b"binary", pb, cb, b"1" if label else b"0",
                         (row["annotator_id"] or "").encode(), (policy or "").encode()),
    )
    return row


def listwise(prompt: list[dict], completions: list[list[dict]], *, ranks: list[int] | None = None,
             scores: list[float] | None = None, origin: str = "human", annotator_id: str | None = None,
             policy: str | None = None, meta: dict | None = None) -> dict:
    prompt = normalise_messages(prompt)
    completions = [normalise_messages(c) for c in completions]
    row, pb = _common("listwise", prompt, origin, annotator_id, policy, meta)
    cbs = [conversation_bytes(c) for c in completions]
    row.update(
        completions=completions, completion_ids=[digest(b) for b in cbs],
        ranks=None if ranks is None else [int(r) for r in ranks],
        scores=None if scores is None else [float(s) for s in scores],
        record_id=digest(b"listwise", pb, *cbs, orjson.dumps(ranks), orjson.dumps(scores),
                         (row["annotator_id"] or "").encode(), (policy or "").encode()),
    )
    return row


def ratings(prompt: list[dict], completion: list[dict], attributes: dict[str, float], *,
            scales: dict[str, tuple[float, float]] | None = None, origin: str = "human",
            annotator_id: str | None = None, policy: str | None = None, meta: dict | None = None) -> dict:
    prompt, completion = normalise_messages(prompt), normalise_messages(completion)
    row, pb = _common("ratings", prompt, origin, annotator_id, policy, meta)
    scales = scales or {}
    items = []
    for name in sorted(attributes):
        lo, hi = scales.get(name, (None, None))
        items.append({"attribute": name, "value": float(attributes[name]),
                      "scale_min": None if lo is None else float(lo), "scale_max": None if hi is None else float(hi)})
    cb = conversation_bytes(completion)
    row.update(
        completion=completion, completion_id=digest(cb), ratings=items,
        record_id=digest(b"ratings", pb, cb, orjson.dumps(items),
                         (row["annotator_id"] or "").encode(), (policy or "").encode()),
    )
    return row


BUILDERS = {"pairwise": pairwise, "binary": binary, "listwise": listwise, "ratings": ratings}


def to_table(rows: list[dict[str, Any]], shape: str) -> pa.Table:
    """Rows (with lineage filled in) → an Arrow table of the shape's schema."""
    return pa.Table.from_pylist(rows, schema=schema_for(shape))


def conversation_text(messages: list[dict]) -> str:
    """Plain text of a conversation, for embedding and near-dup work."""
    return "\n".join(m["content"] for m in messages)


__all__ = ["pairwise", "binary", "listwise", "ratings", "to_table", "conversation_text", "conversation_id"]
