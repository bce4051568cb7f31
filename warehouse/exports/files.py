"""Export files: JSON Lines or Parquet, byte-identical for identical input, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.errors import WarehouseError

FILE_FORMATS = ("jsonl", "parquet")


def write_rows(table: pa.Table, path: Path, file_format: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    if file_format == "jsonl":
        with open(tmp, "wb") as f:
            for batch in table.to_batches(max_chunksize=10_000):
                f.write(b"".join(orjson.dumps(r) + b"\n" for r in batch.to_pylist()))
    elif file_format == "parquet":
        pq.write_table(table, tmp, compression="zstd")
    else:
        raise WarehouseError(f"unknown file format {file_format!r}; expected {' or '.join(FILE_FORMATS)}")
    os.replace(tmp, path)


def write_text(text: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
