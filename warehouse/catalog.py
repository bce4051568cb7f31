"""Catalog tables (schema ``meta``) and first-time setup of a warehouse root.

The public surface is the set of views in ``main`` (see views.py); these tables are its storage.
"""

from __future__ import annotations

import duckdb
import pyarrow.parquet as pq

from schemas.canonical import QUARANTINE, SCHEMAS, SHAPES
from warehouse.artifacts import DDL as ARTIFACTS_DDL
from warehouse.audits import DDL as AUDITS_DDL
from warehouse.audits import TABLE as AUDITS_TABLE
from warehouse.layout import Layout
from warehouse.sql import value
from warehouse.views import recreate_views

SCHEMA_VERSION = "1"

_SHAPE_COUNTS = ", ".join(f"rows_{s} BIGINT NOT NULL DEFAULT 0" for s in SHAPES)

DDL = (
    f"""
CREATE SCHEMA IF NOT EXISTS meta;
CREATE TABLE IF NOT EXISTS meta.info (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS meta.datasets (
    dataset VARCHAR PRIMARY KEY, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL,
    latest_version VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS meta.dataset_versions (
    version_id VARCHAR PRIMARY KEY, dataset VARCHAR NOT NULL, parent_version VARCHAR, run_id VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL, {_SHAPE_COUNTS}, policies JSON, extra JSON);
CREATE TABLE IF NOT EXISTS meta.version_files (
    version_id VARCHAR NOT NULL, shape VARCHAR NOT NULL, path VARCHAR NOT NULL, rows BIGINT NOT NULL,
    seq INTEGER NOT NULL, PRIMARY KEY (version_id, path));
CREATE TABLE IF NOT EXISTS meta.runs (
    run_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, dataset VARCHAR NOT NULL, status VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP, params JSON,
    records_read BIGINT, rows_read BIGINT, rows_kept BIGINT, rows_rejected BIGINT, rows_duplicate BIGINT,
    version_id VARCHAR, parent_version VARCHAR, error VARCHAR, metrics JSON);
CREATE TABLE IF NOT EXISTS meta.run_steps (
    run_id VARCHAR NOT NULL, position INTEGER NOT NULL, step VARCHAR NOT NULL, rows_in BIGINT NOT NULL,
    rows_kept BIGINT NOT NULL, rows_rejected BIGINT NOT NULL, rows_duplicate BIGINT NOT NULL,
    PRIMARY KEY (run_id, step));
CREATE TABLE IF NOT EXISTS meta.quarantine_files (
    run_id VARCHAR NOT NULL, dataset VARCHAR NOT NULL, path VARCHAR NOT NULL, rows BIGINT NOT NULL,
    PRIMARY KEY (run_id, path));
CREATE TABLE IF NOT EXISTS meta.removals (
    run_id VARCHAR NOT NULL, dataset VARCHAR NOT NULL, version_id VARCHAR NOT NULL, record_id VARCHAR NOT NULL,
    step VARCHAR, reason VARCHAR NOT NULL, duplicate_of VARCHAR, detail VARCHAR);
CREATE TABLE IF NOT EXISTS meta.duplicates (
    run_id VARCHAR NOT NULL, record_id VARCHAR NOT NULL, source_file VARCHAR, source_row BIGINT,
    duplicate_of_version VARCHAR, shape VARCHAR NOT NULL);
"""
    + ARTIFACTS_DDL
    + AUDITS_DDL
)

# Tables added after warehouses were already in use: ``ensure`` creates any that an existing catalog lacks.
ADDED_TABLES = {AUDITS_TABLE: AUDITS_DDL}


def write_empty_files(layout: Layout) -> None:
    """Typed empty Parquet per shape, so every view binds before any data exists."""
    for name, schema in [*SCHEMAS.items(), ("quarantine", QUARANTINE)]:
        path = layout.empty_file(name)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            pq.write_table(schema.empty_table(), tmp)
            tmp.replace(path)


def ensure(con: duckdb.DuckDBPyConnection, layout: Layout) -> None:
    """Create the catalog tables, empty files and views if this root is new (idempotent).

    Views hold absolute file paths; if the root was moved, they are rebuilt here on the next write.
    A catalog made before a table in ``ADDED_TABLES`` existed gets it here too (and the views over it).
    """
    exists = value(con, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'meta' AND table_name = 'info'")
    if exists:
        stored = value(con, "SELECT value FROM meta.info WHERE key = 'root'")
        present = {
            t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'meta'").fetchall()
        }
        missing = [ddl for name, ddl in ADDED_TABLES.items() if name not in present]
        if stored != str(layout.root) or missing:
            write_empty_files(layout)
            con.execute("BEGIN")
            for ddl in missing:
                con.execute(ddl)
            con.execute("UPDATE meta.info SET value = ? WHERE key = 'root'", [str(layout.root)])
            recreate_views(con, layout)
            con.execute("COMMIT")
        return
    write_empty_files(layout)
    con.execute("BEGIN")
    con.execute(DDL)
    con.execute("INSERT INTO meta.info VALUES ('schema_version', ?), ('root', ?)", [SCHEMA_VERSION, str(layout.root)])
    recreate_views(con, layout)
    con.execute("COMMIT")
