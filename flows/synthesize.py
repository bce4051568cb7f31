"""Synthesis as one run: prompts → a generator (CycleAlign, SCIR, I-SHEEP, Multifaceted) → staged rows
and drops → ``warehouse.commit`` (dedup + a new dataset version).

``synthesize()`` is the plain job (the CLI calls it); ``cyclealign_flow``, ``scir_flow``,
``isheep_flow`` and ``multifaceted_flow`` wrap it in Prefect (built on first access, so importing
this module does not import Prefect).

Prompts come from a dataset version (its distinct ``prompt_id``s over every shape), a JSONL file of
``{"prompt": ...}`` (bad lines are quarantined, step ``prompts``) or, for I-SHEEP, a self-instruct
seed file (default: the bundled seeds). The generator runs as the pipeline's source, so its step
counts rows_in = candidate rows produced + items dropped (+ bad prompt lines); each drop is a
quarantine row (judges/generators/source.py says where the diagnostics go), so read = kept +
rejected + duplicate holds for the run and every step.

All or nothing: an engine that becomes unreachable, or a budget that runs out, fails the run and
publishes nothing — the generators' later steps depend on earlier answers, so a partial result would
be a biased sample. Every answer already received is in the request cache (under the warehouse
root, shared with `prefmill judge`), and the generators seed every request, so a rerun with a larger
budget sends only what is missing. A run where every candidate was dropped publishes no version and
says so (status ``no_change``, reasons in the quarantine).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from flows.jobs import ValidationFailed
from flows.judge import cache_path
from judges.engines import EngineSpec, check_price
from judges.errors import BudgetExhausted
from judges.generators import GENERATORS, generator
from judges.generators.prompts import read_prompts_file, source_label
from judges.generators.registry import check_sources, endpoints, settings
from judges.generators.source import GeneratorSource, SynthCounts
from pipelines.executor import write_parquet
from pipelines.synthesize import dataset_prompts, default_embedder, run_synthesis
from schemas.step import Reject, as_quarantine
from warehouse import CommitResult, Warehouse, run_counts, step_counts

METHODS = tuple(GENERATORS.names())

__all__ = ["synthesize", "summary", "SynthReport", "BudgetExhausted", "METHODS"]


@dataclass
class SynthReport:
    run_id: str
    method: str
    dataset: str
    counts: SynthCounts
    commit: CommitResult
    prompts: int
    prompt_rejects: int
    metrics: dict = field(default_factory=dict)


def synthesize(
    wh: Warehouse,
    method: str,
    dataset: str,
    *,
    url: str | None = None,
    model: str | None = None,
    judge_url: str | None = None,
    judge_model: str | None = None,
    reference_url: str | None = None,
    reference_model: str | None = None,
    prompts_from: str | None = None,
    prompts_version: str | None = None,
    prompts_file: str | None = None,
    seeds_file: str | None = None,
    config: dict | None = None,
    limit: int | None = None,
    iteration: int | None = None,
    concurrency: int = 64,
    max_usd: float | None = None,
    gpu_usd_per_hour: float = 0.0,
    max_requests: int | None = None,
    engine_options: dict | None = None,
    engines: dict[str, Any] | None = None,
    embed: Callable | None = None,
    beam_args: list[str] | None = None,
) -> SynthReport:
    """Generate preference rows with ``method`` and publish them into ``dataset`` as one run.

    ``engines`` (by role: policy, judge, reference) replaces the HTTP endpoints (tests, in-process
    engines); otherwise ``url``/``model`` (+ the method's optional judge/reference endpoints) are used."""
    entry = generator(method)
    check_sources(entry, prompts_from, prompts_file, seeds_file, limit)
    check_price(max_usd, gpu_usd_per_hour)
    cfg = settings(entry, config, limit)
    eps = (
        None
        if engines is not None
        else endpoints(entry, url, model, judge_url, judge_model, reference_url, reference_model)
    )

    prompts: list[list[dict]] | None = None
    prompt_rejects: list[Reject] = []
    seeds: str | None = None
    if prompts_from:
        prompts, source = dataset_prompts(wh, prompts_from, prompts_version, limit)
    elif prompts_file:
        prompts, prompt_rejects = read_prompts_file(prompts_file)
        prompts, source = prompts[:limit] if limit else prompts, source_label(prompts_file)
    elif seeds_file:
        seeds = source = source_label(seeds_file)
    else:
        source = f"{method}:bundled-seeds"
    params = {
        "method": method,
        "config": asdict(cfg),
        "source": source,
        "limit": limit,
        "iteration": iteration,
        "endpoints": {r: {"url": e.url, "model": e.model} for r, e in (eps or {}).items()},
        "max_usd": max_usd,
        "gpu_usd_per_hour": gpu_usd_per_hour,
        "max_requests": max_requests,
    }
    with wh.run("synthesize", dataset, params) as run:
        spec = None
        if eps is not None:  # every endpoint answers (or a clear error) before anything is sent
            spec = EngineSpec(
                eps,
                str(cache_path(wh)),
                concurrency,
                max_usd,
                max_requests,
                gpu_usd_per_hour,
                dict(engine_options or {}),
            ).probed()
        src = GeneratorSource(
            method,
            cfg,
            source=source,
            run_id=run.run_id,
            prompts=prompts,
            prompt_rejects=prompt_rejects,
            seeds=seeds,
            iteration=iteration,
            spec=spec,
            engines=engines,
            embed=embed,
            embed_factory=default_embedder,
        )
        res = run_synthesis(src, work=run.work, staging=run.staging, beam_args=beam_args)
        metrics = res.metrics(method)
        run.metrics(metrics)
        if res.fatal is not None:
            raise res.fatal
        if res.rejected.num_rows:  # written first: a failed batch check still explains itself
            write_parquet(as_quarantine(res.rejected), run.staging / "quarantine" / f"{method}.parquet")
        failed = [r for r in res.counts.batch_reports if not r.success]
        if failed:
            raise ValidationFailed(failed)
        result = run.commit(run_counts(res.steps), step_counts(res.steps), policies=res.note.get("policies", []))
    n_prompts = res.note.get("prompts", 0)
    return SynthReport(run.run_id, method, dataset, res.counts, result, n_prompts, len(prompt_rejects), metrics)


def summary(rep: SynthReport) -> dict:
    c, m = rep.counts, rep.metrics["synthesize"]
    return {
        "run_id": rep.run_id,
        "method": rep.method,
        "dataset": rep.dataset,
        "status": rep.commit.status,
        "version_id": rep.commit.version_id,
        "prompts": rep.prompts,
        "rows_read": rep.commit.counts.rows_read,
        "rows_kept": rep.commit.counts.rows_kept,
        "rows_rejected": rep.commit.counts.rows_rejected,
        "rows_duplicate": rep.commit.counts.rows_duplicate,
        "rows_by_shape": dict(c.shapes),
        "top_reasons": dict(c.reasons.most_common(8)),
        "cache_hits": m["engine"]["cache_hits"],
        "cache_misses": m["engine"]["cache_misses"],
        "cost_usd": m["engine"]["cost_usd"],
        "usd_per_kept_pair": m["usd_per_kept_pair"],
    }


# ---------------------------------------------------------------------------------------- Prefect


def _build_flows() -> dict:
    from prefect import flow, get_run_logger, task

    @task(name="synthesize")  # not retried: a failed run published nothing and a rerun resumes from the cache
    def synthesize_task(root: str, method: str, dataset: str, options: dict) -> dict:
        return summary(synthesize(Warehouse(root), method, dataset, **options))

    def make(method: str):
        @flow(name=f"prefmill-synthesize-{method}", log_prints=True)
        def method_flow(
            dataset: str,
            url: str,
            model: str,
            warehouse: str | None = None,
            prompts_from: str | None = None,
            prompts_file: str | None = None,
            limit: int | None = None,
            options: dict | None = None,
        ) -> dict:

            opts = {
                "url": url,
                "model": model,
                "prompts_from": prompts_from,
                "prompts_file": prompts_file,
                "limit": limit,
                **(options or {}),
            }
            out = synthesize_task(str(Warehouse(warehouse).root), method, dataset, opts)
            get_run_logger().info("%s: %s", method, out)
            return out

        return method_flow

    return {f"{m}_flow": make(m) for m in METHODS}


FLOW_NAMES = tuple(f"{m}_flow" for m in METHODS)


def __getattr__(name: str):
    if name in FLOW_NAMES:  # built lazily: Prefect costs seconds to import
        globals().update(_build_flows())
        return globals()[name]
    raise AttributeError(name)
