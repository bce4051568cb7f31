"""Run records: begin, fail, steps and metrics (SQL over ``meta.runs`` / ``meta.run_steps``)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import orjson

from warehouse.counts import StepCount
from warehouse.errors import WarehouseError
from warehouse.layout import check_name
from warehouse.sql import one, value

# A run is running until it is committed (a new version), no_change (nothing new), done (an artifact) or failed.
RUNNING, COMMITTED, FAILED, NO_CHANGE, DONE = "running", "committed", "failed", "no_change", "done"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def to_json(value: object) -> str:
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError as e:
        raise WarehouseError(f"not JSON-serialisable: {e}") from None


@dataclass(frozen=True)
class RunRow:
    run_id: str
    kind: str
    dataset: str
    status: str
    version_id: str | None
    parent_version: str | None


def new_run_id(kind: str) -> str:
    # Sortable by start time, unique without coordination, safe as a directory name.
    return f"{kind}-{utcnow():%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def begin(con: duckdb.DuckDBPyConnection, kind: str, dataset: str, params: dict) -> str:
    check_name("run kind", kind)
    check_name("dataset", dataset)
    run_id = new_run_id(kind)
    con.execute(
        "INSERT INTO meta.runs (run_id, kind, dataset, status, started_at, params, metrics) "
        "VALUES (?, ?, ?, ?, ?, ?, '{}')",
        [run_id, kind, dataset, RUNNING, utcnow(), to_json(params or {})],
    )
    return run_id


def get(con: duckdb.DuckDBPyConnection, run_id: str) -> RunRow:
    row = one(
        con,
        "SELECT run_id, kind, dataset, status, version_id, parent_version FROM meta.runs WHERE run_id = ?",
        [run_id],
    )
    if row is None:
        raise WarehouseError(f"unknown run {run_id!r} (start one with begin_run)")
    return RunRow(*row)


def require_running(run: RunRow, dataset: str) -> None:
    if run.status != RUNNING:
        raise WarehouseError(f"run {run.run_id} is {run.status}; only a running run can be committed")
    if run.dataset != dataset:
        raise WarehouseError(f"run {run.run_id} was started for dataset {run.dataset!r}, not {dataset!r}")


def record_steps(con: duckdb.DuckDBPyConnection, run_id: str, steps: list[StepCount]) -> None:
    """Upsert steps by name; new steps go after those already recorded."""
    start = value(con, "SELECT coalesce(max(position) + 1, 0) FROM meta.run_steps WHERE run_id = ?", [run_id])
    for i, s in enumerate(steps):
        s.check()
        con.execute(
            "INSERT INTO meta.run_steps VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, step) DO UPDATE "
            "SET rows_in = EXCLUDED.rows_in, rows_kept = EXCLUDED.rows_kept, "
            "rows_rejected = EXCLUDED.rows_rejected, rows_duplicate = EXCLUDED.rows_duplicate",
            [run_id, start + i, s.step, s.rows_in, s.rows_kept, s.rows_rejected, s.rows_duplicate],
        )


def merge_metrics(con: duckdb.DuckDBPyConnection, run_id: str, metrics: dict) -> None:
    if not isinstance(metrics, dict):
        raise WarehouseError(f"metrics must be a dict, got {type(metrics).__name__}")
    current = value(con, "SELECT metrics FROM meta.runs WHERE run_id = ?", [run_id])
    merged = orjson.loads(current or "{}")
    merged.update(metrics)
    con.execute("UPDATE meta.runs SET metrics = ? WHERE run_id = ?", [to_json(merged), run_id])


def mark_failed(con: duckdb.DuckDBPyConnection, run_id: str, error: str) -> bool:
    """Only a running run can fail: a committed run's record is history and stays as it is."""
    changed = con.execute(
        "UPDATE meta.runs SET status = ?, finished_at = ?, error = ? WHERE run_id = ? AND status = ? RETURNING run_id",
        [FAILED, utcnow(), str(error)[:8000], run_id, RUNNING],
    ).fetchall()
    return bool(changed)


def mark_done(con: duckdb.DuckDBPyConnection, run_id: str, rows_read: int) -> bool:
    """A run that publishes no dataset version (e.g. training a model) ends as 'done'; all it read was used."""
    changed = con.execute(
        "UPDATE meta.runs SET status = ?, finished_at = ?, records_read = ?, rows_read = ?, "
        "rows_kept = ?, rows_rejected = 0, rows_duplicate = 0 WHERE run_id = ? AND status = ? "
        "RETURNING run_id",
        [DONE, utcnow(), rows_read, rows_read, rows_read, run_id, RUNNING],
    ).fetchall()
    return bool(changed)
