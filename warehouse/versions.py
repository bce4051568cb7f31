"""Looking up datasets and versions in the catalog."""

from __future__ import annotations

from pathlib import PurePosixPath

import duckdb

from warehouse.errors import WarehouseError
from warehouse.lake import LakeObject
from warehouse.sql import one


def latest(con: duckdb.DuckDBPyConnection, dataset: str) -> str | None:
    row = one(con, "SELECT latest_version FROM meta.datasets WHERE dataset = ?", [dataset])
    return row[0] if row else None


def objects(con: duckdb.DuckDBPyConnection, version_id: str | None, shape: str | None = None) -> list[LakeObject]:
    if version_id is None:
        return []
    sql = "SELECT shape, path, rows FROM meta.version_files WHERE version_id = ?"
    args = [version_id]
    if shape is not None:
        sql += " AND shape = ?"
        args.append(shape)
    rows = con.execute(sql + " ORDER BY seq", args).fetchall()
    return [LakeObject(s, PurePosixPath(p).stem, p, n) for s, p, n in rows]


def resolve(con: duckdb.DuckDBPyConnection, dataset: str, version: str | None) -> str:
    """Full version id of ``dataset`` from None (latest), a full id or a unique prefix."""
    head = latest(con, dataset)
    if head is None:
        known = [r[0] for r in con.execute("SELECT dataset FROM meta.datasets ORDER BY dataset").fetchall()]
        raise WarehouseError(f"unknown dataset {dataset!r}; known: {', '.join(known) or 'none'}")
    if version is None:
        return head
    if not isinstance(version, str) or not version.strip():
        raise WarehouseError("version must be a non-empty id or prefix")
    version = version.strip()
    matches = [
        r[0]
        for r in con.execute(
            "SELECT version_id FROM meta.dataset_versions WHERE dataset = ? AND starts_with(version_id, ?) "
            "ORDER BY created_at",
            [dataset, version],
        ).fetchall()
    ]
    if not matches:
        raise WarehouseError(f"dataset {dataset!r} has no version {version!r}")
    if len(matches) > 1 and version not in matches:
        raise WarehouseError(
            f"version prefix {version!r} is ambiguous in {dataset!r}: {', '.join(m[:12] for m in matches)}"
        )
    return version if version in matches else matches[0]
