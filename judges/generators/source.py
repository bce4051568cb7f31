"""A generator as the first step of a pipeline: one unit per run, read = run the generator.

No batching of prompts across units on purpose: each generator is one whole-run algorithm (CycleAlign's
demo pool grows across rounds, I-SHEEP dedups instructions across the whole iteration, SCIR and
Multifaceted pair within a prompt), and its per-item work is model calls that the engine already
batches into the server at high concurrency — the parallelism lives in vLLM, not in the client.

What ``read`` returns (then ``ValidateStep(VALIDATION)`` checks the rows):
- tables by shape (``pairs`` → pairwise, ``listwise`` → listwise, ``sft`` → binary, label=True and
  policy ``<method>:sft``) with lineage filled in: format = method, source_file = the prompt source,
  source_row = the row's index in its shape, run_id;
- rejected: every drop the generator reported (step ``<method>``; a drop that carries a diagnostic —
  SCIR disagreements, CycleAlign unparseable rankings, I-SHEEP answers below the threshold — has step
  ``diagnostic:<method>`` and the diagnostic as ``raw``, so diagnostics live in the warehouse's
  quarantine, counted once, never exported), after the bad prompts-file lines (step ``prompts``).

Engines are built from an ``EngineSpec`` in ``setup`` (once per worker) unless given. The run's
metrics (engine totals, generator stats, drop reasons, policies) are a note (``judges.notes``); an
unreachable engine, a spent budget or a generator that cannot start is noted as the run's fatal error
(all or nothing: the generators' later steps depend on earlier answers, so a partial result would be
a biased sample).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from judges import engines as eng
from judges.engines import EngineSpec
from judges.errors import BudgetExhausted
from judges.generators.common import DIAGNOSTIC, GeneratorResult, model_name
from judges.generators.registry import SHAPE_OF, GeneratorInput, generator
from judges.notes import Notes
from schemas import records
from schemas.errors import PrefmillError
from schemas.registry import STEPS
from schemas.step import Reject, Resources, Source, SourceResult, rejected_table
from schemas.validation import BatchReport, ValidationConfig

# Synthetic SFT rows are all label=True by construction, so the binary label-balance rule does not apply.
VALIDATION = ValidationConfig(max_true_rate=1.0, unique_record_ids=False)
NOTE = "generator"


@STEPS.register(
    "generate",
    shapes=("pairwise", "listwise", "binary"),
    tags=("synthetic",),
    extra={"stage": "synthesize", "registry": "GENERATORS"},
)
class GeneratorSource(Source[int]):
    """Runs one registered generator over its prompts (one unit per run); its step name is the method."""

    def __init__(
        self,
        method: str,
        config: Any,
        *,
        source: str,
        run_id: str = "",
        prompts: list[list[dict]] | None = None,
        prompt_rejects: list[Reject] | None = None,
        seeds: str | None = None,
        iteration: int | None = None,
        spec: EngineSpec | None = None,
        engines: Mapping[str, Any] | None = None,
        embed: Callable[[list[str]], Any] | None = None,
        embed_factory: Callable[[], Callable[[list[str]], Any]] | None = None,
        notes: str | None = None,
    ):
        self.name = method
        super().__init__()
        self.entry = generator(method)
        self.method, self.config, self.source_label, self.run_id = method, config, source, run_id
        self.prompts, self.prompt_rejects = prompts, list(prompt_rejects or [])
        self.seeds, self.iteration = seeds, iteration
        self.spec, self.engines = spec, dict(engines) if engines is not None else None
        self._own = engines is None
        self.embed, self.embed_factory = embed, embed_factory
        self.notes = Notes(notes) if notes else None
        ep = spec.endpoints.get("policy") if spec is not None else None
        self.resources = Resources(endpoint=f"{ep.url} {ep.model}" if ep else None)

    def setup(self) -> None:
        if self.engines is None and self.spec is not None:
            self.engines = self.spec.build()
        if self.embed is None and self.embed_factory is not None and self.entry.extra.get("embed"):
            self.embed = self.embed_factory()

    def teardown(self) -> None:
        if self._own and self.engines:
            eng.close_engines(self.engines)
            self.engines = None

    def plan(self) -> list[int]:
        return [0]

    def read(self, unit: int) -> SourceResult:
        engines = self.engines or {}
        note: dict[str, Any] = {"models": {role: model_name(e) for role, e in engines.items()}}
        try:
            inp = GeneratorInput(engines, self.prompts, self.seeds, self.iteration, self.embed)
            res = self.entry.obj(inp, self.config)
            note.update(_summary(res, self.prompts))
            exhausted = eng.snapshot(engines)["errors"].get("budget_exhausted", 0)
            if exhausted:
                raise BudgetExhausted(
                    f"budget exhausted ({exhausted} request(s) refused); nothing was published — "
                    "rerun with a larger --max-usd to resume from the request cache"
                )
            tables = self._tables(res)
            rejected = self._rejected(res)
            note["generated"] = {s: t.num_rows for s, t in tables.items()}
            records_read = note["prompts"] + len(self.prompt_rejects)
            return SourceResult(tables, rejected, records_read)
        except PrefmillError as e:  # engine gone, budget spent, a generator that cannot start
            if self.notes is None:
                raise
            self.notes.fail(e)
            return SourceResult({})
        finally:
            if self.notes is not None:
                self.notes.write(NOTE, {**note, "engine": eng.snapshot(engines)})

    def _tables(self, res: GeneratorResult) -> dict[str, pa.Table]:
        lineage = {"format": self.method, "source_file": self.source_label, "run_id": self.run_id}
        out = {}
        for attr, shape in SHAPE_OF.items():
            rows = getattr(res, attr)
            if rows:
                out[shape] = records.to_table([{**r, **lineage, "source_row": i} for i, r in enumerate(rows)], shape)
        return out

    def _rejected(self, res: GeneratorResult) -> pa.Table:
        drops = rejected_table(res.rejects, self.run_id)
        drops = drops.set_column(
            drops.schema.get_field_index("source_file"),
            "source_file",
            pa.array([self.source_label] * drops.num_rows, pa.string()),
        )
        return pa.concat_tables([rejected_table(self.prompt_rejects, self.run_id), drops])


def _summary(res: GeneratorResult, prompts: list | None) -> dict[str, Any]:
    """What the run's metrics say about the generator's output."""
    kinds = Counter(r.step.startswith(DIAGNOSTIC) for r in res.rejects)
    policies = sorted({r["policy"] for attr in SHAPE_OF for r in getattr(res, attr) if r.get("policy")})
    return {
        "prompts": len(prompts) if prompts is not None else (res.stats or {}).get("seeds", 0),
        "dropped": len(res.rejects),
        "drop_reasons": dict(res.dropped),
        "diagnostics": kinds[True],
        "policies": policies,
        "stats": {k: v for k, v in (res.stats or {}).items() if k not in ("pool", "taxonomy")},
    }


def invalid_by_shape(rejected: pa.Table, step: str = "validate") -> Counter:
    """Rows a validation step rejected, per shape."""
    mask = pc.equal(rejected.column("step"), step)
    return Counter(rejected.filter(mask).column("shape").to_pylist())


@dataclass
class SynthCounts:
    generated: int = 0  # candidate rows the generator produced
    dropped: int = 0  # items the generator dropped (one quarantine row each)
    rows_kept: int = 0  # staged after validation (duplicates are found by the commit)
    rows_invalid: int = 0
    shapes: Counter = field(default_factory=Counter)  # staged rows per shape
    reasons: Counter = field(default_factory=Counter)  # quarantine reasons
    diagnostics: int = 0  # drops that carry a diagnostic
    batch_reports: list[BatchReport] = field(default_factory=list)


def synth_metrics(method: str, note: dict, counts: SynthCounts) -> dict:
    """The run's ``synthesize`` metrics from the generator's note and the run's counts."""
    e = dict(note.get("engine") or eng.add_stats([]))
    e["gpu_seconds"] = e.pop("busy_seconds", 0.0)
    pairs, kept = counts.shapes.get("pairwise", 0), counts.rows_kept
    return {
        "synthesize": {
            "method": method,
            "models": note.get("models", {}),
            "prompts": note.get("prompts", 0),
            "generated": counts.generated,
            "dropped": counts.dropped,
            "drop_reasons": note.get("drop_reasons", {}),
            "rows_by_shape": dict(counts.shapes),
            "kept_pairs": pairs,
            "engine": e,
            "usd_per_kept_pair": e["cost_usd"] / pairs if pairs else None,
            "gpu_seconds_per_kept_pair": e["gpu_seconds"] / pairs if pairs else None,
            "tokens_per_kept_row": (e["prompt_tokens"] + e["completion_tokens"]) / kept if kept else None,
            "diagnostics": counts.diagnostics,
            "generator_stats": note.get("stats", {}),
        }
    }
