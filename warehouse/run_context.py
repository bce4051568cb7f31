"""``with wh.run(kind, dataset, params) as run:`` — one run's lifecycle in one place.

Entering begins the run (a ``running`` row in ``meta.runs``) and gives it a staging directory and a
scratch directory for the executor. Leaving by an exception marks the run failed with that error
(nothing is published; its quarantine is kept) and re-raises; leaving normally after a commit or
``finish`` is the success path. Either way the scratch directory is removed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.step import as_quarantine
from warehouse.counts import CommitResult, RunCounts, StepCount

if TYPE_CHECKING:
    from warehouse.core import Warehouse


@dataclass
class Run:
    """A running run: where to stage, and how to finish it."""

    wh: Warehouse
    run_id: str
    kind: str
    dataset: str

    @property
    def staging(self) -> Path:
        return self.wh.staging_dir(self.run_id)

    @property
    def work(self) -> Path:
        """Scratch space for the executor (intermediate shards, counts), beside the staging area."""
        path = work_dir(self.wh, self.run_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def commit(
        self,
        counts: RunCounts,
        steps: list[StepCount] | None = None,
        policies: list | None = None,
        extra: dict | None = None,
    ) -> CommitResult:
        return self.wh.commit(self.run_id, self.dataset, counts, steps, policies, extra)

    def commit_derived(
        self,
        parent_version: str,
        tables: dict[str, pa.Table],
        removals: pa.Table | None,
        counts: RunCounts,
        steps: list[StepCount] | None = None,
        extra: dict | None = None,
    ) -> CommitResult:
        return self.wh.commit_derived(self.run_id, self.dataset, parent_version, tables, removals, counts, steps, extra)

    def quarantine(self, rejected: pa.Table, name: str) -> None:
        """Stage a step's rejected rows (``REJECTED`` shape) as the quarantine shard ``name``; the commit (or a
        failed run) registers every staged shard. Nothing is written when there is nothing to say."""
        if rejected.num_rows:
            path = self.staging / "quarantine" / f"{name}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")  # never picked up half-written
            pq.write_table(as_quarantine(rejected), tmp, compression="zstd")
            tmp.replace(path)

    def metrics(self, metrics: dict[str, Any]) -> None:
        self.wh.set_run_metrics(self.run_id, metrics)

    def finish(self, rows_read: int) -> None:
        """End a run whose output is an artifact (a model, groups), not a version."""
        self.wh.finish_run(self.run_id, rows_read)


def work_dir(wh: Warehouse, run_id: str) -> Path:
    staging = wh.layout.staging(run_id)
    return staging.with_name(staging.name + ".work")


@contextmanager
def run_context(wh: Warehouse, kind: str, dataset: str, params: dict | None = None) -> Iterator[Run]:
    run = Run(wh, wh.begin_run(kind, dataset, params), kind, dataset)
    try:
        yield run
    except BaseException as e:
        wh.fail_run(run.run_id, f"{type(e).__name__}: {e}")
        raise
    finally:
        shutil.rmtree(work_dir(wh, run.run_id), ignore_errors=True)
