"""The judge step in Apache Beam: batches of pairwise rows → a position-swapped verdict per row.

Elements are ``(batch_index, pa.Table)`` of pairwise rows. The DoFn builds the HTTP engine and the
persistent request cache once per worker (``setup``) and asks ``judges.primitives.pairwise_verdict``
for each batch (one ``engine.run``, so the server's continuous batching fills up). Per batch it
writes, named by the batch index (a retried bundle overwrites instead of double-counting):

- ``<staging>.judged/<i>.parquet``: the batch's rows with the verdict columns (null where no verdict);
- ``<staging>/quarantine/<i>.parquet``: a ``Reject(step="judge")`` per row without a verdict;
- ``<staging>.counts/<i>.json``: rows in / judged / rejected, reasons and the engine-stat deltas
  (cache hits and misses, tokens, GPU-seconds, cost), summed by the driver after the pipeline.

A budget cap is per engine, i.e. per worker (one worker with the default FnApiRunner). Once it is
spent the engine refuses to send (cached answers are still served), so the remaining rows are
rejected with ``budget_exhausted``. A server that disappears (``EngineUnreachable``) stops the
worker: its batches are marked ``fatal`` and the driver fails the run, so nothing half-done is published.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from judges import primitives
from judges.errors import EngineError
from judges.types import Engine, EngineStats
from pipelines.ingest import beam_options, counts_dir_for, write_parquet
from schemas.records import conversation_text
from schemas.step import Reject, rejects_table

STEP = "judge"
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


@dataclass(frozen=True)
class JudgeSpec:
    """Everything a worker needs to build its engine (picklable: it travels to cluster workers)."""

    base_url: str
    model: str
    revision: str = ""  # the driver's /v1/models answer, so every worker keys the cache the same way
    cache_path: str | None = None
    concurrency: int = 64
    max_usd: float | None = None
    max_requests: int | None = None
    gpu_usd_per_hour: float = 0.0
    engine_options: dict = field(default_factory=dict)  # HTTPEngine kwargs: timeout_s, max_retries, ...
    verdict_options: dict = field(default_factory=dict)  # pairwise_verdict kwargs: guided, use_logprobs, ...

    def build(self):
        """(engine, cache) for one worker."""
        from judges.cache import RequestCache
        from judges.cost import Budget, Price
        from judges.http_engine import HTTPEngine

        cache = RequestCache(self.cache_path) if self.cache_path else None
        capped = self.max_usd is not None or self.max_requests is not None
        budget = Budget(max_usd=self.max_usd, max_requests=self.max_requests) if capped else None
        engine = HTTPEngine(
            self.base_url,
            self.model,
            revision=self.revision,
            concurrency=self.concurrency,
            cache=cache,
            budget=budget,
            price=Price(gpu_usd_per_hour=self.gpu_usd_per_hour),
            **self.engine_options,
        )
        return engine, cache


@dataclass
class JudgeCounts:
    batches: int = 0
    rows_in: int = 0
    rows_judged: int = 0
    rows_rejected: int = 0
    reasons: Counter = field(default_factory=Counter)
    engine: dict = field(default_factory=lambda: dict.fromkeys(_STAT_KEYS, 0))
    errors: Counter = field(default_factory=Counter)
    fatal: str | None = None

    def add(self, d: dict) -> None:
        self.batches += 1
        self.rows_in += d["rows_in"]
        self.rows_judged += d["rows_judged"]
        self.rows_rejected += d["rows_rejected"]
        self.reasons.update(d["reasons"])
        self.errors.update(d["engine"].get("errors") or {})
        for k in _STAT_KEYS:
            self.engine[k] += d["engine"].get(k) or 0
        self.fatal = self.fatal or d.get("fatal")

    @property
    def budget_exhausted(self) -> int:
        return self.reasons.get("budget_exhausted", 0)


def _text(conv: list[dict] | None) -> str:
    return conversation_text(conv or [])


def judge_batch(engine: Engine, table: pa.Table, **verdict_options: Any) -> tuple[pa.Table, list[Reject]]:
    """The step itself (no Beam): ``table`` plus the verdict columns, and a Reject per row without a verdict."""
    rows = table.select(["record_id", "prompt", "chosen", "rejected", "label", "source_file", "source_row"]).to_pylist()
    items = [(r["prompt"], _text(r["chosen"]), _text(r["rejected"])) for r in rows]
    verdicts = primitives.pairwise_verdict(engine, items, **verdict_options) if items else []
    cols: dict[str, list] = {c: [] for c in VERDICT_COLUMNS}
    rejects = []
    for row, v in zip(rows, verdicts):
        ok = v.ok and v.prob_a is not None
        cols["judge_prob_chosen"].append(v.prob_a if ok else None)
        cols["judge_p_ab"].append(v.p_ab if ok else None)
        cols["judge_p_ba"].append(v.p_ba if ok else None)
        cols["judge_agrees"].append(v.prob_a >= 0.5 if ok and row["label"] != "tie" else None)
        cols["judge_model"].append(engine.model if ok else None)
        cols["judge_template_id"].append(v.template_id if ok else None)
        cols["judge_mode"].append(v.mode if ok else None)
        if not ok:
            rejects.append(
                Reject(
                    STEP,
                    v.reason or "judge_failed",
                    v.detail,
                    row["source_file"],
                    row["source_row"],
                    "pairwise",
                    row["record_id"],
                    {"judge_outputs": list(v.raw)} if any(v.raw) else None,
                )
            )
    out = table
    for f in VERDICT_FIELDS:
        out = out.append_column(f, pa.array(cols[f.name], f.type))
    return out, rejects


def _delta(after: EngineStats, before: dict) -> dict:
    now = after.as_dict()
    d = {k: now[k] - before[k] for k in _STAT_KEYS}
    errors = {k: v - before["errors"].get(k, 0) for k, v in now["errors"].items()}
    d["errors"] = {k: v for k, v in errors.items() if v}
    return d


def _snapshot(stats: EngineStats) -> dict:
    d = stats.as_dict()
    d["errors"] = dict(d["errors"])
    return d


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def judged_dir_for(staging: Path) -> Path:
    return staging.with_name(staging.name + ".judged")


class JudgeBatchFn(beam.DoFn):
    def __init__(self, spec: JudgeSpec, run_id: str, staging: str):
        self.spec, self.run_id, self.staging = spec, run_id, staging
        self.engine = self.cache = None
        self.fatal: str | None = None

    def setup(self):
        # One engine (HTTP pool + event loop) and one cache connection per worker, never per batch.
        self.engine, self.cache = self.spec.build()

    def process(self, element: tuple[int, pa.Table]):
        idx, table = element
        staging = Path(self.staging)
        name = f"{idx:06d}"
        counts = {
            "batch": idx,
            "rows_in": table.num_rows,
            "rows_judged": 0,
            "rows_rejected": 0,
            "reasons": {},
            "engine": {},
            "fatal": self.fatal,
        }
        if self.fatal is None:
            before = _snapshot(self.engine.stats)
            try:
                judged, rejects = judge_batch(self.engine, table, **self.spec.verdict_options)
            except EngineError as e:  # the server is gone: no row of this worker can succeed
                self.fatal = counts["fatal"] = f"{type(e).__name__}: {e}"
            else:
                write_parquet(judged, judged_dir_for(staging) / f"{name}.parquet")
                if rejects:
                    write_parquet(rejects_table(rejects, self.run_id), staging / "quarantine" / f"{name}.parquet")
                counts.update(
                    rows_judged=table.num_rows - len(rejects),
                    rows_rejected=len(rejects),
                    reasons=dict(Counter(r.reason for r in rejects)),
                )
            counts["engine"] = _delta(self.engine.stats, before)
        _write_json(counts_dir_for(staging) / f"{name}.json", counts)
        yield counts

    def teardown(self):
        if self.engine is not None:
            self.engine.close()
        if self.cache is not None:
            self.cache.close()


def batches_of(table: pa.Table, batch_rows: int) -> list[tuple[int, pa.Table]]:
    # take() copies the rows: a zero-copy slice would pickle the whole table's buffers into every element.
    return [
        (i, table.take(pa.array(range(off, min(off + batch_rows, table.num_rows)), pa.int64())))
        for i, off in enumerate(range(0, table.num_rows, batch_rows))
    ]


def run_judge(
    table: pa.Table,
    spec: JudgeSpec,
    *,
    run_id: str,
    staging: Path,
    batch_rows: int = 128,
    beam_args: list[str] | None = None,
) -> tuple[pa.Table | None, JudgeCounts]:
    """Judge every row of ``table`` in a Beam pipeline; returns (judged rows in input order, counts).

    The judged table is None when a worker hit a fatal engine error (``counts.fatal``)."""
    batches = batches_of(table, max(1, int(batch_rows)))
    counts = JudgeCounts()
    if not batches:
        return table, counts
    staging.mkdir(parents=True, exist_ok=True)
    fn = JudgeBatchFn(spec, run_id, str(staging))
    with beam.Pipeline(options=beam_options(beam_args)) as p:
        _ = p | "Batches" >> beam.Create(batches, reshuffle=len(batches) > 1) | "Judge" >> beam.ParDo(fn)
    for f in sorted(counts_dir_for(staging).glob("*.json")):
        counts.add(json.loads(f.read_text()))
    if counts.batches != len(batches) and counts.fatal is None:
        counts.fatal = f"only {counts.batches} of {len(batches)} batches reported counts"
    if counts.fatal:
        return None, counts
    parts = [pq.read_table(judged_dir_for(staging) / f"{i:06d}.parquet") for i, _ in batches]
    return pa.concat_tables(parts), counts
