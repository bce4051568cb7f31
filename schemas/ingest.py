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
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from schemas.adapters.base import AdaptError
from schemas.readers import RawRecord
from schemas.records import Columns, to_table
from schemas.step import Reject


@dataclass
class ChunkResult:
    tables: dict[str, pa.Table]
    rejects: list[Reject]
    records_read: int = 0
    rows_read: int = 0  # candidate rows + records rejected before yielding rows
    reasons: Counter = field(default_factory=Counter)


def adapt_records(
    records: Iterable[RawRecord], adapter, *, run_id: str, source_file: str, format_name: str
) -> ChunkResult:
    tally = _Tally(source_file)
    fast = getattr(adapter, "adapt_columns", None)
    if fast is not None:
        # Columnar fast path: rows go straight into Columns; the adapter returns how many it added.
        columns = Columns()
        for rec, added in tally.adapted(records, lambda r: fast(r.obj, columns, r.source_row)):
            tally.rows_read += added
        tables = columns.tables(format_name=format_name, source_file=source_file, run_id=run_id)
        return tally.result(tables)
    rows: dict[str, list[dict]] = {}
    for rec, items in tally.adapted(records, lambda r: adapter.adapt(r.obj)):
        for item in items:
            tally.rows_read += 1
            if isinstance(item, AdaptError):
                tally.reject(rec, item.reason, item.detail)
                continue
            shape, row = item
            row["format"] = format_name
            row["source_file"] = source_file
            row["source_row"] = rec.source_row
            row["run_id"] = run_id
            rows.setdefault(shape, []).append(row)
    return tally.result({shape: to_table(r, shape) for shape, r in rows.items()})


class _Tally:
    """Counts and rejections shared by both adapt paths: every record that yields no row is one
    rejected row (parse error, adapter error, adapter bug, or no feedback at all)."""

    def __init__(self, source_file: str):
        self.source_file = source_file
        self.rejects: list[Reject] = []
        self.records_read = self.rows_read = 0

    def reject(self, rec: RawRecord, reason: str, detail: str) -> None:
        self.rejects.append(Reject("adapt", reason, detail, self.source_file, rec.source_row, raw=rec.raw or rec.obj))

    def adapted(self, records: Iterable[RawRecord], adapt):
        """Yield (record, adapter output) for records that produced something; reject the rest."""
        for rec in records:
            self.records_read += 1
            if rec.error is not None:
                rec.error.source_file = self.source_file
                self.rejects.append(rec.error)
                self.rows_read += 1
                continue
            try:
                out = adapt(rec)
            except AdaptError as e:
                self.reject(rec, e.reason, e.detail)
                self.rows_read += 1
                continue
            except Exception as e:  # an adapter bug must cost one record, not the run
                self.reject(rec, "adapter_error", f"{type(e).__name__}: {e}")
                self.rows_read += 1
                continue
            if not out:
                # A record that carries no feedback (e.g. an oasst tree with no ranks or votes) is
                # still accounted for.
                self.reject(rec, "no_feedback", "record yields no preference rows")
                self.rows_read += 1
                continue
            yield rec, out

    def result(self, tables: dict[str, pa.Table]) -> ChunkResult:
        return ChunkResult(
            tables, self.rejects, self.records_read, self.rows_read, Counter(r.reason for r in self.rejects)
        )
