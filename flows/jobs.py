"""Plain job functions: what a flow does, without Prefect.

Interactive CLI commands call these directly (Prefect's ephemeral server costs seconds to start);
``flows/*_flow.py`` wrap the same steps as Prefect tasks with retries for scheduled runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.ingest import IngestCounts, run_ingest
from schemas.readers import DEFAULT_CHUNK_ROWS, DEFAULT_MAX_RECORD_BYTES
from schemas.validation import BatchReport, NothingKept, ValidationConfig, ValidationFailed, validate_batch
from warehouse import CommitResult, Run, Warehouse, run_counts, step_counts

__all__ = ["IngestReport", "ValidationFailed", "check_batches", "commit_ingest", "ingest", "stage_ingest"]


@dataclass
class IngestReport:
    run_id: str
    dataset: str
    counts: IngestCounts
    commit: CommitResult | None = None
    batch_reports: list[BatchReport] = field(default_factory=list)


def stage_ingest(
    run: Run,
    paths: list[str],
    format_name: str,
    *,
    mapping: str | dict | None = None,
    adapter_options: dict | None = None,
    beam_args: list[str] | None = None,
    validation: ValidationConfig | None = None,
    chunk_rows: int | None = None,
    max_record_bytes: int | None = None,
    checks: Sequence[str] | None = None,
) -> IngestCounts:
    staging = run.staging
    # A retried attempt starts from an empty staging area, so nothing is counted twice.
    shutil.rmtree(staging, ignore_errors=True)
    return run_ingest(
        paths,
        format_name,
        run_id=run.run_id,
        staging=staging,
        work=run.work,
        mapping=mapping,
        adapter_options=adapter_options,
        beam_args=beam_args,
        validation=validation,
        chunk_rows=chunk_rows or DEFAULT_CHUNK_ROWS,
        max_record_bytes=max_record_bytes or DEFAULT_MAX_RECORD_BYTES,
        checks=checks,
    )


def check_batches(run: Run, counts: IngestCounts, validation: ValidationConfig | None = None) -> list[BatchReport]:
    """Whole-batch expectations over every staged shape; raises ValidationFailed on failure, and NothingKept
    when every row read was rejected (a wrong --format, a typo'd mapping path, a file that is not JSON Lines)."""
    if counts.rows_read and not counts.rows_kept:
        top = ", ".join(f"{reason} {n}" for reason, n in counts.reasons.most_common(3))
        raise NothingKept(
            f"all {counts.rows_read:,} rows read were rejected ({top}); nothing was published — "
            f"see `prefmill report {run.run_id}` for the quarantine"
        )
    config = replace(validation or ValidationConfig(), unique_record_ids=False)
    reports = []
    for shape in sorted(counts.shapes):
        # Batch rules need only ids and labels; the texts stay on disk.
        cols = ["record_id", "label"] if shape in ("pairwise", "binary") else ["record_id"]
        table = pq.read_table(run.staging / shape, columns=cols)
        reports.append(validate_batch(table, shape, config, rejected=counts.rows_rejected))
    failed = [r for r in reports if not r.success]
    if failed:
        raise ValidationFailed(failed)
    return reports


def commit_ingest(run: Run, counts: IngestCounts) -> CommitResult:
    return run.commit(run_counts(counts.steps), step_counts(counts.steps), policies=[])


def ingest(
    wh: Warehouse,
    paths: list[str],
    format_name: str,
    dataset: str,
    *,
    mapping: str | dict | None = None,
    adapter_options: dict | None = None,
    beam_args: list[str] | None = None,
    validation: ValidationConfig | None = None,
    chunk_rows: int | None = None,
    max_record_bytes: int | None = None,
    checks: Sequence[str] | None = None,
) -> IngestReport:
    """Ingest → validate → commit, as one run. On any failure the run is marked failed and the
    previous dataset version stays as it was."""
    params = {
        "paths": [str(Path(p).resolve()) for p in paths],
        "format": format_name,
        "mapping": mapping if isinstance(mapping, (str, type(None))) else "inline",
        "beam_args": beam_args or [],
        "checks": None if checks is None else list(checks),
    }
    with wh.run("ingest", dataset, params) as run:
        counts = stage_ingest(
            run,
            paths,
            format_name,
            mapping=mapping,
            adapter_options=adapter_options,
            beam_args=beam_args,
            validation=validation,
            chunk_rows=chunk_rows,
            max_record_bytes=max_record_bytes,
            checks=checks,
        )
        reports = check_batches(run, counts, validation)
        result = commit_ingest(run, counts)
    return IngestReport(run.run_id, dataset, counts, result, reports)
