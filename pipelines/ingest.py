"""The ingest pipeline in Apache Beam: read → adapt → normalise/hash → validate → split → stage.

Elements are file chunks (byte ranges of JSON Lines, or row ranges of whole-parsed files), so the
per-record work is vectorised per chunk and a cluster runner parallelises over chunks. Each chunk
writes its kept rows (one Parquet shard per shape) and its rejections (a quarantine shard) to the
run's staging directory, plus a small JSON file of counts; the driver sums those after the
pipeline ends. The warehouse commits the staged shards (see flows/ingest.py).

Default runner: the in-process FnApiRunner (Prism needs a download). Other Beam options
(``--runner=FlinkRunner``, ``--direct_num_workers=2 --direct_running_mode=multi_processing``, ...)
pass through ``beam_args``; cluster runners need the staging directory on a shared filesystem.
"""
from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import PipelineOptions

from schemas.adapters import get_adapter
from schemas.ingest import adapt_records
from schemas.readers import DEFAULT_CHUNK_ROWS, DEFAULT_MAX_RECORD_BYTES, Chunk, plan_chunks, read_chunk
from schemas.step import rejects_table
from schemas.validation import ValidationConfig, validate_rows

DEFAULT_RUNNER = "FnApiRunner"


@dataclass
class IngestCounts:
    records_read: int = 0
    rows_read: int = 0
    rows_adapted: int = 0  # candidate canonical rows (before validation)
    rows_kept: int = 0  # staged after validation (duplicates are found at commit)
    rows_rejected: int = 0
    rows_rejected_adapt: int = 0
    rows_rejected_validate: int = 0
    reasons: Counter = field(default_factory=Counter)
    shapes: Counter = field(default_factory=Counter)

    def add(self, d: dict) -> None:
        for k in ("records_read", "rows_read", "rows_adapted", "rows_kept", "rows_rejected",
                  "rows_rejected_adapt", "rows_rejected_validate"):
            setattr(self, k, getattr(self, k) + d[k])
        self.reasons.update(d["reasons"])
        self.shapes.update(d["shapes"])


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write atomically (tmp + rename) so a half-written shard is never picked up."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def ingest_chunk(chunk: Chunk, adapter, *, format_name: str, run_id: str, staging: Path,
                 max_record_bytes: int, validation: ValidationConfig | None) -> dict:
    """Process one chunk end to end and stage its outputs; returns its counts (JSON-able)."""
    source_file = os.path.abspath(chunk.path)
    res = adapt_records(read_chunk(chunk, max_record_bytes), adapter, run_id=run_id,
                        source_file=source_file, format_name=format_name)
    rejects = list(res.rejects)
    shard = uuid.uuid4().hex
    kept = adapted = 0
    shapes: Counter = Counter()
    n_adapt_rejects = len(rejects)
    for shape, table in res.tables.items():
        adapted += table.num_rows
        good, bad = validate_rows(table, shape, validation)
        rejects.extend(bad)
        if good.num_rows:
            write_parquet(good, staging / shape / f"{shard}.parquet")
            kept += good.num_rows
            shapes[shape] += good.num_rows
    if rejects:
        write_parquet(rejects_table(rejects, run_id), staging / "quarantine" / f"{shard}.parquet")
    counts = {
        "records_read": res.records_read,
        "rows_read": res.rows_read,
        "rows_adapted": adapted,
        "rows_kept": kept,
        "rows_rejected": len(rejects),
        "rows_rejected_adapt": n_adapt_rejects,
        "rows_rejected_validate": len(rejects) - n_adapt_rejects,
        "reasons": dict(Counter(r.reason for r in rejects)),
        "shapes": dict(shapes),
    }
    # Per-chunk counts land beside the staging area so any runner (local or cluster) reports them.
    counts_dir = counts_dir_for(staging)
    counts_dir.mkdir(parents=True, exist_ok=True)
    tmp = counts_dir / f"{shard}.json.tmp"
    tmp.write_text(json.dumps(counts))
    os.replace(tmp, counts_dir / f"{shard}.json")
    return counts


class IngestChunkFn(beam.DoFn):
    def __init__(self, format_name: str, mapping, adapter_options: dict, run_id: str, staging: str,
                 max_record_bytes: int, validation: ValidationConfig | None):
        self.format_name, self.mapping, self.adapter_options = format_name, mapping, adapter_options
        self.run_id, self.staging = run_id, staging
        self.max_record_bytes, self.validation = max_record_bytes, validation
        self.adapter = None

    def setup(self):
        # Adapters (and a parsed mapping file) are built once per worker, not per chunk.
        self.adapter = get_adapter(self.format_name, self.mapping, **self.adapter_options)

    def process(self, chunk: Chunk):
        yield ingest_chunk(chunk, self.adapter, format_name=self.format_name, run_id=self.run_id,
                           staging=Path(self.staging), max_record_bytes=self.max_record_bytes,
                           validation=self.validation)


def counts_dir_for(staging: Path) -> Path:
    return staging.with_name(staging.name + ".counts")


def beam_options(beam_args: list[str] | None) -> PipelineOptions:
    args = list(beam_args or [])
    if not any(a.startswith("--runner") for a in args):
        args.append(f"--runner={DEFAULT_RUNNER}")
    return PipelineOptions(args)


def run_ingest(paths: list[str], format_name: str, *, run_id: str, staging: Path, mapping=None,
               adapter_options: dict | None = None, beam_args: list[str] | None = None,
               chunk_rows: int = DEFAULT_CHUNK_ROWS, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
               validation: ValidationConfig | None = None) -> IngestCounts:
    """Run the Beam ingest pipeline over ``paths``; staged shards end up under ``staging``.

    Raises SourceError (missing/unreadable file) and UnknownFormat/MappingError before any work.
    """
    get_adapter(format_name, mapping, **(adapter_options or {}))  # fail fast on a bad format/mapping
    chunks: list[Chunk] = []
    for p in paths:
        chunks.extend(plan_chunks(p, chunk_rows))
    counts = IngestCounts()
    if not chunks:
        return counts
    staging.mkdir(parents=True, exist_ok=True)
    fn = IngestChunkFn(format_name, mapping, adapter_options or {}, run_id, str(staging), max_record_bytes,
                       validation)
    with beam.Pipeline(options=beam_options(beam_args)) as p:
        _ = (p | "Chunks" >> beam.Create(chunks, reshuffle=len(chunks) > 1)
               | "Ingest" >> beam.ParDo(fn))
    for f in sorted(counts_dir_for(staging).glob("*.json")):
        counts.add(json.loads(f.read_text()))
    return counts
