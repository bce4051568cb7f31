"""The ingest source: file chunks → canonical Arrow tables per shape + rejections.

``AdaptSource`` is the first step of the ingest pipeline (a ``schemas.step.Source``): ``plan`` splits
the input files into chunks on the driver, ``read`` turns one chunk into tables and rejected rows on
a worker, with the adapter built once per worker in ``setup``. ``adapt_records`` is the same logic
over records already read (tests call it with any adapter object).

Counting (docs/contracts.md) is the Source base class's: ``rows_in`` = candidate canonical rows the
adapter produced + records rejected before producing any row (parse errors, adapter errors, records
without feedback); every one ends up kept, rejected or (at commit) a duplicate.

Adapters with an ``adapt_columns(obj, columns, source_row)`` method (hh-rlhf) take a columnar fast
path: rows go straight into ``schemas.records.Columns`` and the chunk's tables are built from
columns, with the same rows, rejects and counts as the ``adapt`` dict path.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from schemas.adapters import get_adapter
from schemas.adapters.base import Adapter, AdaptError
from schemas.canonical import SHAPES
from schemas.readers import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_MAX_RECORD_BYTES,
    Chunk,
    RawRecord,
    check_source,
    plan_chunks,
    read_chunk,
)
from schemas.records import Columns, to_table
from schemas.registry import STEPS
from schemas.step import Reject, Source, SourceResult, rejected_table

STEP = "adapt"


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic GC while a chunk is adapted.

    A chunk allocates a few hundred thousand small containers (parsed records, message lists, id
    tuples) that all stay alive until the chunk's table is built, so every automatic collection
    finds nothing to free, yet the full ones walk the whole heap (Beam, pandas, GX): measured at
    ~1/3 of the chunk's CPU time. Reference counting still frees everything; whatever cyclic
    garbage a chunk leaves is collected by the next collection after it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@STEPS.register("adapt", shapes=SHAPES, extra={"stage": "ingest", "source": True})
class AdaptSource(Source[Chunk]):
    """Input files → canonical rows per shape through the format's adapter; bad records rejected.

    Each rejected record has a reason: a parse error, an adapter error, or a record without feedback."""

    name = STEP

    def __init__(
        self,
        paths: Iterable[str],
        format_name: str,
        *,
        mapping: str | dict | None = None,
        adapter_options: dict | None = None,
        run_id: str = "",
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ):
        super().__init__()
        self.paths = [str(p) for p in paths]
        self.format_name, self.mapping = format_name, mapping
        self.adapter_options = dict(adapter_options or {})
        self.run_id, self.chunk_rows, self.max_record_bytes = run_id, chunk_rows, max_record_bytes
        self.adapter: Adapter | None = None

    def check(self) -> None:
        """Fail fast on the driver, before any work: a bad format, mapping or option (UnknownFormat,
        MappingError, BadSettings), a missing or unreadable file (SourceError)."""
        self._build()
        for p in self.paths:
            check_source(p)

    def plan(self) -> list[Chunk]:
        return [c for p in self.paths for c in plan_chunks(p, self.chunk_rows)]

    def input_bytes(self) -> int:
        return sum(os.path.getsize(p) for p in self.paths)

    def setup(self) -> None:
        # The adapter (and a parsed mapping file) is built once per worker, not per chunk.
        self.adapter = self._build()

    def teardown(self) -> None:
        self.adapter = None

    def _build(self) -> Adapter:
        return get_adapter(self.format_name, self.mapping, **self.adapter_options)

    def read(self, chunk: Chunk) -> SourceResult:
        if self.adapter is None:
            self.setup()
        assert self.adapter is not None
        with _gc_paused():
            return adapt_records(
                read_chunk(chunk, self.max_record_bytes),
                self.adapter,
                run_id=self.run_id,
                source_file=os.path.abspath(chunk.path),
                format_name=self.format_name,
            )


def adapt_records(
    records: Iterable[RawRecord], adapter: Any, *, run_id: str, source_file: str, format_name: str
) -> SourceResult:
    """Raw records → canonical tables per shape + rejected rows (``AdaptSource.read`` over one chunk)."""
    tally = _Tally(source_file)
    fast = getattr(adapter, "adapt_columns", None)
    if fast is not None:
        # Columnar fast path: rows go straight into Columns (the adapter returns how many it added).
        columns = Columns()
        for _ in tally.adapted(records, lambda r: fast(r.obj, columns, r.source_row)):
            pass
        tables = columns.tables(format_name=format_name, source_file=source_file, run_id=run_id)
        return tally.result(tables, run_id)
    rows: dict[str, list[dict]] = {}
    for rec, items in tally.adapted(records, lambda r: adapter.adapt(r.obj)):
        for item in items:
            if isinstance(item, AdaptError):
                tally.reject(rec, item.reason, item.detail)
                continue
            shape, row = item
            row["format"] = format_name
            row["source_file"] = source_file
            row["source_row"] = rec.source_row
            row["run_id"] = run_id
            rows.setdefault(shape, []).append(row)
    return tally.result({shape: to_table(r, shape) for shape, r in rows.items()}, run_id)


class _Tally:
    """Rejections shared by both adapt paths: every record that yields no row is one rejected row
    (parse error, adapter error, adapter bug, or no feedback at all)."""

    def __init__(self, source_file: str):
        self.source_file = source_file
        self.rejects: list[Reject] = []
        self.records_read = 0

    def reject(self, rec: RawRecord, reason: str, detail: str) -> None:
        self.rejects.append(Reject(STEP, reason, detail, self.source_file, rec.source_row, raw=rec.raw or rec.obj))

    def adapted(self, records: Iterable[RawRecord], adapt: Callable[[RawRecord], Any]) -> Iterator[tuple]:
        """Yield (record, adapter output) for records that produced something; reject the rest."""
        for rec in records:
            self.records_read += 1
            if rec.error is not None:
                rec.error.source_file = self.source_file
                self.rejects.append(rec.error)
                continue
            try:
                out = adapt(rec)
            except AdaptError as e:
                self.reject(rec, e.reason, e.detail)
                continue
            except Exception as e:  # an adapter bug must cost one record, not the run
                self.reject(rec, "adapter_error", f"{type(e).__name__}: {e}")
                continue
            if not out:
                # A record that carries no feedback (e.g. an oasst tree with no ranks or votes) is
                # still accounted for.
                self.reject(rec, "no_feedback", "record yields no preference rows")
                continue
            yield rec, out

    def result(self, tables: dict[str, pa.Table], run_id: str) -> SourceResult:
        return SourceResult(tables, rejected_table(self.rejects, run_id), self.records_read)
