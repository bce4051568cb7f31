"""Decontamination as one run: read a version → reject rows holding benchmark prompts → publish a child.

Every shape the version has is checked (prompt turns; responses too with ``responses``). Contaminated rows
leave the child version with reason ``contaminated:<benchmark>`` and the match (coverage, benchmark item)
in ``removals.detail``; the report (also in the version's lineage) gives per benchmark its items, the items
skipped with reasons, and the rows it found.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from curation.benchmarks import DEFAULT_BENCHMARKS
from curation.decontam import DEFAULT_NGRAM, DEFAULT_THRESHOLD, DecontamError
from curation.decontam_step import REASON, STEP, DecontamConfig, load
from pipelines.decontaminate import run_decontamination
from schemas.canonical import SCHEMAS
from schemas.step import Counts, as_removals
from warehouse import CommitResult, Warehouse, run_counts, step_counts


@dataclass
class DecontamReport:
    run_id: str
    dataset: str
    parent_version: str
    commit: CommitResult
    report: dict[str, Any]


def decontaminate(
    wh: Warehouse,
    dataset: str,
    benchmarks: Sequence[str] | None = None,
    ngram: int = DEFAULT_NGRAM,
    threshold: float = DEFAULT_THRESHOLD,
    version: str | None = None,
    responses: bool = False,
    field: str | None = None,
    beam_args: list[str] | None = None,
) -> DecontamReport:
    """Check ``dataset`` (``version``, default latest) against benchmark prompt files (default: the bundled
    MT-Bench and Vicuna-bench questions) and publish the clean rows as a child version."""
    config = DecontamConfig(tuple(str(b) for b in benchmarks or DEFAULT_BENCHMARKS), ngram, threshold, responses, field)
    benches, index = load(config)  # bad files / parameters: one line, before a run exists
    parent = wh.resolve_version(dataset, version)
    params = {"parent_version": parent, **config.params(), "benchmarks": [b.path for b in benches]}
    with wh.run("decontaminate", dataset, params) as run:
        tables = {s: wh.read(dataset, s, parent) for s in SCHEMAS}
        tables = {s: t for s, t in tables.items() if t.num_rows}
        if not tables:
            raise DecontamError(f"{dataset}@{parent[:12]} has no rows to check")
        kept: dict[str, pa.Table] = {}
        removals: list[pa.Table] = []
        totals: dict[str, Counts] = {}
        by_shape: dict[str, dict[str, int]] = {}
        for shape, table in tables.items():
            res = run_decontamination(
                table, shape, config, work=run.work / shape, run_id=run.run_id, beam_args=beam_args
            )
            kept[shape] = res.table(shape) if res.shapes.get(shape) else table.slice(0, 0)
            removals.append(as_removals(res.rejected()))
            for c in res.counts:
                totals[c.step] = totals[c.step] + c if c.step in totals else c
            found = res.count(STEP)
            by_shape[shape] = {"checked": found.rows_in, "contaminated": found.rows_rejected}
        counts: list[Counts] = list(totals.values())
        found_by = Counter(
            {k.split(":", 1)[1]: v for k, v in totals[STEP].reasons.items() if k.startswith(f"{REASON}:")}
        )
        short = index.short_items()
        report = {
            "ngram": ngram,
            "threshold": threshold,
            "responses": responses,
            "field": field,
            "rows_checked": totals[STEP].rows_in,
            "rows_contaminated": totals[STEP].rows_rejected,
            "shapes": by_shape,
            "benchmarks": {
                b.name: {**b.summary(), "items_exact_only": short[b.name], "rows_contaminated": found_by[b.name]}
                for b in benches
            },
            "embedding_stage": "not built",
        }
        run.metrics({"decontamination": report})
        result = run.commit_derived(
            parent,
            kept,
            pa.concat_tables(removals),
            run_counts(counts),
            step_counts(counts),
            extra={"decontamination": report},
        )
    return DecontamReport(run.run_id, dataset, parent, result, report)


def summary(rep: DecontamReport) -> dict[str, Any]:
    """What the CLI prints: the version published, the counts and the per-benchmark report."""
    return {
        "run_id": rep.run_id,
        "dataset": rep.dataset,
        "parent_version": rep.parent_version,
        "version_id": rep.commit.version_id,
        "status": rep.commit.status,
        "rows_read": rep.commit.counts.rows_read,
        "rows_kept": rep.commit.counts.rows_kept,
        "rows_rejected": rep.commit.counts.rows_rejected,
        **rep.report,
    }
