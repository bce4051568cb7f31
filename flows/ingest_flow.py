"""Prefect flows for ingestion: ingest → validate → commit → (optional) export.

Runs without a Prefect server (ephemeral mode) by default. A failed pipeline attempt is retried from
an empty staging area (nothing is counted twice); a commit is retried only on a transient error (a
catalog locked by another writer). `serve_drop_folder` serves the drop-folder flow on a cron schedule.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from flows.jobs import check_batches, commit_ingest, stage_ingest
from pipelines.ingest import IngestCounts
from schemas.errors import PrefmillError
from warehouse import CommitResult, Run, Warehouse, WarehouseError


def _run(warehouse: str, run_id: str, dataset: str) -> Run:
    """The flow's run, seen from a task (tasks take plain values: a warehouse root and a run id)."""
    return Run(Warehouse(warehouse), run_id, "ingest", dataset)


@task(name="ingest", retries=2, retry_delay_seconds=2, retry_condition_fn=lambda t, r, s: _may_succeed_later(s))
def ingest_task(
    warehouse: str,
    run_id: str,
    dataset: str,
    paths: list[str],
    format_name: str,
    mapping: str | None,
    beam_args: list[str] | None,
) -> IngestCounts:
    return stage_ingest(_run(warehouse, run_id, dataset), paths, format_name, mapping=mapping, beam_args=beam_args)


@task(name="validate")
def validate_task(warehouse: str, run_id: str, dataset: str, counts: IngestCounts) -> list[str]:
    return [r.text for r in check_batches(_run(warehouse, run_id, dataset), counts)]


@task(name="commit", retries=3, retry_delay_seconds=2, retry_condition_fn=lambda t, r, s: _is_transient(s))
def commit_task(warehouse: str, run_id: str, dataset: str, counts: IngestCounts) -> CommitResult:
    return commit_ingest(_run(warehouse, run_id, dataset), counts)


@task(name="export")
def export_task(warehouse: str, dataset: str, export_format: str, export_dir: str, version: str | None) -> dict:
    from warehouse.export import export

    res = export(Warehouse(warehouse), dataset, export_format, Path(export_dir), version=version)
    return {"version_id": res.version_id, "counts": res.counts, "paths": [str(p) for p in res.paths]}


def _may_succeed_later(state) -> bool:
    """A pipeline attempt is retried unless it failed on bad input (a PrefmillError that is not transient):
    a crashed worker or a flaky filesystem may go away, a missing file or an unknown format will not."""
    try:
        state.result()
    except PrefmillError as e:
        return bool(getattr(e, "transient", False))
    except Exception:
        return True
    return False


def _is_transient(state) -> bool:
    """Retry only what says a retry may help (``PrefmillError.transient``)."""
    try:
        state.result()
    except Exception as e:
        if getattr(e, "transient", False):
            return True
        # until warehouse.lock raises a TransientError
        return isinstance(e, WarehouseError) and "lock" in str(e).lower()
    return False


@flow(name="prefmill-ingest", log_prints=True)
def ingest_flow(
    paths: list[str],
    format_name: str,
    dataset: str = "default",
    mapping: str | None = None,
    warehouse: str | None = None,
    beam_args: list[str] | None = None,
    export_format: str | None = None,
    export_dir: str | None = None,
) -> dict:
    logger = get_run_logger()

    root = str(Warehouse(warehouse).root)
    params = {"paths": paths, "format": format_name, "mapping": mapping, "orchestrator": "prefect"}
    with Warehouse(root).run("ingest", dataset, params) as run:
        counts = ingest_task(root, run.run_id, dataset, paths, format_name, mapping, beam_args)
        validate_task(root, run.run_id, dataset, counts)
        result = commit_task(root, run.run_id, dataset, counts)
    summary: dict[str, Any] = {
        "run_id": run.run_id,
        "dataset": dataset,
        "version_id": result.version_id,
        "status": result.status,
        "records_read": counts.records_read,
        "rows_read": counts.rows_read,
        "rows_kept": counts.rows_kept - result.rows_duplicate,
        "rows_rejected": counts.rows_rejected,
        "rows_duplicate": result.rows_duplicate,
        "rejected_by_reason": dict(counts.reasons),
    }
    logger.info("ingest counts: %s", summary)
    if export_format:
        if not export_dir:
            raise ValueError("export_format needs export_dir")
        summary["export"] = export_task(root, dataset, export_format, export_dir, result.version_id)
    return summary


@flow(name="prefmill-drop-folder", log_prints=True)
def drop_folder_flow(
    drop_folder: str,
    format_name: str,
    dataset: str = "default",
    pattern: str = "*.jsonl*",
    mapping: str | None = None,
    warehouse: str | None = None,
) -> dict:
    """Ingest every file in a drop folder. Re-ingesting a file adds nothing (content-hash dedup),
    so the schedule can simply look at everything each night."""
    files = sorted(f for f in glob.glob(os.path.join(drop_folder, pattern)) if os.path.isfile(f))
    if not files:
        get_run_logger().info("drop folder %s has no files matching %s", drop_folder, pattern)
        return {"files": 0}
    return ingest_flow(paths=files, format_name=format_name, dataset=dataset, mapping=mapping, warehouse=warehouse)


def drop_folder_deployment(name: str, cron: str, **parameters):
    """The deployment object `prefmill serve` runs (separate so it can be inspected and tested)."""
    return drop_folder_flow.to_deployment(name=name, cron=cron, parameters=parameters)


def serve_drop_folder(name: str, cron: str, **parameters) -> None:
    from prefect import serve

    serve(drop_folder_deployment(name, cron, **parameters))
