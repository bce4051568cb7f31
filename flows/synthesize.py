"""Synthesis as one run: prompts → a generator (CycleAlign, SCIR, I-SHEEP, Multifaceted) → staged rows
and drops → ``warehouse.commit`` (dedup + a new dataset version).

``synthesize()`` is the plain job (the CLI calls it); ``cyclealign_flow``, ``scir_flow``,
``isheep_flow`` and ``multifaceted_flow`` wrap it in Prefect (built on first access, so importing
this module does not import Prefect).

Prompts come from a dataset version (its distinct ``prompt_id``s over every shape), a JSONL file of
``{"prompt": ...}`` (bad lines are quarantined, step ``prompts``) or, for I-SHEEP, a self-instruct
seed file (default: the bundled seeds). Counts: rows_read = candidate rows the generator produced +
items it dropped (+ bad prompt lines); each drop is a quarantine row (pipelines/synthesize.py says
where the diagnostics go), so read = kept + rejected + duplicate holds for the run and every step.

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
from flows.judge import cache_path, check_price, probe_revision
from judges.generators.common import GeneratorError, model_name
from pipelines.synthesize import (
    METHODS,
    StagedCounts,
    method_config,
    read_prompts_file,
    run_method,
    source_label,
    stage_prompt_rejects,
    stage_result,
)
from warehouse import CommitResult, RunCounts, StepCount, Warehouse

# Which optional roles each method takes (policy = --url/--model is always required).
ROLES = {"cyclealign": ("judge",), "scir": ("judge", "reference"), "isheep": ("judge",), "multifaceted": ()}
PROMPT_SHAPES = ("pairwise", "binary", "listwise", "ratings")
_STAT_KEYS = (
    "requests",
    "sent",
    "retries",
    "cache_hits",
    "cache_misses",
    "failures",
    "prompt_tokens",
    "completion_tokens",
    "busy_seconds",
    "cost_usd",
)


class BudgetExhausted(RuntimeError):
    """The spending cap was reached mid-run: nothing was published; a rerun resumes from the cache."""


@dataclass
class Endpoint:
    url: str
    model: str


@dataclass
class SynthReport:
    run_id: str
    method: str
    dataset: str
    counts: StagedCounts
    commit: CommitResult
    prompts: int
    prompt_rejects: int
    metrics: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------- prompts


def prompts_from_dataset(wh: Warehouse, dataset: str, version: str | None, limit: int | None) -> tuple[list, str]:
    """Distinct prompts (first occurrence order, over every shape) of a dataset version, and a source label."""
    vid = wh.resolve_version(dataset, version)
    seen: dict[str, list] = {}
    for shape in PROMPT_SHAPES:
        t = wh.read(dataset, shape, vid).select(["prompt_id", "prompt"])
        for pid, prompt in zip(t.column("prompt_id").to_pylist(), t.column("prompt").to_pylist()):
            if pid not in seen:
                seen[pid] = prompt
            if limit is not None and len(seen) >= limit:
                return list(seen.values()), f"dataset:{dataset}@{vid}"
    return list(seen.values()), f"dataset:{dataset}@{vid}"


# ---------------------------------------------------------------------------------------- engines


def build_engines(
    wh: Warehouse,
    method: str,
    endpoints: dict[str, Endpoint],
    *,
    concurrency: int,
    max_usd: float | None,
    gpu_usd_per_hour: float,
    max_requests: int | None,
    engine_options: dict | None,
) -> dict[str, Any]:
    """One HTTPEngine per distinct (url, model), sharing the request cache, one budget and one price."""
    from judges.cache import RequestCache
    from judges.cost import Budget, Price
    from judges.http_engine import HTTPEngine

    capped = max_usd is not None or max_requests is not None
    budget = Budget(max_usd=max_usd, max_requests=max_requests) if capped else None
    price = Price(gpu_usd_per_hour=gpu_usd_per_hour)
    keys = {role: (ep.url.rstrip("/"), ep.model) for role, ep in endpoints.items()}
    # Every endpoint answers (or a clear error) before anything is opened or sent.
    revisions = {key: probe_revision(*key, **(engine_options or {})) for key in dict.fromkeys(keys.values())}
    cache = RequestCache(cache_path(wh))
    engines = {
        key: HTTPEngine(
            key[0],
            key[1],
            revision=rev,
            concurrency=concurrency,
            cache=cache,
            budget=budget,
            price=price,
            **(engine_options or {}),
        )
        for key, rev in revisions.items()
    }
    return {role: engines[key] for role, key in keys.items()}


def _endpoints(
    method: str,
    url: str | None,
    model: str | None,
    judge_url: str | None,
    judge_model: str | None,
    reference_url: str | None,
    reference_model: str | None,
) -> dict[str, Endpoint]:
    if not url or not model:
        raise GeneratorError("--url and --model (the policy / generator endpoint) are required")
    eps = {"policy": Endpoint(url, model)}
    for role, u, m in (("judge", judge_url, judge_model), ("reference", reference_url, reference_model)):
        if u or m:
            if role not in ROLES[method]:
                raise GeneratorError(
                    f"{method} takes no --{role}-url/--{role}-model "
                    f"(it takes: {', '.join(ROLES[method]) or 'only --url/--model'})"
                )
            eps[role] = Endpoint(u or url, m or model)
    return eps


def _engine_totals(engines: dict[str, Any]) -> dict:
    total: dict[str, Any] = dict.fromkeys(_STAT_KEYS, 0)
    errors: dict[str, int] = {}
    for eng in {id(e): e for e in engines.values() if e is not None}.values():
        st = eng.stats.as_dict()
        for k in _STAT_KEYS:
            total[k] += st.get(k) or 0
        for k, v in (st.get("errors") or {}).items():
            errors[k] = errors.get(k, 0) + v
    total["errors"] = errors
    total["gpu_seconds"] = total.pop("busy_seconds")
    return total


def _close(engines: dict[str, Any]) -> None:
    for eng in {id(e): e for e in engines.values()}.values():
        eng.close()
    caches = {id(c): c for c in (getattr(e, "cache", None) for e in engines.values()) if c is not None}
    for c in caches.values():
        c.close()


# ---------------------------------------------------------------------------------------- the job


def _metrics(method: str, engines: dict, counts: StagedCounts | None, res, prompts: int) -> dict:
    e = _engine_totals(engines)
    pairs = counts.shapes.get("pairwise", 0) if counts else 0
    kept = counts.rows_kept if counts else 0
    stats = {k: v for k, v in (res.stats if res else {}).items() if k not in ("pool", "taxonomy")}
    return {
        "synthesize": {
            "method": method,
            "models": {role: model_name(eng) for role, eng in engines.items()},
            "prompts": prompts,
            "generated": counts.generated if counts else 0,
            "dropped": counts.dropped if counts else 0,
            "drop_reasons": dict(res.dropped) if res else {},
            "rows_by_shape": dict(counts.shapes) if counts else {},
            "kept_pairs": pairs,
            "engine": e,
            "usd_per_kept_pair": e["cost_usd"] / pairs if pairs else None,
            "gpu_seconds_per_kept_pair": e["gpu_seconds"] / pairs if pairs else None,
            "tokens_per_kept_row": (e["prompt_tokens"] + e["completion_tokens"]) / kept if kept else None,
            "diagnostics": counts.diagnostics if counts else 0,
            "diagnostics_unmatched": counts.diagnostics_unmatched if counts else 0,
            "generator_stats": stats,
        }
    }


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
) -> SynthReport:
    """Generate preference rows with ``method`` and publish them into ``dataset`` as one run.

    ``engines`` (by role: policy, judge, reference) replaces the HTTP endpoints (tests, in-process
    engines); otherwise ``url``/``model`` (+ the method's optional judge/reference endpoints) are used."""
    if method not in METHODS:
        raise GeneratorError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    sources = [s for s in (prompts_from, prompts_file, seeds_file) if s]
    if len(sources) > 1:
        raise GeneratorError("give one prompt source: --prompts-from, --prompts or --seeds")
    if seeds_file and method != "isheep":
        raise GeneratorError("--seeds is for isheep; the other methods take --prompts-from or --prompts")
    if not sources and method != "isheep":
        raise GeneratorError(f"{method} needs prompts: --prompts-from DATASET or --prompts FILE")
    if limit is not None and limit < 1:
        raise GeneratorError(f"--limit must be ≥ 1, got {limit}")
    check_price(max_usd, gpu_usd_per_hour)
    overrides = dict(config or {})
    if method == "isheep" and limit is not None:  # I-SHEEP's unit is generated instructions
        overrides.setdefault("num_instructions", limit)
        overrides.setdefault("batch_size", min(limit, 32))
    cfg = method_config(method, overrides)
    eps = (
        None
        if engines is not None
        else _endpoints(method, url, model, judge_url, judge_model, reference_url, reference_model)
    )

    prompts, prompt_rejects, seeds = None, [], None
    if prompts_from:
        prompts, source = prompts_from_dataset(wh, prompts_from, prompts_version, limit)
    elif prompts_file:
        prompts, prompt_rejects = read_prompts_file(prompts_file)
        prompts, source = prompts[:limit] if limit else prompts, source_label(prompts_file)
    elif seeds_file:
        seeds, source = source_label(seeds_file), source_label(seeds_file)
    else:
        source = "isheep:bundled-seeds"
    params = {
        "method": method,
        "config": asdict(cfg),
        "source": source,
        "limit": limit,
        "iteration": iteration,
        "endpoints": {r: asdict(e) for r, e in (eps or {}).items()},
        "max_usd": max_usd,
        "gpu_usd_per_hour": gpu_usd_per_hour,
        "max_requests": max_requests,
    }
    run_id = wh.begin_run("synthesize", dataset, params)
    staging = wh.staging_dir(run_id)
    own = engines is None
    engines = dict(engines or {})
    res = counts = None
    try:
        if own:
            engines = build_engines(
                wh,
                method,
                eps,
                concurrency=concurrency,
                max_usd=max_usd,
                gpu_usd_per_hour=gpu_usd_per_hour,
                max_requests=max_requests,
                engine_options=engine_options,
            )
        res = run_method(method, engines, prompts, cfg, seeds=seeds, iteration=iteration, embed=embed)
        exhausted = _engine_totals(engines)["errors"].get("budget_exhausted", 0)
        if exhausted:
            raise BudgetExhausted(
                f"budget exhausted ({exhausted} request(s) refused); nothing was published — "
                "rerun with a larger --max-usd to resume from the request cache"
            )
        stage_prompt_rejects(prompt_rejects, run_id, staging)
        counts = stage_result(res, method=method, run_id=run_id, staging=staging, source=source)
        failed = [r for r in counts.batch_reports if not r.success]
        if failed:
            raise ValidationFailed(failed)
        n_prompts = len(prompts) if prompts is not None else (res.stats or {}).get("seeds", 0)
        metrics = _metrics(method, engines, counts, res, n_prompts)
        wh.set_run_metrics(run_id, metrics)
        steps = [
            StepCount(method, counts.rows_read, counts.generated, counts.dropped),
            StepCount("validate", counts.generated, counts.rows_kept, counts.rows_invalid),
        ]
        if prompts_file:
            n_lines = len(prompts) + len(prompt_rejects)
            steps.insert(0, StepCount("prompts", n_lines, n_lines - len(prompt_rejects), len(prompt_rejects)))
        rc = RunCounts(
            records_read=n_prompts + len(prompt_rejects),
            rows_read=counts.rows_read + len(prompt_rejects),
            rows_kept=counts.rows_kept,
            rows_rejected=counts.rows_rejected + len(prompt_rejects),
        )
        policies = sorted(
            {r["policy"] for attr in ("pairs", "listwise", "sft") for r in getattr(res, attr) if r.get("policy")}
        )
        result = wh.commit(run_id, dataset, counts=rc, steps=steps, policies=policies)
    except BaseException as e:
        if engines:
            try:
                wh.set_run_metrics(run_id, _metrics(method, engines, counts, res, len(prompts or [])))
            except Exception:
                pass
        wh.fail_run(run_id, f"{type(e).__name__}: {e}")
        raise
    finally:
        if own and engines:
            _close(engines)
    return SynthReport(run_id, method, dataset, counts, result, n_prompts, len(prompt_rejects), metrics)


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
