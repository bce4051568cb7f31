"""Versioned artifacts beside the datasets: trained reward models and annotator → group maps.

A model blob is stored once under ``lake/models/<kind>/<sha256>.bin`` (its id is the content hash,
so the same weights are the same model) and cataloged with the dataset version it was trained on.
Group assignments are rows of ``meta.annotator_groups`` keyed by the run that fitted them.
"""

from __future__ import annotations

import hashlib
import os

import duckdb

from warehouse.errors import WarehouseError
from warehouse.layout import Layout, check_name
from warehouse.runs import to_json, utcnow

DDL = """
CREATE TABLE IF NOT EXISTS meta.models (
    model_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, dataset VARCHAR NOT NULL, version_id VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL, path VARCHAR NOT NULL, bytes BIGINT NOT NULL, params JSON, metrics JSON);
CREATE TABLE IF NOT EXISTS meta.annotator_groups (
    run_id VARCHAR NOT NULL, dataset VARCHAR NOT NULL, version_id VARCHAR NOT NULL, grouping_key VARCHAR NOT NULL,
    key VARCHAR NOT NULL, group_id INTEGER NOT NULL, PRIMARY KEY (run_id, key));
"""

VIEWS = {
    "models": "SELECT model_id, kind, dataset, version_id, created_at, bytes, params, metrics FROM meta.models",
    "annotator_groups": "SELECT * FROM meta.annotator_groups",
}


def write_blob(layout: Layout, kind: str, blob: bytes) -> tuple[str, str]:
    """(model_id, relative path); written tmp-then-rename so a crash leaves no half file."""
    check_name("model kind", kind)
    model_id = hashlib.sha256(blob).hexdigest()
    path = layout.lake / "models" / kind / f"{model_id}.bin"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
    return model_id, layout.rel(path)


def insert_model(
    con: duckdb.DuckDBPyConnection,
    model_id: str,
    kind: str,
    dataset: str,
    version_id: str,
    rel_path: str,
    size: int,
    params: dict,
    metrics: dict,
) -> None:
    con.execute(
        "INSERT OR IGNORE INTO meta.models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [model_id, kind, dataset, version_id, utcnow(), rel_path, size, to_json(params), to_json(metrics)],
    )


def model_row(con: duckdb.DuckDBPyConnection, model_id: str) -> tuple:
    rows = con.execute(
        "SELECT model_id, kind, dataset, version_id, path FROM meta.models "
        "WHERE model_id = ? OR model_id LIKE ? || '%'",
        [model_id, model_id],
    ).fetchall()
    if not rows:
        raise WarehouseError(f'no model {model_id!r}; see `prefmill query "SELECT * FROM models"`')
    if len(rows) > 1:
        raise WarehouseError(f"model id prefix {model_id!r} is ambiguous ({len(rows)} models)")
    return rows[0]


def insert_groups(
    con: duckdb.DuckDBPyConnection, run_id: str, dataset: str, version_id: str, key: str, assign: dict
) -> None:
    con.executemany(
        "INSERT INTO meta.annotator_groups VALUES (?, ?, ?, ?, ?, ?)",
        [[run_id, dataset, version_id, key, str(k), int(g)] for k, g in sorted(assign.items())],
    )
