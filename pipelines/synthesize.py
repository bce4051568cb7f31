"""Synthetic preference generation: run one generator and stage its output like the Beam pipelines do.

No Beam graph here on purpose: each generator is one whole-run algorithm (CycleAlign's demo pool
grows across rounds, I-SHEEP dedups instructions across the whole iteration, SCIR and Multifaceted
pair within a prompt), and its per-item work is model calls that the engine already batches into
the server at high concurrency — the parallelism lives in vLLM, not in the client.

Staging (the contract the warehouse commit checks):
- rows: ``pairs`` → ``pairwise``, ``listwise`` → ``listwise``, ``sft`` → ``binary`` (label=True,
  policy ``<method>:sft``), lineage filled in (format = method, source_file = the prompt source,
  source_row = the row's index in its shape), validated with ``validate_rows``; failures are
  quarantine rows of step ``validate``;
- drops: one quarantine row per dropped item, reason = the generator's drop reason. Diagnostics
  (SCIR disagreements, CycleAlign unparseable rankings, I-SHEEP answers below the threshold) are the
  explanation of a drop, so each rides on the quarantine row of the drop it explains: step
  ``diagnostic:<method>``, the diagnostic dict as ``raw``. Plain drops have step ``<method>``. So the
  diagnostics live in the warehouse (the ``quarantine`` view), are counted exactly once, and are never
  exported.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import orjson

from judges.generators.common import GeneratorError, GeneratorResult, as_messages, prompt_text
from pipelines.ingest import write_parquet
from schemas import records
from schemas.step import Reject, rejects_table
from schemas.validation import BatchReport, ValidationConfig, validate_batch, validate_rows

METHODS = ("cyclealign", "scir", "isheep", "multifaceted")
SHAPE_OF = {"pairs": "pairwise", "listwise": "listwise", "sft": "binary"}
# Synthetic SFT rows are all label=True by construction, so the binary label-balance rule does not apply.
VALIDATION = ValidationConfig(max_true_rate=1.0, unique_record_ids=False)


# ---------------------------------------------------------------------------------------- prompts


def read_prompts_file(path: str | Path) -> tuple[list[list[dict]], list[Reject]]:
    """JSONL of ``{"prompt": text | [{role, content}, ...]}`` → message lists, and a Reject per bad line."""
    path = Path(path)
    if not path.is_file():
        raise GeneratorError(f"prompts file not found: {path}")
    prompts, rejects = [], []
    src = str(path.resolve())
    with path.open("rb") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                rejects.append(Reject("prompts", "invalid_json", str(e), src, i, raw=line))
                continue
            if not isinstance(obj, dict) or "prompt" not in obj:
                rejects.append(Reject("prompts", "missing_field", 'expected {"prompt": ...}', src, i, raw=line))
                continue
            try:
                msgs = as_messages(obj["prompt"])
            except GeneratorError as e:
                rejects.append(Reject("prompts", "bad_type", str(e), src, i, raw=line))
                continue
            if not any(m["content"].strip() for m in msgs if isinstance(m["content"], str)):
                rejects.append(Reject("prompts", "empty_prompt", "", src, i, raw=line))
                continue
            prompts.append(msgs)
    return prompts, rejects


# ---------------------------------------------------------------------------------------- running


def method_config(method: str, overrides: dict | None):
    """The method's config dataclass with ``overrides``; an unknown key is a clear error."""
    from judges.generators.cyclealign import CycleAlignConfig
    from judges.generators.isheep import ISheepConfig
    from judges.generators.multifaceted import MultifacetedConfig
    from judges.generators.scir import SCIRConfig

    cls = {
        "cyclealign": CycleAlignConfig,
        "scir": SCIRConfig,
        "isheep": ISheepConfig,
        "multifaceted": MultifacetedConfig,
    }[method]
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides or {}) - known)
    if unknown:
        raise GeneratorError(f"unknown {method} setting(s) {unknown}; known: {', '.join(sorted(known))}")
    cfg = cls()
    return replace(cfg, **(overrides or {}))


def run_method(
    method: str,
    engines: dict[str, Any],
    prompts: list | None,
    config,
    *,
    seeds: Any = None,
    iteration: int | None = None,
    embed: Callable | None = None,
) -> GeneratorResult:
    """Dispatch to the generator. ``engines`` by role: policy (required), judge, reference."""
    policy, judge, reference = engines["policy"], engines.get("judge"), engines.get("reference")
    if method == "cyclealign":
        from judges.generators.cyclealign import run_cyclealign

        return run_cyclealign(
            policy, judge or policy, prompts, config, embed=embed if embed is not None else default_embedder()
        )
    if method == "scir":
        from judges.generators.scir import run_scir

        it = iteration if iteration is not None else (1 if reference is not None else 0)
        return run_scir(policy, reference, prompts, config, judge=judge, iteration=it)
    if method == "isheep":
        from judges.generators.isheep import SeedTask, run_isheep

        if prompts is not None:  # prompts given instead of seed tasks: each becomes an instruction seed
            seeds = [SeedTask(prompt_text(p)) for p in prompts]
        return run_isheep(
            policy,
            seeds,
            config,
            base=judge,
            judge_mode="base" if judge is not None else "current",
            iteration=iteration or 0,
        )
    if method == "multifaceted":
        from judges.generators.multifaceted import run_multifaceted

        return run_multifaceted(policy, prompts, config)
    raise GeneratorError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")


# ---------------------------------------------------------------------------------------- staging


@dataclass
class StagedCounts:
    generated: int = 0  # candidate rows the generator produced
    dropped: int = 0  # items the generator dropped (one quarantine row each)
    rows_kept: int = 0  # staged after validation (duplicates are found by the commit)
    rows_invalid: int = 0
    shapes: Counter = field(default_factory=Counter)  # staged rows per shape
    reasons: Counter = field(default_factory=Counter)  # quarantine reasons
    diagnostics: int = 0  # drops that carry a diagnostic
    diagnostics_unmatched: int = 0  # diagnostics no drop reason accounts for (none with the current generators)
    batch_reports: list[BatchReport] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return self.generated + self.dropped

    @property
    def rows_rejected(self) -> int:
        return self.dropped + self.rows_invalid


def _diagnostic_reasons(d: dict) -> list[str]:
    """The drop reasons a diagnostic may explain, most specific first (see each generator's drop names)."""
    out = []
    if d.get("scir_status"):
        out.append(f"scir_{d['scir_status']}")
    if d.get("status"):
        out += [f"prompt_blackbox_{d['status']}", str(d["status"])]
    return out


def drop_rejects(res: GeneratorResult, method: str, source: str) -> tuple[list[Reject], int]:
    """One Reject per dropped item; diagnostics attached to the drops they explain. Returns (rejects, unmatched)."""
    left = Counter({k: v for k, v in res.dropped.items() if v > 0})
    rejects, unmatched = [], 0
    for d in res.diagnostics:
        reason = next((r for r in _diagnostic_reasons(d) if left[r] > 0), None)
        if reason is None:
            unmatched += 1
            continue
        left[reason] -= 1
        rejects.append(Reject(f"diagnostic:{method}", reason, "", source, raw=d))
    for reason, n in sorted(left.items()):
        rejects.extend(Reject(method, reason, "", source) for _ in range(n))
    return rejects, unmatched


def stage_result(
    res: GeneratorResult,
    *,
    method: str,
    run_id: str,
    staging: Path,
    source: str,
    validation: ValidationConfig = VALIDATION,
) -> StagedCounts:
    """Validate and write the generator's rows and drops under ``staging``; returns the counts."""
    counts = StagedCounts()
    rejects, counts.diagnostics_unmatched = drop_rejects(res, method, source)
    counts.dropped = len(rejects)
    counts.diagnostics = sum(r.step.startswith("diagnostic:") for r in rejects)
    for attr, shape in SHAPE_OF.items():
        rows = getattr(res, attr)
        if not rows:
            continue
        counts.generated += len(rows)
        lineage = {"format": method, "source_file": source, "run_id": run_id}
        table = records.to_table([{**r, **lineage, "source_row": i} for i, r in enumerate(rows)], shape)
        good, bad = validate_rows(table, shape, validation)
        rejects.extend(bad)
        counts.rows_invalid += len(bad)
        counts.batch_reports.append(validate_batch(good, shape, validation, rejected=len(bad)))
        if good.num_rows:
            write_parquet(good, staging / shape / f"{method}.parquet")
            counts.rows_kept += good.num_rows
            counts.shapes[shape] += good.num_rows
    counts.reasons = Counter(r.reason for r in rejects)
    if rejects:
        write_parquet(rejects_table(rejects, run_id), staging / "quarantine" / f"{method}.parquet")
    return counts


def stage_prompt_rejects(rejects: list[Reject], run_id: str, staging: Path) -> None:
    if rejects:
        write_parquet(rejects_table(rejects, run_id), staging / "quarantine" / "prompts.parquet")


def source_label(path: str | os.PathLike) -> str:
    return str(Path(path).resolve())


def default_embedder() -> Callable[[list[str]], Any]:
    """The curation Embedder (offline MiniLM) for CycleAlign's demo retrieval; loads on first call."""
    from curation.embed import Embedder

    emb = Embedder()
    return lambda texts: emb.embed(list(texts)).vectors


def bt_rm(model: Any, embed: Callable[[list[str]], Any]) -> Callable[[list[str], list[str], list[str]], list[float]]:
    """SCIR's optional third RM from curation.reward.BTRewardModel + an embedder: (prompts, y1s, y2s) → P(y1 ≻ y2)."""
    from curation.reward import response_texts

    def rm(prompts: list[str], y1: list[str], y2: list[str]) -> list[float]:
        e1 = embed(response_texts(prompts, y1, model.recipe))
        e2 = embed(response_texts(prompts, y2, model.recipe))
        return [float(p) for p in model.prob(e1, e2)]

    return rm
