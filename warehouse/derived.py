"""commit_derived(): a curated or judged version made from its parent (curation, judging).

The listed shapes are replaced by the given tables (a subset of rows, possibly with extra columns);
the other shapes are inherited. Every parent row that is gone must be explained in ``removals``.
"""

from __future__ import annotations

import shutil
from contextlib import closing

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from schemas.canonical import SCHEMAS
from schemas.step import REMOVAL_COLUMNS, as_removals
from warehouse import faults, runs, versions
from warehouse.catalog import ensure
from warehouse.counts import CommitResult, RunCounts, StepCount
from warehouse.db import connect_write, work_connection
from warehouse.errors import WarehouseError, one_line
from warehouse.lake import LakeObject, write_objects, write_quarantine
from warehouse.layout import Layout, check_name
from warehouse.lock import writer_lock
from warehouse.publish import Publication, publish
from warehouse.schemacheck import schema_problems
from warehouse.sql import lit_list, value
from warehouse.staging import staged_shards

RESERVED = ("dataset", "version_id")  # added by the public views
REMOVALS = pa.schema([(c, pa.string()) for c in REMOVAL_COLUMNS])  # as meta.removals stores them


def _conform(shape: str, table: pa.Table) -> pa.Table:
    """Canonical columns cast to their canonical types (first, in order), extra columns after."""
    if shape not in SCHEMAS:
        raise WarehouseError(f"unknown shape {shape!r}; expected one of {', '.join(SCHEMAS)}")
    if not isinstance(table, pa.Table):
        raise WarehouseError(f"{shape}: expected a pyarrow Table, got {type(table).__name__}")
    problems = schema_problems(table.schema, SCHEMAS[shape], allow_extra=True)
    clash = [c for c in RESERVED if c in table.column_names]
    if clash:
        problems.append(f"columns {clash} are reserved for the views")
    if problems:
        raise WarehouseError(f"{shape} table: " + "; ".join(problems))
    cols, fields = [], []
    for f in SCHEMAS[shape]:
        col = table.column(f.name)
        if not f.nullable and col.null_count:
            raise WarehouseError(f"{shape} table: column {f.name!r} has {col.null_count} nulls")
        cols.append(col.cast(f.type))
        fields.append(f)
    for name in table.column_names:
        if name not in SCHEMAS[shape].names:
            cols.append(table.column(name))
            fields.append(table.schema.field(name))
    out = pa.Table.from_arrays(cols, schema=pa.schema(fields))
    if pc.count_distinct(out.column("record_id")).as_py() != out.num_rows:
        raise WarehouseError(f"{shape} table has duplicate record_id values")
    return out


def _conform_removals(removals: pa.Table | None) -> pa.Table:
    """``REMOVAL_COLUMNS`` as text, from a ``REJECTED`` table or any table with record_id and reason."""
    if removals is None:
        return REMOVALS.empty_table()
    missing = [c for c in ("record_id", "reason") if c not in removals.column_names]
    if missing:
        raise WarehouseError(f"removals table lacks columns {missing} (expected {REMOVAL_COLUMNS})")
    for c in REMOVAL_COLUMNS:
        if c not in removals.column_names:
            removals = removals.append_column(c, pa.nulls(removals.num_rows, pa.string()))
    out = as_removals(removals).cast(REMOVALS)
    if out.column("reason").null_count or out.column("record_id").null_count:
        raise WarehouseError("removals: every row needs a record_id and a reason")
    return out


def _unexplained(
    work: duckdb.DuckDBPyConnection,
    layout: Layout,
    parent: list[LakeObject],
    tables: dict[str, pa.Table],
    removals: pa.Table,
) -> list[str]:
    """Parent record_ids of the replaced shapes that are neither kept nor listed in removals."""
    files = [layout.abs(o.path) for o in parent if o.shape in tables]
    if not files:
        return []
    kept = pa.concat_tables([t.select(["record_id"]) for t in tables.values()])
    work.register("_kept", kept)
    work.register("_removed", removals.select(["record_id"]))
    try:
        return [
            r[0]
            for r in work.execute(
                f"SELECT record_id FROM read_parquet({lit_list(files)}) WHERE record_id NOT IN (SELECT record_id FROM _kept) "
                "AND record_id NOT IN (SELECT record_id FROM _removed) LIMIT 5"
            ).fetchall()
        ]
    finally:
        work.unregister("_kept")
        work.unregister("_removed")


def commit_derived(
    layout: Layout,
    run_id: str,
    dataset: str,
    parent_version: str,
    tables: dict[str, pa.Table],
    removals: pa.Table | None,
    counts: RunCounts,
    steps: list[StepCount] | None = None,
    extra: dict | None = None,
) -> CommitResult:
    check_name("dataset", dataset)
    counts.check(f"run {run_id}")
    steps = [s.check() for s in (steps or [])]
    if not isinstance(tables, dict):
        raise WarehouseError("tables must be a dict of shape -> pyarrow Table")
    tables = {shape: _conform(shape, t) for shape, t in tables.items()}
    removals = _conform_removals(removals)
    kept = sum(t.num_rows for t in tables.values())
    if kept != counts.rows_kept:
        raise WarehouseError(f"run {run_id}: the tables hold {kept} rows but counts say rows_kept={counts.rows_kept}")
    with writer_lock(layout.lock_file):
        with closing(connect_write(layout)) as cat:
            ensure(cat, layout)
            run = runs.get(cat, run_id)
            runs.require_running(run, dataset)
            parent = versions.resolve(cat, dataset, parent_version)
            head = versions.resolve(cat, dataset, None)  # the latest version
            if parent != head:
                raise WarehouseError(
                    f"parent version {parent[:12]} is no longer the latest of {dataset!r} "
                    f"({head[:12]}); rerun on the latest version"
                )
            parent_objects = versions.objects(cat, parent)
            policies = value(cat, "SELECT policies FROM meta.dataset_versions WHERE version_id = ?", [parent])
        _, quarantine_shards = staged_shards(layout, run_id)
        new_objects: list[LakeObject] = []
        try:
            with closing(work_connection(layout)) as work:
                missing = _unexplained(work, layout, parent_objects, tables, removals)
                if missing:
                    raise WarehouseError(
                        f"run {run_id}: parent rows disappear without a removal record "
                        f"(e.g. {', '.join(missing)}); list them in removals with a reason"
                    )
                for shape, table in tables.items():
                    new_objects += write_objects(
                        table.to_batches(), table.schema, shape, layout, tag=f"{run_id}-{shape}"
                    )
                quarantine = write_quarantine(work, quarantine_shards, layout, run_id)
        except duckdb.Error as e:
            raise WarehouseError(f"run {run_id}: {one_line(e)}") from None
        inherited = [o for o in parent_objects if o.shape not in tables]
        pub = Publication(
            run_id=run_id,
            dataset=dataset,
            parent_version=parent,
            counts=counts,
            steps=steps,
            objects=inherited + new_objects,
            policies=orjson.loads(policies) if policies else [],
            extra=extra or {},
            removals=removals,
            quarantine=quarantine,
        )
        faults.reached(faults.OBJECTS_WRITTEN)
        status = publish(layout, pub)
    faults.reached(faults.COMMITTED)
    shutil.rmtree(layout.staging(run_id), ignore_errors=True)
    return CommitResult(
        run_id,
        dataset,
        status,
        pub.version_id,
        parent,
        counts,
        {s: t.num_rows for s, t in tables.items()},
        [o.path for o in new_objects],
    )
