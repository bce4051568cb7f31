"""Builders for canonical rows. Adapters and generators call these; they normalise and hash.

Each builder returns a plain dict matching the shape's Arrow schema minus the lineage columns
(``source_file``, ``source_row``, ``run_id``, ``format``), which the reader fills in.

``PairwiseColumns`` is the ingest fast path for adapters that can feed it (hh-rlhf): the same
normalisation and ids as ``pairwise`` (both go through ``_pairwise_core``), but a row is one tuple
and the chunk's Arrow columns are built directly from them, with no per-row dicts and no
``Table.from_pylist`` over nested messages.
"""

from __future__ import annotations

import hashlib
from itertools import accumulate, chain
from typing import Any

import orjson
import pyarrow as pa

from schemas.canonical import CONVERSATION, MESSAGE, PAIRWISE, schema_for
from schemas.ids import _SEP, conversation_bytes, conversation_id, digest, normalise_messages, normalise_text

_blake2b = hashlib.blake2b


def _meta(meta: dict | None) -> str | None:
    if not meta:
        return None
    return orjson.dumps(meta, default=str).decode()


def _common(
    shape: str, prompt: list[dict], origin: str, annotator_id: str | None, policy: str | None, meta: dict | None
) -> tuple[dict, bytes]:
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


def _pairs(messages: Any) -> list[list]:
    """Normalised ``[role, content]`` pairs of ``{role, content}`` messages.

    This list is exactly what ``conversation_bytes`` serialises, so it is hashed as it is (one
    ``orjson.dumps``) instead of being rebuilt from dicts. Same checks as ``normalise_messages``
    (a non-text content raises the same error), with ``normalise_text``'s ASCII fast path inlined.
    """
    out = []
    for m in messages:
        role, c = m["role"], m["content"]  # role first: a message missing both fails on "role", as before
        out.append([role, c.strip() if c.isascii() and "\r" not in c else normalise_text(c)])
    return out


def _dicts(pairs: list[list]) -> list[dict]:
    return [{"role": r, "content": c} for r, c in pairs]


def _pairwise_core(
    p: list[list],
    c: list[list],
    r: list[list],
    label: str,
    margin: Any,
    annotator_id: Any,
    policy: str | None,
    meta: dict | None,
) -> tuple:
    """Ids and scalar columns of a pairwise row from normalised pairs; the one place they are computed.

    Steps run in the order the original builder ran them, so a record that fails (e.g. a lone
    surrogate that orjson cannot encode) fails with the same error either way.
    """
    pb = orjson.dumps(p)
    prompt_id = _blake2b(pb, digest_size=16).hexdigest()
    annotator = None if annotator_id is None else str(annotator_id)
    meta_text = _meta(meta) if meta else None
    cb, rb = orjson.dumps(c), orjson.dumps(r)
    chosen_id = _blake2b(cb, digest_size=16).hexdigest()
    rejected_id = _blake2b(rb, digest_size=16).hexdigest()
    margin = None if margin is None else float(margin)
    record_id = _blake2b(
        _SEP.join((b"pairwise", pb, cb, rb, label.encode(), (annotator or "").encode(), (policy or "").encode())),
        digest_size=16,
    ).hexdigest()
    return record_id, prompt_id, annotator, meta_text, chosen_id, rejected_id, margin


def pairwise(
    prompt: list[dict],
    chosen: list[dict],
    rejected: list[dict],
    *,
    label: str = "chosen_better",
    margin: float | None = None,
    origin: str = "human",
    annotator_id: str | None = None,
    policy: str | None = None,
    meta: dict | None = None,
) -> dict:
    p, c, r = _pairs(prompt), _pairs(chosen), _pairs(rejected)
    record_id, prompt_id, annotator, meta_text, chosen_id, rejected_id, margin = _pairwise_core(
        p, c, r, label, margin, annotator_id, policy, meta
    )
    return {
        "prompt": _dicts(p),
        "prompt_id": prompt_id,
        "origin": origin,
        "annotator_id": annotator,
        "policy": policy,
        "meta": meta_text,
        "chosen": _dicts(c),
        "rejected": _dicts(r),
        "chosen_id": chosen_id,
        "rejected_id": rejected_id,
        "label": label,
        "margin": margin,
        "record_id": record_id,
    }


class PairwiseColumns:
    """Pairwise rows of one chunk, kept as one tuple per row; ``to_table`` builds the Arrow columns directly.

    ``add`` takes messages as ``(role, content)`` pairs and normalises and hashes them exactly like
    ``pairwise`` (both go through ``_pairwise_core``), so the table equals ``to_table`` over the dict
    rows ``pairwise`` would have built (tests/schemas/test_records_fastpath.py checks this) without
    building any per-row dict or going through ``Table.from_pylist`` of nested messages. A row is
    appended whole or, when ``add`` raises, not at all.
    """

    shape = "pairwise"
    # Tuple layout of a row; conversations are lists of [role, content] pairs.
    _FIELDS = (
        "record_id",
        "prompt_id",
        "prompt",
        "origin",
        "annotator_id",
        "policy",
        "source_row",
        "meta",
        "chosen",
        "rejected",
        "chosen_id",
        "rejected_id",
        "label",
        "margin",
    )
    _CONVERSATIONS = frozenset(("prompt", "chosen", "rejected"))

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add(
        self,
        prompt: Any,
        chosen: Any,
        rejected: Any,
        source_row: int,
        *,
        label: str = "chosen_better",
        margin: float | None = None,
        origin: str = "human",
        annotator_id: str | None = None,
        policy: str | None = None,
        meta: dict | None = None,
    ) -> None:
        # ``_pairs`` for (role, text) pairs, inlined: this runs once per ingested row.
        p = [[role, t.strip() if t.isascii() and "\r" not in t else normalise_text(t)] for role, t in prompt]
        c = [[role, t.strip() if t.isascii() and "\r" not in t else normalise_text(t)] for role, t in chosen]
        r = [[role, t.strip() if t.isascii() and "\r" not in t else normalise_text(t)] for role, t in rejected]
        record_id, prompt_id, annotator, meta_text, chosen_id, rejected_id, margin = _pairwise_core(
            p, c, r, label, margin, annotator_id, policy, meta
        )
        self.rows.append(
            (
                record_id,
                prompt_id,
                p,
                origin,
                annotator,
                policy,
                source_row,
                meta_text,
                c,
                r,
                chosen_id,
                rejected_id,
                label,
                margin,
            )
        )

    def to_table(self, *, format_name: str, source_file: str, run_id: str) -> pa.Table:
        """The rows as a ``PAIRWISE`` table with the lineage columns filled in."""
        n = len(self.rows)
        columns = dict(zip(self._FIELDS, zip(*self.rows))) if n else {f: () for f in self._FIELDS}
        arrays = {}
        for name, values in columns.items():
            if name in self._CONVERSATIONS:
                arrays[name] = _conversation_array(values)
            else:
                arrays[name] = pa.array(values, PAIRWISE.field(name).type)
        for name, value in (("format", format_name), ("source_file", source_file), ("run_id", run_id)):
            arrays[name] = pa.array([value] * n, pa.string())
        if any(isinstance(a, pa.ChunkedArray) for a in arrays.values()):
            # Over 2 GiB of text in one column (pa.array chunked it): let from_pylist lay it out.
            return self._table_via_pylist(format_name=format_name, source_file=source_file, run_id=run_id)
        return pa.Table.from_arrays([arrays[f.name] for f in PAIRWISE], schema=PAIRWISE)

    def _table_via_pylist(self, *, format_name: str, source_file: str, run_id: str) -> pa.Table:
        rows = [dict(zip(self._FIELDS, row)) for row in self.rows]
        for row in rows:
            row.update(format=format_name, source_file=source_file, run_id=run_id)
            for name in self._CONVERSATIONS:
                row[name] = _dicts(row[name])
        return to_table(rows, self.shape)


class Columns:
    """Column builders of one chunk, by shape: what an adapter's optional ``adapt_columns(obj, columns,
    source_row) -> rows added`` fast path appends to (see schemas.ingest.adapt_records)."""

    def __init__(self) -> None:
        self.pairwise = PairwiseColumns()

    def tables(self, *, format_name: str, source_file: str, run_id: str) -> dict[str, pa.Table]:
        return {
            b.shape: b.to_table(format_name=format_name, source_file=source_file, run_id=run_id)
            for b in (self.pairwise,)
            if len(b)
        }


def _conversation_array(conversations: Any) -> pa.Array | pa.ChunkedArray:
    """list<{role, content}> array from conversations given as lists of [role, content] pairs."""
    messages = list(chain.from_iterable(conversations))
    roles = pa.array([m[0] for m in messages], pa.string())
    contents = pa.array([m[1] for m in messages], pa.string())
    if isinstance(roles, pa.ChunkedArray) or isinstance(contents, pa.ChunkedArray):
        return contents  # too big for one array; the caller falls back to from_pylist
    offsets = pa.array(list(accumulate(map(len, conversations), initial=0)), pa.int32())
    values = pa.StructArray.from_arrays([roles, contents], fields=list(MESSAGE))
    return pa.ListArray.from_arrays(offsets, values, type=CONVERSATION)


def binary(
    prompt: list[dict],
    completion: list[dict],
    *,
    label: bool,
    score: float | None = None,
    origin: str = "human",
    annotator_id: str | None = None,
    policy: str | None = None,
    meta: dict | None = None,
) -> dict:
    prompt, completion = normalise_messages(prompt), normalise_messages(completion)
    row, pb = _common("binary", prompt, origin, annotator_id, policy, meta)
    cb = conversation_bytes(completion)
    row.update(
        completion=completion,
        completion_id=digest(cb),
        label=bool(label),
        score=None if score is None else float(score),
        record_id=digest(
            b"binary", pb, cb, b"1" if label else b"0", (row["annotator_id"] or "").encode(), (policy or "").encode()
        ),
    )
    return row


def listwise(
    prompt: list[dict],
    completions: list[list[dict]],
    *,
    ranks: list[int] | None = None,
    scores: list[float] | None = None,
    origin: str = "human",
    annotator_id: str | None = None,
    policy: str | None = None,
    meta: dict | None = None,
) -> dict:
    prompt = normalise_messages(prompt)
    completions = [normalise_messages(c) for c in completions]
    row, pb = _common("listwise", prompt, origin, annotator_id, policy, meta)
    cbs = [conversation_bytes(c) for c in completions]
    row.update(
        completions=completions,
        completion_ids=[digest(b) for b in cbs],
        ranks=None if ranks is None else [int(r) for r in ranks],
        scores=None if scores is None else [float(s) for s in scores],
        record_id=digest(
            b"listwise",
            pb,
            *cbs,
            orjson.dumps(ranks),
            orjson.dumps(scores),
            (row["annotator_id"] or "").encode(),
            (policy or "").encode(),
        ),
    )
    return row


def ratings(
    prompt: list[dict],
    completion: list[dict],
    attributes: dict[str, float],
    *,
    scales: dict[str, tuple[float, float]] | None = None,
    origin: str = "human",
    annotator_id: str | None = None,
    policy: str | None = None,
    meta: dict | None = None,
) -> dict:
    prompt, completion = normalise_messages(prompt), normalise_messages(completion)
    row, pb = _common("ratings", prompt, origin, annotator_id, policy, meta)
    scales = scales or {}
    items = []
    for name in sorted(attributes):
        lo, hi = scales.get(name, (None, None))
        items.append(
            {
                "attribute": name,
                "value": float(attributes[name]),
                "scale_min": None if lo is None else float(lo),
                "scale_max": None if hi is None else float(hi),
            }
        )
    cb = conversation_bytes(completion)
    row.update(
        completion=completion,
        completion_id=digest(cb),
        ratings=items,
        record_id=digest(
            b"ratings", pb, cb, orjson.dumps(items), (row["annotator_id"] or "").encode(), (policy or "").encode()
        ),
    )
    return row


BUILDERS = {"pairwise": pairwise, "binary": binary, "listwise": listwise, "ratings": ratings}


def to_table(rows: list[dict[str, Any]], shape: str) -> pa.Table:
    """Rows (with lineage filled in) → an Arrow table of the shape's schema."""
    return pa.Table.from_pylist(rows, schema=schema_for(shape))


def conversation_text(messages: list[dict]) -> str:
    """Plain text of a conversation, for embedding and near-dup work."""
    return "\n".join(m["content"] for m in messages)


__all__ = [
    "pairwise",
    "binary",
    "listwise",
    "ratings",
    "to_table",
    "conversation_text",
    "conversation_id",
    "PairwiseColumns",
    "Columns",
]
