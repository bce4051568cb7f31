"""The per-chunk ingest step: raw records → canonical Arrow tables per shape + rejections.

Pure logic over one chunk, so Beam workers (pipelines/ingest.py) and tests call the same code.
Counting contract (docs/contracts.md): ``rows_read`` = candidate canonical rows the adapter
produced + records rejected before producing any row; every one ends up kept, rejected or (at
commit) a duplicate.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

import pyarrow as pa

from schemas.adapters.base import AdaptError
from schemas.records import to_table
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
            rejects.append(Reject("adapt", "adapter_error", f"{type(e).__name__}: {e}", source_file,
                                  rec.source_row, raw=rec.raw or rec.obj))
            rows_read += 1
            continue
        if not items:
            # A record that carries no feedback (e.g. an oasst tree with no ranks or votes) is
            # still accounted for.
            rejects.append(Reject("adapt", "no_feedback", "record yields no preference rows", source_file,
                                  rec.source_row, raw=rec.raw or rec.obj))
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
