"""Curation as one run: read a version → the curation pipeline → batch checks → publish a child version.

`curate()` is the plain job (the CLI calls it); `curate_flow` wraps it in Prefect. The new version's
parent is the curated one; every row that did not make it is in `removals` with its step and reason,
and the previous version is never touched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from flows.jobs import ValidationFailed
from pipelines.curate import CurateOutcome, CurateParams, run_curation
from schemas.step import as_removals
from schemas.validation import validate_batch
from warehouse import CommitResult, Warehouse, run_counts, step_counts


@dataclass
class CurateReport:
    run_id: str
    dataset: str
    parent_version: str
    commit: CommitResult
    outcome: CurateOutcome


def curate(wh: Warehouse, dataset: str, params: CurateParams | None = None, version: str | None = None) -> CurateReport:
    params = params or CurateParams()
    params.check()
    parent = wh.resolve_version(dataset, version)
    with wh.run("curate", dataset, {"parent_version": parent, **asdict(params)}) as run:
        outcome = run_curation(wh.read(dataset, "pairwise", parent), wh.root, params, run.work, run.run_id)
        report = validate_batch(outcome.kept, "pairwise", rejected=outcome.count("validate").rows_rejected)
        if not report.success:
            raise ValidationFailed([report])
        extra = {
            "curation": asdict(params),
            "selection": outcome.selection,
            "embed": asdict(outcome.embed) if outcome.embed else None,
        }
        result = run.commit_derived(
            parent,
            {"pairwise": outcome.kept},
            as_removals(outcome.rejected),
            run_counts(outcome.counts),
            step_counts(outcome.counts),
            extra,
        )
        if outcome.embed:
            run.metrics({"embed": asdict(outcome.embed)})
    return CurateReport(run.run_id, dataset, parent, result, outcome)


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
