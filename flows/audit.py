"""Judge audits and the publication gate.

``audit_judge`` runs an LLM judge through the judge pipeline (pipelines/judge.py: the shared request
cache, both presentation orders, verdict probabilities) on the human pairs of a gold dataset, measures it
with ``curation.agreement`` and stores the result as a ``judge_audits`` row; ``audit_reward`` does the
same for the embedding Bradley–Terry reward model (CPU). Each audit is a run (kind ``judge_audit`` /
``reward_audit``) that ends ``done``; its metrics carry the audit id.

A judge is what shapes its verdicts: the served model, its revision (from /v1/models) and the prompt
template id. ``gate`` is what ``prefmill judge`` and ``prefmill synthesize`` ask before they send a
request: the latest audit of exactly that judge must meet the thresholds (DEFAULT κ against the
majority ≥ 0.4, swap consistency ≥ 0.8; both parameters, each in [−1, 1]). Otherwise the run fails with
a one-line ``GateRefused`` and nothing is published, unless ``no_gate`` overrides it; the decision (the
audit that let the labels in, or the override and why it was needed) goes into the run's params and
metrics, the version's extra and the dataset card (``ai_labels`` of the ``dataset_versions`` view).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation import agreement
from curation.agreement import GoldSetError
from judges.engines import Endpoint, EngineSpec, check_price
from judges.errors import JudgeError
from judges.judge_step import ROLE, drop_verdicts
from judges.templates import PAIRWISE, Template
from pipelines.judge import run_judge
from schemas.errors import PrefmillError
from warehouse import Warehouse
from warehouse.audits import Audit, judge_key

DEFAULT_MIN_KAPPA = 0.4  # DEFAULT: "moderate" agreement (Landis & Koch) with the majority human label
DEFAULT_MIN_SWAP_CONSISTENCY = 0.8  # DEFAULT: at most one verdict in five flips when the order is swapped
# Rejection reasons that mean the judge answered but the answer was unusable (judges.primitives).
ANSWER_PROBLEMS = ("judge_unparseable", "empty_output", "refused", "truncated")

__all__ = [
    "audit_judge",
    "audit_reward",
    "gate",
    "AuditReport",
    "AuditError",
    "GateRefused",
    "GoldSetError",
    "JudgeIdentity",
    "DEFAULT_MIN_KAPPA",
    "DEFAULT_MIN_SWAP_CONSISTENCY",
]


class AuditError(PrefmillError, ValueError):
    """Bad audit or gate arguments (a threshold outside [−1, 1], ...): one line, nothing started."""


class GateRefused(PrefmillError):
    """The judge has no passing audit: nothing was published (``--no-gate`` overrides)."""


@dataclass(frozen=True)
class JudgeIdentity:
    """What the gate and the audits key a judge by."""

    model: str
    revision: str
    template_id: str

    @property
    def key(self) -> str:
        return judge_key(self.model, self.revision, self.template_id)

    def as_dict(self) -> dict:
        return {"model": self.model, "revision": self.revision, "template_id": self.template_id}


def check_thresholds(min_kappa: float, min_swap_consistency: float) -> dict:
    """The thresholds as a dict; one line for one outside [−1, 1] (or not a number)."""
    out = {}
    for flag, key, v in (
        ("--min-kappa", "min_kappa", min_kappa),
        ("--min-swap-consistency", "min_swap_consistency", min_swap_consistency),
    ):
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise AuditError(f"{flag} must be a number in [-1, 1], got {v!r}") from None
        if not math.isfinite(x) or not -1.0 <= x <= 1.0:
            raise AuditError(f"{flag} must be in [-1, 1], got {v!r}")
        out[key] = x
    return out


def template_of(verdict_options: dict | None) -> Template:
    """The pairwise template a judge run uses (``verdict_options['template']``, default the built-in one)."""
    t = (verdict_options or {}).get("template", PAIRWISE)
    if not isinstance(t, Template):
        raise AuditError(f"verdict_options['template'] must be a judges.templates.Template, got {type(t).__name__}")
    return t


def audit_summary(a: Audit) -> dict:
    """The headline of a stored audit (what a gate decision and a card show)."""
    m = a.metrics
    return {
        "audit_id": a.audit_id,
        "gold_dataset": a.gold_dataset,
        "gold_version": a.gold_version,
        "created_at": str(a.created_at),
        "passed_at_audit": a.passed,
        **{
            k: m.get(k)
            for k in ("kappa_majority", "swap_consistency", "accuracy", "accuracy_with_ties", "coverage", "n_items")
        },
    }


# ---------------------------------------------------------------------------------------------- gate


def gate(
    wh: Warehouse,
    judge: JudgeIdentity | None,
    *,
    min_kappa: float = DEFAULT_MIN_KAPPA,
    min_swap_consistency: float = DEFAULT_MIN_SWAP_CONSISTENCY,
    no_gate: bool = False,
    role: str = ROLE,
    why_none: str = "",
) -> dict:
    """The gate decision for ``judge`` (its latest audit against the thresholds), as a JSON-able dict.

    ``judge`` None: nothing judged the labels (``why_none`` says why) and there is nothing to gate.
    Raises ``GateRefused`` when there is no passing audit and ``no_gate`` is not set."""
    thresholds = check_thresholds(min_kappa, min_swap_consistency)
    base: dict[str, Any] = {"role": role, "thresholds": thresholds, "no_gate": bool(no_gate)}
    if judge is None:
        return {**base, "status": "not_applicable", "judge": None, "audit": None, "reason": why_none}
    audit = wh.latest_audit(judge.model, judge.revision, judge.template_id)
    ok, short = (
        agreement.passes(audit.metrics, thresholds["min_kappa"], thresholds["min_swap_consistency"])
        if audit is not None
        else (False, [])
    )
    decision = {
        **base,
        "judge": {**judge.as_dict(), "key": judge.key},
        "audit": audit_summary(audit) if audit else None,
    }
    if ok:
        return {**decision, "status": "passed", "reason": ""}
    if audit is None:
        reason = f"no audit of judge {judge.key}"
        hint = f"audit it first: prefmill judge audit --dataset GOLD --url URL --model {judge.model}"
    else:
        reason = (
            f"the latest audit of judge {judge.key} ({audit.audit_id} on "
            f"{audit.gold_dataset}@{audit.gold_version[:12]}) fails: {'; '.join(short)}"
        )
        hint = "audit a better judge or template"
    if no_gate:
        return {**decision, "status": "overridden", "reason": reason}
    raise GateRefused(f"gate: {reason}; {hint}, or pass --no-gate (recorded in the lineage)")


# ---------------------------------------------------------------------------------------------- audits


@dataclass
class AuditReport:
    audit_id: str
    run_id: str
    kind: str  # llm_judge | reward_model
    judge: JudgeIdentity
    gold_dataset: str
    gold_version: str
    metrics: dict
    passed: bool
    shortfalls: list[str]
    thresholds: dict
    extra: dict = field(default_factory=dict)


def summary(rep: AuditReport) -> dict:
    """The audit as JSON: identity, verdict, thresholds and every metric."""
    return {
        "audit_id": rep.audit_id,
        "run_id": rep.run_id,
        "kind": rep.kind,
        "judge": rep.judge.key,
        **rep.judge.as_dict(),
        "gold_dataset": rep.gold_dataset,
        "gold_version": rep.gold_version,
        "passed": rep.passed,
        "shortfalls": rep.shortfalls,
        "thresholds": rep.thresholds,
        "metrics": rep.metrics,
    }


def _probs(table: pa.Table, column: str) -> np.ndarray:
    return pc.fill_null(table.column(column).cast(pa.float64()), math.nan).to_numpy(zero_copy_only=False)


def _gold(wh: Warehouse, dataset: str, version: str, judge_model: str | None) -> tuple[pa.Table, dict, str]:
    """(the gold set's human rows, what was left out, its name); one-line errors for an unusable gold set."""
    name = f"{dataset}@{version[:12]}"
    table, excluded = agreement.human_rows(wh.read(dataset, "pairwise", version), name)
    agreement.gold_from_table(table, judge_model, name)  # checks the labels before anything is sent
    return table, excluded, name


def audit_judge(
    wh: Warehouse,
    gold_dataset: str,
    base_url: str,
    model: str,
    version: str | None = None,
    *,
    concurrency: int = 64,
    max_usd: float | None = None,
    gpu_usd_per_hour: float = 0.0,
    max_requests: int | None = None,
    limit: int | None = None,
    batch_rows: int = 128,
    engine_options: dict | None = None,
    verdict_options: dict | None = None,
    beam_args: list[str] | None = None,
    min_kappa: float = DEFAULT_MIN_KAPPA,
    min_swap_consistency: float = DEFAULT_MIN_SWAP_CONSISTENCY,
) -> AuditReport:
    """Judge the human pairs of ``gold_dataset`` with ``model`` at ``base_url`` and store the audit.

    A judge that answers nothing usable still gets an audit: every number is over the rows it judged
    (none: null), and ``judge.unparseable_share`` says how much it failed to answer."""
    from flows.judge import cache_path  # flows.judge imports this module for the gate

    thresholds = check_thresholds(min_kappa, min_swap_consistency)
    check_price(max_usd, gpu_usd_per_hour)
    if concurrency < 1:
        raise JudgeError(f"--concurrency must be ≥ 1, got {concurrency}")
    if limit is not None and limit < 1:
        raise JudgeError(f"--limit must be ≥ 1, got {limit}")
    template = template_of(verdict_options)
    gold_version = wh.resolve_version(gold_dataset, version)
    params = {
        "gold_version": gold_version,
        "base_url": base_url,
        "model": model,
        "template_id": template.id,
        "limit": limit,
        "concurrency": concurrency,
        "max_usd": max_usd,
        "max_requests": max_requests,
        "verdict_options": {k: v for k, v in (verdict_options or {}).items() if k != "template"},
        **thresholds,
    }
    with wh.run("judge_audit", gold_dataset, params) as run:
        table, excluded, name = _gold(wh, gold_dataset, gold_version, model)
        spec = EngineSpec(
            {ROLE: Endpoint(base_url, model)},
            str(cache_path(wh)),
            concurrency,
            max_usd,
            max_requests,
            gpu_usd_per_hour,
            dict(engine_options or {}),
        ).probed()
        res = run_judge(
            drop_verdicts(table),
            spec,
            work=run.work,
            run_id=run.run_id,
            verdict_options=verdict_options,
            limit=limit,
            batch_rows=batch_rows,
            beam_args=beam_args,
        )
        judged = res.judged("the audit stopped, nothing was stored")
        gold = agreement.gold_from_table(judged, model, name)
        gold.excluded = excluded
        metrics = agreement.report(
            gold, _probs(judged, "judge_prob_chosen"), _probs(judged, "judge_p_ab"), _probs(judged, "judge_p_ba")
        )
        attempted = table.num_rows - res.rows_not_attempted
        reasons = dict(res.counts.reasons)
        modes = pc.value_counts(judged.column("judge_mode").drop_null()).to_pylist()
        metrics["judge"] = {
            "rows_attempted": attempted,
            "rows_judged": res.counts.rows_judged,
            "rows_not_attempted": res.rows_not_attempted,
            "reasons": reasons,
            "unparseable_share": sum(reasons.get(r, 0) for r in ANSWER_PROBLEMS) / table.num_rows,
            "unjudged_share": 1.0 - metrics["coverage"],
            "modes": {m["values"]: m["counts"] for m in modes},
            "verdict_options": params["verdict_options"],
        }
        judge = JudgeIdentity(model, spec.endpoints[ROLE].revision, template.id)
        ok, short = agreement.passes(metrics, thresholds["min_kappa"], thresholds["min_swap_consistency"])
        audit_id = wh.put_audit(
            kind="llm_judge",
            model=judge.model,
            revision=judge.revision,
            template_id=judge.template_id,
            gold_dataset=gold_dataset,
            gold_version=gold_version,
            metrics=metrics,
            passed=ok,
            thresholds=thresholds,
            run_id=run.run_id,
        )
        run.metrics(
            {
                "audit": {"audit_id": audit_id, "judge": judge.key, "passed": ok, "shortfalls": short},
                **res.counts.metrics(spec, attempted),
            }
        )
        run.finish(rows_read=table.num_rows)
    return AuditReport(
        audit_id, run.run_id, "llm_judge", judge, gold_dataset, gold_version, metrics, ok, short, thresholds
    )


def audit_reward(
    wh: Warehouse,
    gold_dataset: str,
    model_id: str,
    version: str | None = None,
    *,
    embed_model: str | None = None,
    beam_args: list[str] | None = None,
    min_kappa: float = DEFAULT_MIN_KAPPA,
    min_swap_consistency: float = DEFAULT_MIN_SWAP_CONSISTENCY,
) -> AuditReport:
    """Score the human pairs of ``gold_dataset`` with a stored BT reward model and store the audit.

    The model sees no positions, so P(b ≻ a) = 1 − P(a ≻ b): its swap consistency is 1 and its
    position bias ½ by construction. Embeddings come from (and go to) the warehouse's embedding store
    under the model's recipe, as in training and scoring."""
    from curation.recipes import text_array
    from curation.reward import BTRewardModel, response_texts
    from pipelines.embed import embed_texts

    thresholds = check_thresholds(min_kappa, min_swap_consistency)
    blob, info = wh.get_model(model_id)
    if info["kind"] != "bt_reward":
        raise AuditError(f"model {info['model_id'][:12]} is a {info['kind']!r}, not a bt_reward model")
    rm = BTRewardModel.from_bytes(blob)
    mid = info["model_id"]
    gold_version = wh.resolve_version(gold_dataset, version)
    params = {
        "gold_version": gold_version,
        "model_id": mid,
        "recipe": rm.recipe,
        "embed_model": embed_model,
        **thresholds,
    }
    with wh.run("reward_audit", gold_dataset, params) as run:
        table, excluded, name = _gold(wh, gold_dataset, gold_version, None)
        prompts = text_array(table, "prompt").to_pylist()
        texts = response_texts(prompts, text_array(table, "chosen").to_pylist(), rm.recipe) + response_texts(
            prompts, text_array(table, "rejected").to_pylist(), rm.recipe
        )
        vecs, counts = embed_texts(
            texts, str(wh.root), f"bt:{rm.recipe}", model=embed_model or rm.model_name or None, beam_args=beam_args
        )
        n = table.num_rows
        p = np.asarray(rm.prob(vecs[:n], vecs[n:]), dtype=np.float64)
        gold = agreement.gold_from_table(table, None, name)
        gold.excluded = excluded
        metrics = agreement.report(gold, p, p, p)
        metrics["reward_model"] = {
            "model_id": mid,
            "recipe": rm.recipe,
            "temperature": rm.temperature,
            "trained_on": {"dataset": info["dataset"], "version": info["version_id"]},
            "trained_on_gold": info["dataset"] == gold_dataset,  # then the audit is not held out
            "positions": "none: swap consistency 1 and P(first) ½ by construction",
            "embed_computed": counts.computed,
            "embed_cache_hits": counts.cache_hits,
        }
        judge = JudgeIdentity(f"bt_reward:{mid}", mid, "")
        ok, short = agreement.passes(metrics, thresholds["min_kappa"], thresholds["min_swap_consistency"])
        audit_id = wh.put_audit(
            kind="reward_model",
            model=judge.model,
            revision=judge.revision,
            template_id="",
            gold_dataset=gold_dataset,
            gold_version=gold_version,
            metrics=metrics,
            passed=ok,
            thresholds=thresholds,
            run_id=run.run_id,
        )
        run.metrics({"audit": {"audit_id": audit_id, "judge": judge.key, "passed": ok, "shortfalls": short}})
        run.finish(rows_read=n)
    return AuditReport(
        audit_id, run.run_id, "reward_model", judge, gold_dataset, gold_version, metrics, ok, short, thresholds
    )
