"""Curation as one run: read a version → dedup/embed/select → validate → publish a child version.

`curate()` is the plain job (the CLI calls it); `curate_flow` wraps the same steps in Prefect.
The new version's parent is the curated one; every row that did not make it is in `removals`
with its step and reason, and the previous version is never touched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pyarrow as pa

from curation.errors import CurationError
from flows.jobs import ValidationFailed
from pipelines.curate import CurateOutcome, CurateParams, run_curation
from schemas.validation import validate_batch, validate_rows
from warehouse import CommitResult, RunCounts, StepCount, Warehouse


@dataclass
class CurateReport:
    run_id: str
    dataset: str
    parent_version: str
    commit: CommitResult
    outcome: CurateOutcome


def _validated(outcome: CurateOutcome) -> tuple[pa.Table, pa.Table, dict]:
    kept, bad = validate_rows(outcome.kept, "pairwise")
    step = {
        "step": "validate",
        "rows_in": outcome.kept.num_rows,
        "rows_kept": kept.num_rows,
        "rows_rejected": len(bad),
        "rows_duplicate": 0,
    }
    rem = pa.table(
        {
            "record_id": [r.record_id for r in bad],
            "step": ["validate"] * len(bad),
            "reason": [r.reason for r in bad],
            "duplicate_of": pa.nulls(len(bad), pa.string()),
            "detail": [r.detail for r in bad],
        },
        schema=outcome.removals.schema,
    )
    report = validate_batch(kept, "pairwise", rejected=len(bad))
    if not report.success:
        raise ValidationFailed([report])
    return kept, pa.concat_tables([outcome.removals, rem]), step


def curate(wh: Warehouse, dataset: str, params: CurateParams | None = None, version: str | None = None) -> CurateReport:
    params = params or CurateParams()
    if params.method not in ("isa", "random", "kcenter", "none"):
        raise CurationError(f"unknown method {params.method!r}; expected isa, random, kcenter or none")
    if isinstance(params.budget, float) and not 0 < params.budget <= 1:
        raise CurationError(f"budget must be in (0, 1] (a fraction) or a row count ≥ 1, got {params.budget}")
    parent = wh.resolve_version(dataset, version)
    run_id = wh.begin_run("curate", dataset, {"parent_version": parent, **asdict(params)})
    try:
        table = wh.read(dataset, "pairwise", parent)
        outcome = run_curation(table, str(wh.root), params)
        kept, removals, vstep = _validated(outcome)
        steps = [StepCount(**s) for s in outcome.steps] + [StepCount(**vstep)]
        dup = sum(s["rows_duplicate"] for s in outcome.steps)
        counts = RunCounts(
            records_read=table.num_rows,
            rows_read=table.num_rows,
            rows_kept=kept.num_rows,
            rows_rejected=removals.num_rows - dup,
            rows_duplicate=dup,
        )
        extra = {
            "curation": asdict(params),
            "selection": outcome.selection,
            "embed": asdict(outcome.embed) if outcome.embed else None,
        }
        result = wh.commit_derived(run_id, dataset, parent, {"pairwise": kept}, removals, counts, steps, extra)
        if outcome.embed:
            wh.set_run_metrics(run_id, {"embed": asdict(outcome.embed)})
    except BaseException as e:
        wh.fail_run(run_id, f"{type(e).__name__}: {e}")
        raise
    return CurateReport(run_id, dataset, parent, result, outcome)


def curate_flow_fn():
    """The Prefect flow (built lazily so importing this module doesn't import Prefect)."""
    from prefect import flow, get_run_logger, task

    @task(name="curate", retries=1, retry_delay_seconds=2)
    def curate_task(root: str, dataset: str, params: dict, version: str | None) -> dict:
        rep = curate(Warehouse(root), dataset, CurateParams(**params), version)
        return {
            "run_id": rep.run_id,
            "dataset": dataset,
            "parent_version": rep.parent_version,
            "version_id": rep.commit.version_id,
            "status": rep.commit.status,
            "counts": asdict(rep.commit.counts),
            "steps": rep.outcome.steps,
            "selection": {k: v for k, v in rep.outcome.selection.items() if k != "info"},
        }

    @flow(name="prefmill-curate", log_prints=True)
    def curate_flow(
        dataset: str, warehouse: str | None = None, version: str | None = None, params: dict | None = None
    ) -> dict:

        summary = curate_task(str(Warehouse(warehouse).root), dataset, params or {}, version)
        get_run_logger().info("curate counts: %s", summary["counts"])
        return summary

    return curate_flow
