"""Synthesis on the executor: ``GeneratorSource`` (one registered generator) → ``ValidateStep``.

Kept rows land in the run's staging directory by shape; rejected rows (the generator's drops with
their diagnostics, bad prompt lines, validation failures) come back for the quarantine, and the
whole-batch rules run on each shape's kept rows. judges/generators/source.py says what each row is.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from judges.generators.prompts import distinct_prompts
from judges.generators.source import NOTE, VALIDATION, GeneratorSource, SynthCounts, invalid_by_shape, synth_metrics
from judges.notes import Notes
from pipelines.executor import Executor
from schemas.canonical import schema_for
from schemas.step import REJECTED, Counts
from schemas.validation import ValidateStep, validate_batch
from warehouse import Warehouse

PROMPT_SHAPES = ("pairwise", "binary", "listwise", "ratings")


@dataclass
class SynthRun:
    counts: SynthCounts
    steps: list[Counts]  # the generator's, then validate's
    rejected: pa.Table  # REJECTED rows for the quarantine
    note: dict  # the generator's note: engine totals, models, stats, drop reasons, policies, prompts
    fatal: BaseException | None = None  # the error that stopped the generator (nothing may be published)

    def metrics(self, method: str) -> dict:
        return synth_metrics(method, self.note, self.counts)


def run_synthesis(
    source: GeneratorSource, *, work: Path, staging: Path, beam_args: list[str] | None = None
) -> SynthRun:
    """Run ``source`` and validation; kept rows are staged under ``staging/<shape>/``."""
    notes = Notes(Path(work) / "synth-notes")
    shutil.rmtree(notes.root, ignore_errors=True)
    source.notes = notes
    ex = Executor(Path(work), run_id=source.run_id, beam_args=beam_args)
    res = ex.run_source(source, [ValidateStep(VALIDATION)], out=Path(staging))
    note = notes.read().get(NOTE, {})
    fatal = notes.fatal()
    if fatal is not None:
        return SynthRun(SynthCounts(), res.counts, REJECTED.empty_table(), note, fatal)
    rejected = res.rejected()
    gen, val = res.count(source.step_name), res.count("validate")
    invalid = invalid_by_shape(rejected)
    counts = SynthCounts(
        generated=gen.rows_kept,
        dropped=note.get("dropped", 0),
        rows_kept=val.rows_kept,
        rows_invalid=val.rows_rejected,
        shapes=Counter(res.shapes),
        reasons=Counter(gen.reasons) + Counter(val.reasons),
        diagnostics=note.get("diagnostics", 0),
    )
    for shape in note.get("generated", {}):
        kept = res.table(shape) if res.shapes.get(shape) else schema_for(shape).empty_table()
        counts.batch_reports.append(validate_batch(kept, shape, VALIDATION, rejected=invalid[shape]))
    return SynthRun(counts, res.counts, rejected, note, None)


def dataset_prompts(wh: Warehouse, dataset: str, version: str | None, limit: int | None) -> tuple[list, str]:
    """Distinct prompts (first occurrence order, over every shape) of a dataset version, and a source label."""
    vid = wh.resolve_version(dataset, version)
    tables = (wh.read(dataset, shape, vid).select(["prompt_id", "prompt"]) for shape in PROMPT_SHAPES)
    return distinct_prompts(tables, limit), f"dataset:{dataset}@{vid}"


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
