"""Judging as one run: read a version's pairs → Beam judge step → publish a child version with verdicts.

``judge_dataset()`` is the plain job (the CLI calls it); ``judge_flow`` wraps it in Prefect (built on
first access, so importing this module does not import Prefect).

Rows the judge could not judge stay in the new version with null verdict columns: a failed verdict
says nothing about the pair itself, and keeping the row is what lets a rerun resume it. So the
run's counts describe dataset rows (read N = kept N, nothing removed), and the ``judge`` step's
counts describe verdicts: ``rows_in = judged + rejected``, every rejected row with a quarantine row
(step ``judge``, the primitive's reason: judge_unparseable, truncated, refused, http_500,
budget_exhausted, ...). A rerun replaces the verdict columns; verdicts already paid for come from
the request cache (no new request), so only the rows still missing one cost anything. A rerun that
changes nothing publishes nothing (``no_change``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from flows.audit import (
    DEFAULT_MIN_KAPPA,
    DEFAULT_MIN_SWAP_CONSISTENCY,
    GateRefused,
    JudgeIdentity,
    check_thresholds,
    gate,
    template_of,
)
from judges.engines import Endpoint, EngineSpec, check_price
from judges.errors import JudgeError
from judges.judge_step import ROLE, VERDICT_COLUMNS, JudgeCounts, drop_verdicts
from pipelines.judge import run_judge
from warehouse import CommitResult, Warehouse, run_counts, step_counts

CACHE_FILE = "judge_cache.sqlite"  # under the warehouse root: shared by every judge and synthesize run


@dataclass
class JudgeReport:
    run_id: str
    dataset: str
    parent_version: str
    counts: JudgeCounts
    commit: CommitResult
    rows_total: int
    rows_not_attempted: int  # beyond --limit: kept as they were, without verdicts
    metrics: dict = field(default_factory=dict)

    @property
    def budget_exhausted(self) -> bool:
        return self.counts.budget_exhausted > 0


def cache_path(wh: Warehouse) -> Path:
    return wh.root / CACHE_FILE


def judge_dataset(
    wh: Warehouse,
    dataset: str,
    base_url: str,
    model: str,
    version: str | None = None,
    *,
    concurrency: int = 64,
    max_usd: float | None = None,
    gpu_usd_per_hour: float = 0.0,
    limit: int | None = None,
    max_requests: int | None = None,
    batch_rows: int = 128,
    engine_options: dict | None = None,
    verdict_options: dict | None = None,
    beam_args: list[str] | None = None,
    no_gate: bool = False,
    min_kappa: float = DEFAULT_MIN_KAPPA,
    min_swap_consistency: float = DEFAULT_MIN_SWAP_CONSISTENCY,
) -> JudgeReport:
    """Judge the pairs of ``dataset`` (``version``, default latest) and publish a child version with the
    verdict columns. On an unreachable server or any other error the run is failed and nothing is published.

    The gate (flows/audit.py): the judge — this model, its served revision and the template — needs a
    latest audit that meets ``min_kappa`` / ``min_swap_consistency``; otherwise ``GateRefused`` fails the
    run before any verdict is asked for, unless ``no_gate``, which is recorded in the run's params and
    metrics, the version's extra and the dataset card."""
    check_price(max_usd, gpu_usd_per_hour)
    thresholds = check_thresholds(min_kappa, min_swap_consistency)
    template = template_of(verdict_options)
    if concurrency < 1:
        raise JudgeError(f"--concurrency must be ≥ 1, got {concurrency}")
    if limit is not None and limit < 1:
        raise JudgeError(f"--limit must be ≥ 1, got {limit}")
    parent = wh.resolve_version(dataset, version)
    params = {
        "parent_version": parent,
        "base_url": base_url,
        "model": model,
        "concurrency": concurrency,
        "max_usd": max_usd,
        "gpu_usd_per_hour": gpu_usd_per_hour,
        "limit": limit,
        "max_requests": max_requests,
        "gate": {"no_gate": bool(no_gate), "template_id": template.id, **thresholds},
    }
    with wh.run("judge", dataset, params) as run:
        table = wh.read(dataset, "pairwise", parent)
        if table.num_rows == 0:
            raise JudgeError(f"{dataset}@{parent[:12]} has no pairwise rows to judge")
        spec = EngineSpec(
            {"judge": Endpoint(base_url, model)},
            str(cache_path(wh)),
            concurrency,
            max_usd,
            max_requests,
            gpu_usd_per_hour,
            dict(engine_options or {}),
        ).probed()
        judge = JudgeIdentity(model, spec.endpoints[ROLE].revision, template.id)
        decision = gate(wh, judge, no_gate=no_gate, **thresholds)  # GateRefused: the run fails, nothing is sent
        run.metrics({"gate": decision})
        res = run_judge(
            drop_verdicts(table),  # a rerun replaces them
            spec,
            work=run.work,
            run_id=run.run_id,
            verdict_options=verdict_options,
            limit=limit,
            batch_rows=batch_rows,
            beam_args=beam_args,
        )
        judged = res.judged("judging stopped, nothing was published")
        run.quarantine(res.rejected, "judge")
        metrics = {**res.counts.metrics(spec, table.num_rows - res.rows_not_attempted), "gate": decision}
        run.metrics(metrics)
        result = run.commit_derived(
            parent,
            {"pairwise": judged},
            None,
            run_counts([res.read, *res.steps]),
            step_counts(res.steps),
            extra={
                "judge": {k: metrics["judge"][k] for k in ("model", "revision")},
                "judge_params": {
                    "verdict_options": {k: v for k, v in (verdict_options or {}).items() if k != "template"}
                },
                "gate": decision,
            },
        )
    return JudgeReport(run.run_id, dataset, parent, res.counts, result, table.num_rows, res.rows_not_attempted, metrics)


def summary(rep: JudgeReport) -> dict:
    c = rep.counts
    return {
        "run_id": rep.run_id,
        "dataset": rep.dataset,
        "parent_version": rep.parent_version,
        "version_id": rep.commit.version_id,
        "status": rep.commit.status,
        "rows": rep.rows_total,
        "rows_judged": c.rows_judged,
        "rows_rejected": c.rows_rejected,
        "rows_not_attempted": rep.rows_not_attempted,
        "reasons": dict(c.reasons),
        "budget_exhausted": rep.budget_exhausted,
        "gate": rep.metrics["gate"]["status"],
        "gate_audit": (rep.metrics["gate"]["audit"] or {}).get("audit_id"),
        "gate_reason": rep.metrics["gate"]["reason"],
        **{
            k: rep.metrics["judge"][k]
            for k in (
                "cache_hits",
                "cache_misses",
                "requests_sent",
                "prompt_tokens",
                "completion_tokens",
                "gpu_seconds",
                "cost_usd",
            )
        },
    }


def _build_flow():
    from prefect import flow, get_run_logger, task

    @task(name="judge")  # no retries: a retried judge would re-read a parent that it may have superseded
    def judge_task(root: str, dataset: str, base_url: str, model: str, version: str | None, options: dict) -> dict:
        return summary(judge_dataset(Warehouse(root), dataset, base_url, model, version, **options))

    @flow(name="prefmill-judge", log_prints=True)
    def judge_flow(
        dataset: str,
        base_url: str,
        model: str,
        version: str | None = None,
        warehouse: str | None = None,
        options: dict | None = None,
    ) -> dict:

        out = judge_task(str(Warehouse(warehouse).root), dataset, base_url, model, version, options or {})
        get_run_logger().info("judge: %s", out)
        return out

    return judge_flow


def __getattr__(name: str):
    if name == "judge_flow":  # built lazily: Prefect costs seconds to import
        globals()["judge_flow"] = fl = _build_flow()
        return fl
    raise AttributeError(name)


__all__ = [
    "judge_dataset",
    "GateRefused",
    "JudgeReport",
    "JudgeError",
    "summary",
    "cache_path",
    "CACHE_FILE",
    "VERDICT_COLUMNS",
]
