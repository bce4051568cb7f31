"""The judge step: pairwise rows → a position-swapped LLM verdict per row, as columns.

``JudgeStep`` builds its engine and the persistent request cache once per worker (``setup``) and asks
``judges.primitives.pairwise_verdict`` for each batch (one ``engine.run``, so the server's continuous
batching fills up). It annotates: a row without a verdict stays in the output with null verdict
columns and is a rejected row with the primitive's reason (judge_unparseable, truncated, http_500,
budget_exhausted, ...), so a rerun can resume it from the cache.

A budget cap is per engine, i.e. per worker. Once it is spent the engine refuses to send (cached
answers are still served) and the remaining rows are rejected with ``budget_exhausted``. A server
that disappears (``EngineError``) stops the step: it is noted (``judges.notes``), the worker's later
batches are not sent, and the driver fails the run, so nothing half-done is published. Each batch
notes its engine-stat deltas (cache hits and misses, tokens, GPU-seconds, cost) for the run's metrics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from judges import engines as eng
from judges import primitives
from judges.engine_step import EngineStep
from judges.engines import EngineSpec
from judges.errors import EngineError
from judges.notes import Notes
from schemas.records import conversation_text
from schemas.registry import STEPS
from schemas.step import Counts, StepResult, raw_text, reject_rows

STEP = "judge"
ROLE = "judge"
VERDICT_FIELDS = [
    pa.field("judge_prob_chosen", pa.float64()),  # P(chosen ≻ rejected), both presentation orders averaged
    pa.field("judge_p_ab", pa.float64()),  # P(chosen) with chosen shown first
    pa.field("judge_p_ba", pa.float64()),  # P(chosen) with chosen shown second
    pa.field("judge_agrees", pa.bool_()),  # prob ≥ 0.5; null for ties (nothing to agree with)
    pa.field("judge_model", pa.string()),
    pa.field("judge_template_id", pa.string()),
    pa.field("judge_mode", pa.string()),  # logprobs | guided | text (P is then 0/1) | mixes
]
VERDICT_COLUMNS = [f.name for f in VERDICT_FIELDS]
DETAIL_LIMIT = 2000  # the quarantine's detail cap (as schemas.step.Reject)


def drop_verdicts(table: pa.Table) -> pa.Table:
    """``table`` without verdict columns (a rerun replaces them)."""
    return table.drop_columns([c for c in VERDICT_COLUMNS if c in table.column_names])


def with_null_verdicts(table: pa.Table) -> pa.Table:
    """Rows without a verdict (beyond --limit, or never judged): null verdict columns."""
    for f in VERDICT_FIELDS:
        table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    return table


def judge_rows(engine: Any, table: pa.Table, **verdict_options: Any) -> StepResult:
    """``table`` plus the verdict columns, and a rejected row per row without a verdict."""
    n = table.num_rows
    prompts = table.column("prompt").to_pylist()
    chosen = table.column("chosen").to_pylist()
    rejected = table.column("rejected").to_pylist()
    items = [(p, conversation_text(c or []), conversation_text(r or [])) for p, c, r in zip(prompts, chosen, rejected)]
    verdicts = primitives.pairwise_verdict(engine, items, **verdict_options) if items else []
    ok = np.fromiter((v.ok and v.prob_a is not None for v in verdicts), bool, n)

    def col(values: list, typ: pa.DataType) -> pa.Array:
        return pa.array([x if good else None for x, good in zip(values, ok)], typ)

    prob = col([v.prob_a for v in verdicts], pa.float64())
    not_tie = pc.fill_null(pc.not_equal(table.column("label"), "tie"), True).combine_chunks()
    agrees = pc.if_else(not_tie, pc.greater_equal(prob, 0.5), pa.scalar(None, pa.bool_()))
    values = {
        "judge_prob_chosen": prob,
        "judge_p_ab": col([v.p_ab for v in verdicts], pa.float64()),
        "judge_p_ba": col([v.p_ba for v in verdicts], pa.float64()),
        "judge_agrees": agrees,
        "judge_model": col([engine.model] * n, pa.string()),
        "judge_template_id": col([v.template_id for v in verdicts], pa.string()),
        "judge_mode": col([v.mode for v in verdicts], pa.string()),
    }
    out = table
    for f in VERDICT_FIELDS:
        out = out.append_column(f, values[f.name])
    bad = np.flatnonzero(~ok)
    rej = reject_rows(
        table.take(pa.array(bad, pa.int64())),
        STEP,
        [verdicts[i].reason or "judge_failed" for i in bad],
        detail=[(verdicts[i].detail or "")[:DETAIL_LIMIT] for i in bad],
        shape="pairwise",
    )
    if len(bad):
        raws = [raw_text({"judge_outputs": list(verdicts[i].raw)}) if any(verdicts[i].raw) else None for i in bad]
        rej = rej.set_column(rej.schema.get_field_index("raw"), "raw", pa.array(raws, pa.string()))
    return StepResult(out, rej)


@STEPS.register("judge", shapes=("pairwise",), tags=("ai-judged",), extra={"stage": "judge"})
class JudgeStep(EngineStep):
    """Position-swapped LLM verdicts per pair; a row without a verdict keeps null verdicts and a reason."""

    name = STEP
    role = ROLE
    needs = ("record_id", "prompt", "chosen", "rejected", "label")
    adds = tuple(VERDICT_COLUMNS)
    shapes = ("pairwise",)
    annotates = True

    def __init__(
        self,
        spec: EngineSpec | None = None,
        verdict_options: Mapping[str, Any] | None = None,
        *,
        notes: str | None = None,
        engine: Any = None,
    ):
        super().__init__(spec, engine)
        self.verdict_options = dict(verdict_options or {})
        self.notes = Notes(notes) if notes else None
        self.fatal: str | None = None

    def process(self, batch: pa.Table) -> StepResult:
        self.ready_engine()
        if self.fatal is not None:  # the server is gone: no row of this worker can succeed
            return self._unjudged(batch, self.fatal)
        engines = {ROLE: self.engine}
        before = eng.snapshot(engines)
        try:
            res = judge_rows(self.engine, batch, **self.verdict_options)
        except EngineError as e:
            if self.notes is None:  # nobody to tell after the pipeline: fail right here
                raise
            self.fatal = f"{type(e).__name__}: {e}"
            self.notes.fail(e)
            res = self._unjudged(batch, self.fatal)
        if self.notes is not None:
            self.notes.write(
                _batch_key(batch), {"rows": batch.num_rows, "engine": eng.delta(eng.snapshot(engines), before)}
            )
        return res

    @staticmethod
    def _unjudged(batch: pa.Table, why: str) -> StepResult:
        """A batch the engine could not take: never published (the driver fails the run)."""
        rej = reject_rows(batch, STEP, "engine_error", detail=why, shape="pairwise")
        return StepResult(with_null_verdicts(batch), rej)


def _batch_key(batch: pa.Table) -> str:
    """The executor's row index of the batch's first row: the same on a retried bundle."""
    if "_row" in batch.column_names and batch.num_rows:
        return f"batch-{pc.min(batch.column('_row')).as_py():012d}"
    return f"batch-n{batch.num_rows}"


@dataclass
class JudgeCounts:
    """The judge step's counts (base-class counted) with the batches' engine-stat deltas summed."""

    batches: int = 0
    rows_in: int = 0
    rows_judged: int = 0
    rows_rejected: int = 0
    reasons: Counter = field(default_factory=Counter)
    engine: dict = field(default_factory=lambda: dict.fromkeys(eng.STAT_KEYS, 0))
    errors: Counter = field(default_factory=Counter)
    fatal: str | None = None

    @classmethod
    def collect(cls, counts: Counts, notes: Notes) -> JudgeCounts:
        batches = list(notes.read().values())
        stats = eng.add_stats([b["engine"] for b in batches])
        fatal = notes.fatal()
        return cls(
            batches=len(batches),
            rows_in=counts.rows_in,
            rows_judged=counts.rows_kept,
            rows_rejected=counts.rows_rejected,
            reasons=Counter(counts.reasons),
            engine={k: stats[k] for k in eng.STAT_KEYS},
            errors=Counter(stats["errors"]),
            fatal=f"{type(fatal).__name__}: {fatal}" if fatal is not None else None,
        )

    @property
    def budget_exhausted(self) -> int:
        return self.reasons.get("budget_exhausted", 0)

    def metrics(self, spec: EngineSpec, attempted: int) -> dict:
        """The run's ``judge`` metrics."""
        e, ep = self.engine, spec.endpoints[ROLE]
        return {
            "judge": {
                "model": ep.model,
                "revision": ep.revision,
                "base_url": ep.url,
                "rows_attempted": attempted,
                "rows_judged": self.rows_judged,
                "rows_rejected": self.rows_rejected,
                "reasons": dict(self.reasons),
                "budget_exhausted": self.budget_exhausted > 0,
                "cache_hits": e["cache_hits"],
                "cache_misses": e["cache_misses"],
                "requests_sent": e["sent"],
                "retries": e["retries"],
                "prompt_tokens": e["prompt_tokens"],
                "completion_tokens": e["completion_tokens"],
                "gpu_seconds": e["busy_seconds"],
                "cost_usd": e["cost_usd"],
                "errors": dict(self.errors),
                "usd_per_judged_row": e["cost_usd"] / self.rows_judged if self.rows_judged else None,
                "max_usd": spec.max_usd,
                "gpu_usd_per_hour": spec.gpu_usd_per_hour,
            }
        }
