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

The gate (flows/audit.py) runs before anything is generated. The gated judge of a method is the model
that decides its preferences: the endpoint in its ``judge`` role when one is given, else the policy,
which then judges its own samples (CycleAlign's ranker, SCIR's generative RM, I-SHEEP's
self-assessment all fall back to it). It is identified by model + served revision (in-process engines:
their ``model`` / ``revision``) + the built-in pairwise template (``GATE_TEMPLATE``): the generators'
own ranking and scoring prompts have no human gold set, so the pairwise audit of the same model and
revision (``prefmill judge audit``) is what stands for its judging. A method without a judge role
(Multifaceted: chosen is the response written for the system message, by construction) has nothing to
gate; its decision says ``not_applicable``. Refused → ``GateRefused``, the run fails, nothing is
published; ``no_gate`` overrides and is recorded in the run's params and metrics and on the card.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from flows.audit import (
    DEFAULT_MIN_KAPPA,
    DEFAULT_MIN_SWAP_CONSISTENCY,
    GateRefused,
    JudgeIdentity,
    check_thresholds,
    gate,
)
from flows.jobs import ValidationFailed
from flows.judge import cache_path
from judges.engines import EngineSpec, check_price
from judges.errors import BudgetExhausted
from judges.generators import GENERATORS, generator
from judges.generators.prompts import read_prompts_file, source_label
from judges.generators.registry import check_sources, endpoints, settings
from judges.generators.source import GeneratorSource, SynthCounts
from judges.templates import PAIRWISE
from pipelines.synthesize import dataset_prompts, default_embedder, run_synthesis
from schemas.step import Reject
from warehouse import CommitResult, Warehouse, run_counts, step_counts

METHODS = tuple(GENERATORS.names())
GATE_TEMPLATE = PAIRWISE.id  # the template of the audit that stands for a generator's judge (see above)

__all__ = ["synthesize", "summary", "SynthReport", "BudgetExhausted", "GateRefused", "METHODS", "gated_judge"]


def gated_judge(
    entry: Any, spec: EngineSpec | None, engines: dict[str, Any] | None
) -> tuple[JudgeIdentity | None, str, str]:
    """(the judge the gate audits, its role, why there is none) for a method (see the module docstring)."""
    if "judge" not in entry.roles:
        return None, "judge", f"{entry.name} labels its pairs by construction (no judge role)"
    if spec is not None:
        role = "judge" if "judge" in spec.endpoints else "policy"
        ep = spec.endpoints[role]
        return JudgeIdentity(ep.model, ep.revision, GATE_TEMPLATE), role, ""
    engines = engines or {}
    role = "judge" if engines.get("judge") is not None else "policy"
    eng = engines[role]
    model = str(getattr(eng, "model", None) or type(eng).__name__)
    return JudgeIdentity(model, str(getattr(eng, "revision", "") or ""), GATE_TEMPLATE), role, ""


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
    no_gate: bool = False,
    min_kappa: float = DEFAULT_MIN_KAPPA,
    min_swap_consistency: float = DEFAULT_MIN_SWAP_CONSISTENCY,
) -> SynthReport:
    """Generate preference rows with ``method`` and publish them into ``dataset`` as one run.

    ``engines`` (by role: policy, judge, reference) replaces the HTTP endpoints (tests, in-process
    engines); otherwise ``url``/``model`` (+ the method's optional judge/reference endpoints) are used.
    The method's judge must pass the gate (module docstring) unless ``no_gate``."""
    entry = generator(method)
    check_sources(entry, prompts_from, prompts_file, seeds_file, limit)
    check_price(max_usd, gpu_usd_per_hour)
    thresholds = check_thresholds(min_kappa, min_swap_consistency)
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
        "gate": {"no_gate": bool(no_gate), "template_id": GATE_TEMPLATE, **thresholds},
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
        judge, role, why_none = gated_judge(entry, spec, engines)
        decision = gate(wh, judge, no_gate=no_gate, role=role, why_none=why_none, **thresholds)
        run.metrics({"gate": decision})
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
        metrics = {**res.metrics(method), "gate": decision}
        run.metrics(metrics)
        if res.fatal is not None:
            raise res.fatal
        run.quarantine(res.rejected, method)  # staged first: a failed batch check still explains itself
        failed = [r for r in res.counts.batch_reports if not r.success]
        if failed:
            raise ValidationFailed(failed)
        result = run.commit(
            run_counts(res.steps),
            step_counts(res.steps),
            policies=res.note.get("policies", []),
            extra={"gate": decision},
        )
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
        "gate": rep.metrics["gate"]["status"],
        "gate_audit": (rep.metrics["gate"]["audit"] or {}).get("audit_id"),
        "gate_reason": rep.metrics["gate"]["reason"],
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
