"""The Parquet lake: immutable content-addressed objects and per-run quarantine files.

An object's name is the SHA-256 of its bytes, so identical content is one object, an object never
changes after it is written, and a half-finished commit can only leave unreferenced files behind.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.canonical import QUARANTINE
from warehouse.errors import WarehouseError, one_line
from warehouse.layout import Layout
from warehouse.sql import ident, lit, lit_list, value

# Row groups are sized by uncompressed bytes (text rows vary 100x in size), and files are split so
# no single object grows unbounded. Rows are cut into fixed-size batches before sizing, so the same
# content always produces the same row groups, the same bytes and therefore the same object name.
ROW_GROUP_BYTES = 96 * 1024 * 1024
FILE_BYTES = 1024 * 1024 * 1024
BATCH_ROWS = 4096


@dataclass(frozen=True)
class LakeObject:
    shape: str
    sha: str
    path: str  # relative to the root
    rows: int


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _rebatch(batches: Iterable[pa.RecordBatch], n: int) -> Iterator[pa.Table]:
    """Exactly ``n`` rows per table (the last may be shorter), in fresh contiguous buffers."""
    pending, count = [], 0
    for b in batches:
        while b.num_rows:
            take = min(n - count, b.num_rows)
            pending.append(b.slice(0, take))
            count, b = count + take, b.slice(take)
            if count == n:
                yield pa.Table.from_batches(pending).combine_chunks()
                pending, count = [], 0
    if count:
        yield pa.Table.from_batches(pending).combine_chunks()


class _ObjectSink:
    """Writes row groups into temp files; each finished file is renamed to the SHA-256 of its bytes."""

    def __init__(self, schema: pa.Schema, shape: str, layout: Layout, tag: str):
        self.schema, self.shape, self.layout = schema, shape, layout
        self.dir = layout.objects_dir(shape)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tag, self.n, self.rows, self.bytes = tag, 0, 0, 0
        self.writer: pq.ParquetWriter | None = None  # the open temp file, if any
        self.tmp: Path  # its path, set when it is opened
        self.objects: list[LakeObject] = []

    def write_row_group(self, table: pa.Table) -> None:
        if self.writer is None:
            self.tmp = self.dir / f".tmp-{self.tag}-{self.n}.parquet"
            self.writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd")
            self.n += 1
        self.writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self.rows += table.num_rows
        self.bytes += table.nbytes
        if self.bytes >= FILE_BYTES:
            self.finish_file()

    def finish_file(self) -> None:
        if self.writer is None:
            return
        self.writer.close()
        self.writer = None
        sha = _sha256(self.tmp)
        final = self.dir / f"{sha}.parquet"
        if final.exists():  # the same bytes are already in the lake
            self.tmp.unlink()
        else:
            os.replace(self.tmp, final)
        self.objects.append(LakeObject(self.shape, sha, self.layout.rel(final), self.rows))
        self.rows = self.bytes = 0

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.tmp.unlink(missing_ok=True)


def write_objects(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, shape: str, layout: Layout, tag: str
) -> list[LakeObject]:
    """Write rows (in order) as content-addressed zstd Parquet objects of ``shape``."""
    sink = _ObjectSink(schema, shape, layout, tag)
    group: list[pa.Table] = []
    size = 0
    try:
        for t in _rebatch(batches, BATCH_ROWS):
            group.append(t.cast(schema))
            size += t.nbytes
            if size >= ROW_GROUP_BYTES:
                sink.write_row_group(pa.concat_tables(group))
                group, size = [], 0
        if group:
            sink.write_row_group(pa.concat_tables(group))
        sink.finish_file()
    except (pa.ArrowException, duckdb.Error) as e:
        sink.abort()
        raise WarehouseError(f"writing {shape} objects failed: {one_line(e)}") from None
    except BaseException:
        sink.abort()
        raise
    return sink.objects


def write_quarantine(
    con: duckdb.DuckDBPyConnection, shards: list[Path], layout: Layout, run_id: str
) -> tuple[str, int] | None:
    """Merge a run's quarantine shards into one lake file; (relative path, rows) or None if empty."""
    if not shards:
        return None
    cols = ", ".join(ident(f.name) for f in QUARANTINE)
    rows = value(con, f"SELECT count(*) FROM read_parquet({lit_list(shards)})")
    if rows == 0:
        return None
    out_dir = layout.quarantine_dir(run_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / "quarantine.parquet"
    tmp = out_dir / ".quarantine.parquet.tmp"
    con.execute(
        f"COPY (SELECT {cols} FROM read_parquet({lit_list(shards)})) TO {lit(tmp)} (FORMAT parquet, COMPRESSION zstd)"
    )
    os.replace(tmp, final)
    return layout.rel(final), rows
