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

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from judges.errors import EngineUnreachable
from pipelines.ingest import counts_dir_for
from pipelines.judge import STEP, VERDICT_COLUMNS, JudgeCounts, JudgeSpec, judged_dir_for, run_judge
from warehouse import CommitResult, RunCounts, StepCount, Warehouse

CACHE_FILE = "judge_cache.sqlite"  # under the warehouse root: shared by every judge and synthesize run


class JudgeError(ValueError):
    """Bad judge arguments or a dataset that cannot be judged: a one-line message, nothing started."""


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


def check_price(max_usd: float | None, gpu_usd_per_hour: float) -> None:
    if max_usd is not None and max_usd <= 0:
        raise JudgeError(f"--max-usd must be positive, got {max_usd}")
    if gpu_usd_per_hour < 0:
        raise JudgeError(f"--gpu-usd-per-hour must be ≥ 0, got {gpu_usd_per_hour}")
    if max_usd is not None and gpu_usd_per_hour == 0:
        raise JudgeError("--max-usd needs a price: pass --gpu-usd-per-hour (the GPU rental price)")


def probe_revision(base_url: str, model: str, **engine_options) -> str:
    """The served model's revision, or a clear error when the server is down or does not serve ``model``."""
    from judges.http_engine import HTTPEngine

    opts = {
        k: v
        for k, v in engine_options.items()
        if k in ("connect_timeout_s", "max_retries", "backoff_base_s", "backoff_max_s", "api_key")
    }
    log = logging.getLogger("judges.http_engine")
    level = log.level
    log.setLevel(logging.ERROR)  # its "model not listed" warning: the error below says it better
    try:
        with HTTPEngine(base_url, model, **opts) as probe:
            revision = probe.model_revision()  # raises EngineUnreachable
    finally:
        log.setLevel(level)
    if not revision:
        raise EngineUnreachable(
            f"model {model!r} is not listed by {base_url.rstrip('/')}/v1/models "
            "(check --model against what the server serves)"
        )
    return revision


def _metrics(counts: JudgeCounts, spec: JudgeSpec, attempted: int) -> dict:
    e = counts.engine
    return {
        "judge": {
            "model": spec.model,
            "revision": spec.revision,
            "base_url": spec.base_url,
            "rows_attempted": attempted,
            "rows_judged": counts.rows_judged,
            "rows_rejected": counts.rows_rejected,
            "reasons": dict(counts.reasons),
            "budget_exhausted": counts.budget_exhausted > 0,
            "cache_hits": e["cache_hits"],
            "cache_misses": e["cache_misses"],
            "requests_sent": e["sent"],
            "retries": e["retries"],
            "prompt_tokens": e["prompt_tokens"],
            "completion_tokens": e["completion_tokens"],
            "gpu_seconds": e["busy_seconds"],
            "cost_usd": e["cost_usd"],
            "errors": dict(counts.errors),
            "usd_per_judged_row": e["cost_usd"] / counts.rows_judged if counts.rows_judged else None,
            "max_usd": spec.max_usd,
            "gpu_usd_per_hour": spec.gpu_usd_per_hour,
        }
    }


def _with_nulls(table: pa.Table, like: pa.Schema) -> pa.Table:
    """Rows that were not judged (beyond --limit) with null verdict columns."""
    for name in VERDICT_COLUMNS:
        f = like.field(name)
        table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    return table


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
) -> JudgeReport:
    """Judge the pairs of ``dataset`` (``version``, default latest) and publish a child version with the
    verdict columns. On an unreachable server or any other error the run is failed and nothing is published."""
    check_price(max_usd, gpu_usd_per_hour)
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
    }
    run_id = wh.begin_run("judge", dataset, params)
    staging = wh.staging_dir(run_id)
    try:
        table = wh.read(dataset, "pairwise", parent)
        if table.num_rows == 0:
            raise JudgeError(f"{dataset}@{parent[:12]} has no pairwise rows to judge")
        table = table.drop_columns([c for c in VERDICT_COLUMNS if c in table.column_names])  # a rerun replaces them
        spec = JudgeSpec(
            base_url,
            model,
            probe_revision(base_url, model, **(engine_options or {})),
            str(cache_path(wh)),
            concurrency,
            max_usd,
            max_requests,
            gpu_usd_per_hour,
            dict(engine_options or {}),
            dict(verdict_options or {}),
        )
        n = table.num_rows if limit is None else min(limit, table.num_rows)
        judged, counts = run_judge(
            table.slice(0, n), spec, run_id=run_id, staging=staging, batch_rows=batch_rows, beam_args=beam_args
        )
        if counts.fatal:
            raise EngineUnreachable(f"judging stopped, nothing was published: {counts.fatal}")
        if n < table.num_rows:
            judged = pa.concat_tables([judged, _with_nulls(table.slice(n), judged.schema)])
        metrics = _metrics(counts, spec, n)
        wh.set_run_metrics(run_id, metrics)
        steps = [StepCount(STEP, rows_in=n, rows_kept=counts.rows_judged, rows_rejected=counts.rows_rejected)]
        rc = RunCounts(records_read=table.num_rows, rows_read=table.num_rows, rows_kept=table.num_rows, rows_rejected=0)
        result = wh.commit_derived(
            run_id,
            dataset,
            parent,
            {"pairwise": judged},
            None,
            rc,
            steps,
            extra={
                "judge": {k: metrics["judge"][k] for k in ("model", "revision")},
                "judge_params": {"verdict_options": spec.verdict_options},
            },
        )
    except BaseException as e:
        wh.fail_run(run_id, f"{type(e).__name__}: {e}")
        raise
    finally:
        for d in (counts_dir_for(staging), judged_dir_for(staging)):
            shutil.rmtree(d, ignore_errors=True)
    return JudgeReport(run_id, dataset, parent, counts, result, table.num_rows, table.num_rows - n, metrics)


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


__all__ = ["judge_dataset", "judge_flow", "JudgeReport", "JudgeError", "summary", "cache_path", "CACHE_FILE"]
