"""The per-chunk ingest step: raw records → canonical Arrow tables per shape + rejections.

Pure logic over one chunk, so Beam workers (pipelines/ingest.py) and tests call the same code.
Counting contract (docs/contracts.md): ``rows_read`` = candidate canonical rows the adapter
produced + records rejected before producing any row; every one ends up kept, rejected or (at
commit) a duplicate.

Adapters with an ``adapt_columns(obj, columns, source_row)`` method (hh-rlhf) take a columnar fast
path: rows go straight into ``schemas.records.Columns`` and the chunk's tables are built from
columns, with the same rows, rejects and counts as the ``adapt`` dict path.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

import pyarrow as pa

from schemas.adapters.base import AdaptError
from schemas.records import Columns, to_table
from schemas.readers import RawRecord
from schemas.step import Reject


@dataclass
class ChunkResult:
    tables: dict[str, pa.Table]
    rejects: list[Reject]
    records_read: int = 0
    rows_read: int = 0  # candidate rows + records rejected before yielding rows
    reasons: Counter = field(default_factory=Counter)


def adapt_records(records: Iterable[RawRecord], adapter, *, run_id: str, source_file: str,
                  format_name: str) -> ChunkResult:
    fast = getattr(adapter, "adapt_columns", None)
    if fast is not None:
        return _adapt_columnar(records, fast, run_id=run_id, source_file=source_file, format_name=format_name)
    rows: dict[str, list[dict]] = {}
    rejects: list[Reject] = []
    records_read = rows_read = 0
    for rec in records:
        records_read += 1
        if rec.error is not None:
            rec.error.source_file = source_file
            rejects.append(rec.error)
            rows_read += 1
            continue
        try:
            items = adapter.adapt(rec.obj)
        except AdaptError as e:
            rejects.append(Reject("adapt", e.reason, e.detail, source_file, rec.source_row, raw=rec.raw or rec.obj))
            rows_read += 1
            continue
        except Exception as e:  # an adapter bug must cost one record, not the run
            rejects.append(_adapter_error(e, source_file, rec))
            rows_read += 1
            continue
        if not items:
            # A record that carries no feedback (e.g. an oasst tree with no ranks or votes) is
            # still accounted for.
            rejects.append(_no_feedback(source_file, rec))
            rows_read += 1
            continue
        for item in items:
            rows_read += 1
            if isinstance(item, AdaptError):
                rejects.append(Reject("adapt", item.reason, item.detail, source_file, rec.source_row,
                                      raw=rec.raw or rec.obj))
                continue
            shape, row = item
            row["format"] = format_name
            row["source_file"] = source_file
            row["source_row"] = rec.source_row
            row["run_id"] = run_id
            rows.setdefault(shape, []).append(row)
    tables = {shape: to_table(r, shape) for shape, r in rows.items()}
    reasons = Counter(r.reason for r in rejects)
    return ChunkResult(tables, rejects, records_read, rows_read, reasons)


def _adapter_error(e: Exception, source_file: str, rec: RawRecord) -> Reject:
    return Reject("adapt", "adapter_error", f"{type(e).__name__}: {e}", source_file, rec.source_row,
                  raw=rec.raw or rec.obj)


def _no_feedback(source_file: str, rec: RawRecord) -> Reject:
    return Reject("adapt", "no_feedback", "record yields no preference rows", source_file, rec.source_row,
                  raw=rec.raw or rec.obj)


def _adapt_columnar(records: Iterable[RawRecord], adapt_columns, *, run_id: str, source_file: str,
                    format_name: str) -> ChunkResult:
    """``adapt_records`` for adapters with an ``adapt_columns`` fast path: rows go straight into
    ``schemas.records.Columns`` instead of dicts; same rows, rejects and counts as the dict path."""
    columns = Columns()
    rejects: list[Reject] = []
    records_read = rows_read = 0
    for rec in records:
        records_read += 1
        if rec.error is not None:
            rec.error.source_file = source_file
            rejects.append(rec.error)
            rows_read += 1
            continue
        try:
            added = adapt_columns(rec.obj, columns, rec.source_row)
        except AdaptError as e:
            rejects.append(Reject("adapt", e.reason, e.detail, source_file, rec.source_row, raw=rec.raw or rec.obj))
            rows_read += 1
            continue
        except Exception as e:  # an adapter bug must cost one record, not the run
            rejects.append(_adapter_error(e, source_file, rec))
            rows_read += 1
            continue
        if not added:
            rejects.append(_no_feedback(source_file, rec))
            rows_read += 1
            continue
        rows_read += added
    tables = columns.tables(format_name=format_name, source_file=source_file, run_id=run_id)
    reasons = Counter(r.reason for r in rejects)
    return ChunkResult(tables, rejects, records_read, rows_read, reasons)
