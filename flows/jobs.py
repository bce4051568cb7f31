"""Plain job functions: what a flow does, without Prefect.

Interactive CLI commands call these directly (Prefect's ephemeral server costs seconds to start);
``flows/*_flow.py`` wrap the same steps as Prefect tasks with retries for scheduled runs.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.ingest import IngestCounts, counts_dir_for, run_ingest
from schemas.validation import BatchReport, ValidationConfig, validate_batch
from warehouse import CommitResult, RunCounts, StepCount, Warehouse


class ValidationFailed(Exception):
    """A whole-batch expectation failed: nothing was published."""

    def __init__(self, reports: list[BatchReport]):
        self.reports = reports
        super().__init__("validation failed; nothing was committed:\n" + "\n".join(r.text for r in reports))


@dataclass
class IngestReport:
    run_id: str
    dataset: str
    counts: IngestCounts
    commit: CommitResult | None = None
    batch_reports: list[BatchReport] = field(default_factory=list)


def stage_ingest(
    wh: Warehouse,
    run_id: str,
    paths: list[str],
    format_name: str,
    *,
    mapping=None,
    adapter_options: dict | None = None,
    beam_args: list[str] | None = None,
    validation: ValidationConfig | None = None,
    chunk_rows: int | None = None,
    max_record_bytes: int | None = None,
) -> IngestCounts:
    staging = wh.staging_dir(run_id)
    # A retried attempt starts from an empty staging area, so nothing is counted twice.
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(counts_dir_for(staging), ignore_errors=True)
    kwargs = {}
    if chunk_rows:
        kwargs["chunk_rows"] = chunk_rows
    if max_record_bytes:
        kwargs["max_record_bytes"] = max_record_bytes
    return run_ingest(
        paths,
        format_name,
        run_id=run_id,
        staging=staging,
        mapping=mapping,
        adapter_options=adapter_options,
        beam_args=beam_args,
        validation=validation,
        **kwargs,
    )


def check_batches(
    wh: Warehouse, run_id: str, counts: IngestCounts, validation: ValidationConfig | None = None
) -> list[BatchReport]:
    """Whole-batch expectations over every staged shape; raises ValidationFailed on failure."""
    staging = wh.staging_dir(run_id)
    config = replace(validation or ValidationConfig(), unique_record_ids=False)
    reports = []
    for shape in sorted(counts.shapes):
        # Batch rules need only ids and labels; the texts stay on disk.
        cols = ["record_id", "label"] if shape in ("pairwise", "binary") else ["record_id"]
        table = pq.read_table(staging / shape, columns=cols)
        reports.append(validate_batch(table, shape, config, rejected=counts.rows_rejected))
    failed = [r for r in reports if not r.success]
    if failed:
        raise ValidationFailed(failed)
    return reports


def commit_ingest(wh: Warehouse, run_id: str, dataset: str, counts: IngestCounts) -> CommitResult:
    steps = [
        StepCount(
            "adapt", rows_in=counts.rows_read, rows_kept=counts.rows_adapted, rows_rejected=counts.rows_rejected_adapt
        ),
        StepCount(
            "validate",
            rows_in=counts.rows_adapted,
            rows_kept=counts.rows_kept,
            rows_rejected=counts.rows_rejected_validate,
        ),
    ]
    run_counts = RunCounts(
        records_read=counts.records_read,
        rows_read=counts.rows_read,
        rows_kept=counts.rows_kept,
        rows_rejected=counts.rows_rejected,
    )
    return wh.commit(run_id, dataset, counts=run_counts, steps=steps, policies=[])


def ingest(
    wh: Warehouse,
    paths: list[str],
    format_name: str,
    dataset: str,
    *,
    mapping=None,
    adapter_options: dict | None = None,
    beam_args: list[str] | None = None,
    validation: ValidationConfig | None = None,
    chunk_rows: int | None = None,
    max_record_bytes: int | None = None,
) -> IngestReport:
    """Ingest → validate → commit, as one run. On any failure the run is marked failed and the
    previous dataset version stays as it was."""
    params = {
        "paths": [str(Path(p).resolve()) for p in paths],
        "format": format_name,
        "mapping": mapping if isinstance(mapping, (str, type(None))) else "inline",
        "beam_args": beam_args or [],
    }
    run_id = wh.begin_run("ingest", dataset, params)
    try:
        counts = stage_ingest(
            wh,
            run_id,
            paths,
            format_name,
            mapping=mapping,
            adapter_options=adapter_options,
            beam_args=beam_args,
            validation=validation,
            chunk_rows=chunk_rows,
            max_record_bytes=max_record_bytes,
        )
        reports = check_batches(wh, run_id, counts, validation)
        result = commit_ingest(wh, run_id, dataset, counts)
        shutil.rmtree(counts_dir_for(wh.staging_dir(run_id)), ignore_errors=True)
    except BaseException as e:
        wh.fail_run(run_id, f"{type(e).__name__}: {e}")
        raise
    return IngestReport(run_id, dataset, counts, result, reports)
