"""commit(): publish a run's staged shards as a new dataset version (ingest and synthesis runs).

Dedup is by ``record_id``: within the run the first occurrence wins (shard name order, then row
order), and rows already in the dataset's latest version are duplicates. Heavy work runs in an
in-memory DuckDB against the Parquet files; the catalog is only opened to read the parent and for
the final transaction, so readers are blocked for milliseconds, not for the whole commit.
"""

from __future__ import annotations

import shutil
from contextlib import closing
from pathlib import Path

import duckdb
import pyarrow as pa

from schemas.canonical import SCHEMAS
from warehouse import faults, runs, versions
from warehouse.catalog import ensure
from warehouse.counts import CommitResult, RunCounts, StepCount
from warehouse.db import connect_write, work_connection
from warehouse.errors import WarehouseError, one_line
from warehouse.lake import BATCH_ROWS, LakeObject, write_objects, write_quarantine
from warehouse.layout import Layout, check_name
from warehouse.lock import writer_lock
from warehouse.publish import Publication, publish
from warehouse.sql import ident, lit, lit_list, one, value
from warehouse.staging import staged_shards

DEDUP_STEP = "warehouse_dedup"
# "First occurrence" is by position in the source data, not by shard name (pipelines name shards
# at random), so a re-run keeps the same rows in the same order whatever its shards are called.
SOURCE_ORDER = "source_file, source_row, filename, file_row_number"
KEYS_ORDER = "source_file, source_row, _file, _row"
ROWS_ORDER = "s.source_file, s.source_row, s.filename, s.file_row_number"


def _dedup_shape(
    con: duckdb.DuckDBPyConnection,
    layout: Layout,
    run_id: str,
    shape: str,
    shards: list[Path],
    parent: list[LakeObject],
) -> tuple[list[LakeObject], int, pa.Table]:
    """Returns (new objects, staged row count, duplicates table) for one shape."""
    files = lit_list(shards)
    parent_ids = (
        f"(SELECT record_id FROM read_parquet({lit_list(layout.abs(o.path) for o in parent)}))"
        if parent
        else "(SELECT NULL::VARCHAR AS record_id WHERE false)"
    )
    # Keys only: the window over full rows would hold every text column in memory.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE keys AS
        SELECT record_id, source_file, source_row, filename AS _file, file_row_number AS _row,
               row_number() OVER (PARTITION BY record_id ORDER BY {SOURCE_ORDER}) AS _rank,
               record_id IN {parent_ids} AS _in_parent
        FROM read_parquet({files}, filename = true, file_row_number = true)""")
    staged = value(con, "SELECT count(*) FROM keys")
    cols = ", ".join("s." + ident(f.name) for f in SCHEMAS[shape])
    new_rows = con.sql(f"""
        SELECT {cols} FROM read_parquet({files}, filename = true, file_row_number = true) s
        JOIN keys k ON k._file = s.filename AND k._row = s.file_row_number
        WHERE k._rank = 1 AND NOT k._in_parent
        ORDER BY {ROWS_ORDER}""")
    objects = write_objects(
        new_rows.to_arrow_reader(BATCH_ROWS), SCHEMAS[shape], shape, layout, tag=f"{run_id}-{shape}"
    )
    dups = con.sql(f"""
        SELECT {lit(run_id)} AS run_id, record_id, source_file, source_row, _in_parent, {lit(shape)} AS shape
        FROM keys WHERE _rank > 1 OR _in_parent ORDER BY {KEYS_ORDER}""").to_arrow_table()
    return objects, staged, dups


def _duplicates_table(parts: list[pa.Table], parent: str | None, new: str | None) -> pa.Table:
    """A duplicate points at the version holding the kept copy: the parent, or the new version."""
    if not parts:
        return pa.table(
            {
                c: pa.array([], pa.string())
                for c in ["run_id", "record_id", "source_file", "duplicate_of_version", "shape"]
            }
        ).add_column(3, "source_row", pa.array([], pa.int64()))
    t = pa.concat_tables(parts)
    in_parent = t.column("_in_parent").to_pylist()
    target = pa.array([parent if p else new for p in in_parent], pa.string())
    return t.drop_columns(["_in_parent"]).append_column("duplicate_of_version", target)


def _cleanup(layout: Layout, run_id: str) -> None:
    shutil.rmtree(layout.staging(run_id), ignore_errors=True)


def commit_staged(
    layout: Layout,
    run_id: str,
    dataset: str,
    counts: RunCounts,
    steps: list[StepCount] | None = None,
    policies: list | None = None,
    extra: dict | None = None,
) -> CommitResult:
    check_name("dataset", dataset)
    counts.check(f"run {run_id}")
    steps = [s.check() for s in (steps or [])]
    with writer_lock(layout.lock_file):
        with closing(connect_write(layout)) as cat:
            ensure(cat, layout)
            run = runs.get(cat, run_id)
            if run.status in (runs.COMMITTED, runs.NO_CHANGE) and run.dataset == dataset:
                return _already_done(cat, layout, run)  # a retry after a crash past the transaction
            runs.require_running(run, dataset)
            parent = versions.latest(cat, dataset)
            parent_objects = versions.objects(cat, parent)

        shards, quarantine_shards = staged_shards(layout, run_id)
        new_objects: list[LakeObject] = []
        dup_parts: list[pa.Table] = []
        staged_total = 0
        try:
            with closing(work_connection(layout)) as work:
                for shape, files in shards.items():
                    objs, staged, dups = _dedup_shape(
                        work, layout, run_id, shape, files, [o for o in parent_objects if o.shape == shape]
                    )
                    new_objects += objs
                    staged_total += staged
                    if dups.num_rows:
                        dup_parts.append(dups)
                quarantine = write_quarantine(work, quarantine_shards, layout, run_id)
        except duckdb.Error as e:  # e.g. a staged shard that is truncated or corrupt
            raise WarehouseError(f"run {run_id}: reading the staged shards failed: {one_line(e)}") from None

        if staged_total != counts.rows_kept:
            raise WarehouseError(
                f"run {run_id} staged {staged_total} rows but its counts say rows_kept="
                f"{counts.rows_kept}; every kept row must be staged exactly once"
            )
        q_rows = quarantine[1] if quarantine else 0
        if q_rows != counts.rows_rejected:
            raise WarehouseError(
                f"run {run_id} staged {q_rows} quarantine rows but its counts say rows_rejected="
                f"{counts.rows_rejected}; every rejected row needs a quarantine row"
            )
        n_dups = sum(t.num_rows for t in dup_parts)
        final = counts.with_duplicates(n_dups).check(f"run {run_id}")
        new_rows = staged_total - n_dups
        pub = Publication(
            run_id=run_id,
            dataset=dataset,
            parent_version=parent,
            counts=final,
            steps=steps + [StepCount(DEDUP_STEP, staged_total, new_rows, 0, n_dups)],
            objects=(parent_objects + new_objects) if new_objects else None,
            policies=sorted(set(policies or [])),
            extra=dict(extra or {}),
            quarantine=quarantine,
        )
        pub.duplicates = _duplicates_table(dup_parts, parent, pub.version_id)
        faults.reached(faults.OBJECTS_WRITTEN)
        status = publish(layout, pub)
    faults.reached(faults.COMMITTED)
    _cleanup(layout, run_id)
    rows_new: dict[str, int] = {}
    for o in new_objects:
        rows_new[o.shape] = rows_new.get(o.shape, 0) + o.rows
    return CommitResult(run_id, dataset, status, pub.version_id, parent, final, rows_new, [o.path for o in new_objects])


def _already_done(cat: duckdb.DuckDBPyConnection, layout: Layout, run: runs.RunRow) -> CommitResult:
    row = one(
        cat,
        "SELECT records_read, rows_read, rows_kept, rows_rejected, rows_duplicate FROM meta.runs WHERE run_id = ?",
        [run.run_id],
    )
    if row is None:
        raise WarehouseError(f"unknown run {run.run_id!r}")
    _cleanup(layout, run.run_id)
    return CommitResult(run.run_id, run.dataset, run.status, run.version_id, run.parent_version, RunCounts(*row))
