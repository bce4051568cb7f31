"""Reading source files into raw records, in chunks that Beam workers can process independently.

A *chunk* is a slice of one file: for JSON Lines a byte range found by a fast newline scan (so
workers read in parallel and a 10 MB line never loads more than itself); for a JSON array, gzip,
Parquet or CSV file the parsed records of a row range. Every record keeps its 0-based row index
in the file for lineage. A line that is not valid UTF-8 or not valid JSON becomes a raw record
with an error (it goes to the quarantine), never an exception.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.errors import PrefmillError
from schemas.step import Reject

# Editors on Windows prepend a UTF-8 byte-order mark; orjson rejects it, so it is dropped.
BOM = b"\xef\xbb\xbf"

DEFAULT_CHUNK_ROWS = 20_000
DEFAULT_MAX_RECORD_BYTES = 4 * 1024 * 1024  # a larger record is quarantined as record_too_large

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
SUFFIXES = JSONL_SUFFIXES + (".json", ".json.gz", ".parquet", ".csv", ".csv.gz")


class SourceError(PrefmillError):
    """A source that cannot be read at all (missing, unreadable, wrong type): a one-line message."""


@dataclass(frozen=True)
class Chunk:
    path: str
    kind: str  # "jsonl-range" | "records"
    first_row: int
    start: int = 0  # byte range for jsonl-range
    end: int = 0
    records: tuple = ()  # (row, obj | None, raw bytes | None, error reason | None) for "records"


@dataclass
class RawRecord:
    source_row: int
    obj: Any
    raw: bytes | None = None
    error: Reject | None = None


def check_source(path: str) -> None:
    if not os.path.exists(path):
        raise SourceError(f"file not found: {path}")
    if os.path.isdir(path):
        raise SourceError(f"is a directory, not a file: {path}")
    if not os.access(path, os.R_OK):
        raise SourceError(f"cannot read {path}: permission denied")
    if not path.lower().endswith(SUFFIXES):
        raise SourceError(f"unsupported file type: {path} (expected one of {', '.join(SUFFIXES)})")


def _is_jsonl(path: str) -> bool:
    lower = path.lower()
    if lower.endswith(JSONL_SUFFIXES):
        return True
    if lower.endswith(".json"):
        # A .json file may hold JSON Lines; sniff the first non-space byte.
        with open(path, "rb") as f:
            head = f.read(4096).removeprefix(BOM).lstrip()
        return not head.startswith(b"[")
    return False


def plan_chunks(path: str, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> list[Chunk]:
    """Split one file into chunks of about ``chunk_rows`` records."""
    check_source(path)
    lower = path.lower()
    if _is_jsonl(path) and not lower.endswith(".gz"):
        return _plan_jsonl_ranges(path, chunk_rows)
    records = list(_read_whole(path))
    return [
        Chunk(path=path, kind="records", first_row=i, records=tuple(records[i : i + chunk_rows]))
        for i in range(0, len(records), chunk_rows)
    ]


def _plan_jsonl_ranges(path: str, chunk_rows: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    block = 8 * 1024 * 1024
    start, row, rows_in_chunk, pos = 0, 0, 0, 0
    with open(path, "rb") as f:
        while True:
            buf = f.read(block)
            if not buf:
                break
            idx = -1
            while True:
                idx = buf.find(b"\n", idx + 1)
                if idx < 0:
                    break
                rows_in_chunk += 1
                if rows_in_chunk == chunk_rows:
                    end = pos + idx + 1
                    chunks.append(Chunk(path=path, kind="jsonl-range", first_row=row, start=start, end=end))
                    row += rows_in_chunk
                    start, rows_in_chunk = end, 0
            pos += len(buf)
    if pos > start:
        chunks.append(Chunk(path=path, kind="jsonl-range", first_row=row, start=start, end=pos))
    return chunks


def _parse_line(line: bytes, row: int, path: str, max_bytes: int) -> RawRecord | None:
    if line.endswith(b"\r"):
        line = line[:-1]
    if row == 0 and line.startswith(BOM):
        line = line[len(BOM) :]
    if not line.strip():
        return None  # blank lines are not records
    if len(line) > max_bytes:
        return RawRecord(
            row,
            None,
            line,
            Reject(
                "parse",
                "record_too_large",
                f"record is {len(line)} bytes; limit is {max_bytes}",
                source_file=path,
                source_row=row,
                raw=line,
            ),
        )
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as ue:
            return RawRecord(
                row, None, line, Reject("parse", "invalid_utf8", str(ue), source_file=path, source_row=row, raw=line)
            )
        return RawRecord(
            row, None, line, Reject("parse", "invalid_json", str(e), source_file=path, source_row=row, raw=line)
        )
    return RawRecord(row, obj, line)


def read_chunk(chunk: Chunk, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[RawRecord]:
    if chunk.kind == "jsonl-range":
        with open(chunk.path, "rb") as f:
            f.seek(chunk.start)
            data = f.read(chunk.end - chunk.start)
        lines = data.split(b"\n")
        if data.endswith(b"\n"):
            lines.pop()
        for row, line in enumerate(lines, start=chunk.first_row):  # row = line number in the file
            rec = _parse_line(line, row, chunk.path, max_record_bytes)
            if rec is not None:
                yield rec
        return
    for row, obj, raw, error in chunk.records:
        if error is not None:
            reason, detail = error
            yield RawRecord(
                row, None, raw, Reject("parse", reason, detail, source_file=chunk.path, source_row=row, raw=raw)
            )
        else:
            yield RawRecord(row, obj, raw)


def _read_whole(path: str) -> Iterator[tuple]:
    """(row, obj, raw, error) for formats that must be parsed as a whole."""
    lower = path.lower()
    try:
        if lower.endswith(".parquet"):
            yield from _read_parquet(path)
            return
        if lower.endswith((".csv", ".csv.gz")):
            yield from _read_csv(path)
            return
        opener = gzip.open if lower.endswith(".gz") else open
        with opener(path, "rb") as f:
            data = f.read().removeprefix(BOM)
    except (OSError, EOFError, zlib.error) as e:  # zlib.error: a corrupt gzip stream
        raise SourceError(f"cannot read {path}: {e}") from None
    if lower.endswith(JSONL_SUFFIXES) or not data.lstrip().startswith(b"["):
        lines = data.split(b"\n")
        if data.endswith(b"\n"):
            lines.pop()
        for row, line in enumerate(lines):
            rec = _parse_line(line, row, path, DEFAULT_MAX_RECORD_BYTES)
            if rec is not None:
                yield (
                    row,
                    rec.obj,
                    None if rec.error is None else rec.raw,
                    None if rec.error is None else (rec.error.reason, rec.error.detail),
                )
        return
    try:
        items = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise SourceError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(items, list):
        raise SourceError(f"{path}: expected a JSON array of records or JSON Lines, got a {type(items).__name__}")
    for i, obj in enumerate(items):
        yield (i, obj, None, None)


def _read_parquet(path: str) -> Iterator[tuple]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise SourceError(f"cannot read Parquet file {path}: {e}") from None
    for i, obj in enumerate(table.to_pylist()):
        yield (i, obj, None, None)


def _read_csv(path: str) -> Iterator[tuple]:
    import pyarrow.csv as pacsv

    try:
        # Preference text is multi-line; without this a quoted newline past the first block
        # (~1 MB) makes pyarrow fail the whole file ("parser got out of sync with chunker").
        table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(newlines_in_values=True))
    except Exception as e:
        raise SourceError(f"cannot read CSV file {path}: {e}") from None
    for i, obj in enumerate(table.to_pylist()):
        yield (i, obj, None, None)


def read_all(path: str, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[RawRecord]:
    """Every raw record of one file (tests and small inputs)."""
    for chunk in plan_chunks(path):
        yield from read_chunk(chunk, max_record_bytes)
