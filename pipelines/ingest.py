"""The ingest pipeline: ``AdaptSource`` (read → adapt → normalise/hash) → ``ValidateStep`` (+ any
extra checks) on the executor, kept rows staged per shape and the rejected rows as one quarantine shard.

The step logic lives in ``schemas.ingest`` and ``schemas.validation``; ``pipelines.executor`` runs
it on Beam, one element per file chunk (in-process for small inputs, on workers forked from a warm
zygote for inputs of ``pipelines.workers.PARALLEL_MIN_BYTES`` or more; ``--direct_num_workers=N``
asks for N of them, 1 for in-process; any other Beam option passes through). The warehouse commits
what is staged (see flows/jobs.py).
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines import workers
from pipelines.executor import Executor, write_parquet
from schemas.checks import build_checks
from schemas.ingest import AdaptSource
from schemas.readers import DEFAULT_CHUNK_ROWS, DEFAULT_MAX_RECORD_BYTES
from schemas.step import Counts, FitStep, Step, as_quarantine
from schemas.validation import ValidateStep, ValidationConfig
from warehouse import RunCounts, run_counts

QUARANTINE_SHARD = "rejected.parquet"


@dataclass
class IngestCounts:
    """What one ingest staged, read off the steps' own counters (pipeline order: adapt, validate, ...)."""

    steps: list[Counts] = field(default_factory=list)
    shapes: Counter = field(default_factory=Counter)  # staged rows per shape

    @property
    def run(self) -> RunCounts:
        return run_counts(self.steps)

    @property
    def records_read(self) -> int:
        return self.run.records_read

    @property
    def rows_read(self) -> int:
        return self.run.rows_read

    @property
    def rows_kept(self) -> int:
        """Staged after every step (duplicates are found at commit)."""
        return self.run.rows_kept

    @property
    def rows_rejected(self) -> int:
        return self.run.rows_rejected

    @property
    def reasons(self) -> Counter:
        return sum((c.reasons for c in self.steps), Counter())


def ingest_steps(
    validation: ValidationConfig | None = None, checks: Sequence[str] | None = None
) -> list[Step | FitStep[Any]]:
    """The steps after the source: the Arrow schema + GX row rules, then the ingest checks
    (``checks`` names them; None runs the default ones, e.g. special_tokens)."""
    return [ValidateStep(validation), *build_checks(checks)]


def run_ingest(
    paths: list[str],
    format_name: str,
    *,
    run_id: str,
    staging: Path,
    work: Path | None = None,
    mapping: str | dict | None = None,
    adapter_options: dict | None = None,
    beam_args: list[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    validation: ValidationConfig | None = None,
    steps: Sequence[Step | FitStep[Any]] | None = None,
    checks: Sequence[str] | None = None,
) -> IngestCounts:
    """Run the ingest pipeline over ``paths``: kept rows under ``staging/<shape>/``, rejected rows as
    one shard under ``staging/quarantine/``; ``work`` (default: beside ``staging``) is scratch space.

    ``steps`` replaces the default ``ingest_steps(validation, checks)`` (append a step to that list to
    add one). Large inputs run on forked parallel workers; the staged rows, rejects and counts are the
    same either way. Raises SourceError (missing/unreadable file) and UnknownFormat/MappingError
    before any work.
    """
    source = AdaptSource(
        paths,
        format_name,
        mapping=mapping,
        adapter_options=adapter_options,
        run_id=run_id,
        chunk_rows=chunk_rows,
        max_record_bytes=max_record_bytes,
    )
    source.check()
    n_workers = workers.parallel_workers(source.input_bytes(), beam_args)
    warm = None
    if n_workers > 1:
        workers.start_zygote()  # boots while the executor plans the chunks
        warm = workers.warm_validation()
    work = Path(work) if work is not None else staging.with_name(staging.name + ".work")
    executor = Executor(work, run_id=run_id, beam_args=beam_args, workers=n_workers)
    try:
        result = executor.run_source(source, ingest_steps(validation, checks) if steps is None else steps, out=staging)
        rejected = result.rejected()
        staging.mkdir(parents=True, exist_ok=True)
        if rejected.num_rows:
            write_parquet(as_quarantine(rejected), staging / "quarantine" / QUARANTINE_SHARD)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if warm is not None:
        warm.join()
    return IngestCounts(result.counts, Counter(result.shapes))
