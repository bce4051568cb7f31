"""The Warehouse facade: the only entry point other layers use (see docs/contracts.md)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager, closing
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import duckdb
import pyarrow as pa

from warehouse import artifacts, audits, reads, runs
from warehouse.catalog import ensure
from warehouse.commit import commit_staged
from warehouse.counts import CommitResult, RunCounts, StepCount
from warehouse.db import connect_read, connect_write, work_connection
from warehouse.derived import commit_derived as _commit_derived
from warehouse.errors import WarehouseError
from warehouse.lake import write_quarantine
from warehouse.layout import Layout, check_name, default_root
from warehouse.lock import writer_lock
from warehouse.query import run_query
from warehouse.sql import value
from warehouse.staging import staged_shards
from warehouse.views import recreate_views

if TYPE_CHECKING:
    from warehouse.run_context import Run

T = TypeVar("T")


class Warehouse:
    def __init__(self, root: str | os.PathLike | None = None):
        self.layout = Layout.at(root if root is not None else default_root())

    @property
    def root(self) -> Path:
        return self.layout.root

    def __repr__(self) -> str:
        return f"Warehouse({str(self.root)!r})"

    # -- writers (serialised by the lock file) ------------------------------------------------
    def _write(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        with writer_lock(self.layout.lock_file), closing(connect_write(self.layout)) as con:
            ensure(con, self.layout)
            return fn(con)

    def begin_run(self, kind: str, dataset: str, params: dict | None = None) -> str:
        run_id = self._write(lambda con: runs.begin(con, kind, dataset, params or {}))
        self.staging_dir(run_id)
        return run_id

    def run(self, kind: str, dataset: str, params: dict | None = None) -> AbstractContextManager[Run]:
        """Context manager for one run (``warehouse.run_context``): begin, fail on error, clean up."""
        from warehouse.run_context import run_context

        return run_context(self, kind, dataset, params)

    def staging_dir(self, run_id: str) -> Path:
        path = self.layout.staging(run_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def commit(
        self,
        run_id: str,
        dataset: str,
        counts: RunCounts,
        steps: list[StepCount] | None = None,
        policies: list | None = None,
        extra: dict | None = None,
    ) -> CommitResult:
        return commit_staged(self.layout, run_id, dataset, counts, steps, policies, extra)

    def commit_derived(
        self,
        run_id: str,
        dataset: str,
        parent_version: str,
        tables: dict[str, pa.Table],
        removals: pa.Table | None,
        counts: RunCounts,
        steps: list[StepCount] | None = None,
        extra: dict | None = None,
    ) -> CommitResult:
        return _commit_derived(self.layout, run_id, dataset, parent_version, tables, removals, counts, steps, extra)

    def fail_run(self, run_id: str, error: str) -> None:
        """Record the run as failed (nothing is published); its quarantine is kept to explain why."""
        check_name("run id", run_id)

        def fail(con: duckdb.DuckDBPyConnection) -> None:
            runs.get(con, run_id)
            if not runs.mark_failed(con, run_id, error):
                return  # already committed or failed: history is not rewritten
            try:
                _, shards = staged_shards(self.layout, run_id)
                with closing(work_connection(self.layout)) as work:
                    q = write_quarantine(work, shards, self.layout, run_id)
            except (WarehouseError, duckdb.Error):
                q = None  # unreadable rejects: the error message is all there is
            if q is not None:
                dataset = value(con, "SELECT dataset FROM meta.runs WHERE run_id = ?", [run_id])
                con.execute("BEGIN")
                con.execute("INSERT OR REPLACE INTO meta.quarantine_files VALUES (?, ?, ?, ?)", [run_id, dataset, *q])
                recreate_views(con, self.layout)
                con.execute("COMMIT")
            shutil.rmtree(self.layout.staging(run_id), ignore_errors=True)

        self._write(fail)

    def set_run_metrics(self, run_id: str, metrics: dict) -> None:
        def merge(con: duckdb.DuckDBPyConnection) -> None:
            runs.get(con, run_id)
            runs.merge_metrics(con, run_id, metrics)

        self._write(merge)

    def finish_run(self, run_id: str, rows_read: int) -> None:
        """End a run that publishes no version (its output is an artifact)."""
        self._write(lambda con: runs.mark_done(con, run_id, rows_read))

    # -- artifacts ----------------------------------------------------------------------------
    def put_model(
        self,
        kind: str,
        dataset: str,
        version_id: str,
        blob: bytes,
        params: dict | None = None,
        metrics: dict | None = None,
    ) -> str:
        model_id, rel = artifacts.write_blob(self.layout, kind, blob)

        def insert(con: duckdb.DuckDBPyConnection) -> None:
            con.execute("BEGIN")
            artifacts.insert_model(
                con, model_id, kind, dataset, version_id, rel, len(blob), params or {}, metrics or {}
            )
            recreate_views(con, self.layout)
            con.execute("COMMIT")

        self._write(insert)
        return model_id

    def get_model(self, model_id: str) -> tuple[bytes, dict]:
        if not self.layout.exists():
            raise WarehouseError(f"no warehouse at {self.layout.root}")
        with closing(connect_read(self.layout)) as con:
            mid, kind, dataset, version_id, rel = artifacts.model_row(con, model_id)
        info = {"model_id": mid, "kind": kind, "dataset": dataset, "version_id": version_id}
        return self.layout.abs(rel).read_bytes(), info

    def put_groups(self, run_id: str, dataset: str, version_id: str, key: str, assign: dict) -> None:
        self._write(lambda con: artifacts.insert_groups(con, run_id, dataset, version_id, key, assign))

    # -- judge audits -------------------------------------------------------------------------
    def put_audit(
        self,
        *,
        kind: str,
        model: str,
        revision: str,
        template_id: str,
        gold_dataset: str,
        gold_version: str,
        metrics: dict,
        passed: bool,
        thresholds: dict,
        run_id: str | None = None,
    ) -> str:
        """Store one audit of a judge on a gold set (``warehouse.audits``); returns its audit id."""

        def insert(con: duckdb.DuckDBPyConnection) -> str:
            con.execute("BEGIN")
            audit_id = audits.insert(
                con,
                run_id=run_id,
                kind=kind,
                model=model,
                revision=revision,
                template_id=template_id,
                gold_dataset=gold_dataset,
                gold_version=gold_version,
                metrics=metrics,
                passed=passed,
                thresholds=thresholds,
            )
            con.execute("COMMIT")
            return audit_id

        return self._write(insert)

    def latest_audit(
        self, model: str, revision: str, template_id: str = "", gold_dataset: str | None = None
    ) -> audits.Audit | None:
        """The most recent audit of this judge (model + revision + template id), or None."""
        if not self.layout.exists():
            return None
        with closing(connect_read(self.layout)) as con:
            return audits.latest(con, model, revision, template_id, gold_dataset)

    # -- readers ------------------------------------------------------------------------------
    def read(self, dataset: str, shape: str, version: str | None = None) -> pa.Table:
        return reads.read(self.layout, dataset, shape, version)

    def query(self, sql: str) -> pa.Table:
        return run_query(self.layout, sql)

    def resolve_version(self, dataset: str, version: str | None = None) -> str:
        return reads.resolve_version(self.layout, dataset, version)

    def datasets(self) -> pa.Table:
        return reads.listing(self.layout, "SELECT * FROM main.datasets ORDER BY dataset")

    def versions(self, dataset: str) -> pa.Table:
        self.resolve_version(dataset)  # unknown dataset → a clear error
        return reads.listing(
            self.layout,
            "SELECT * FROM main.dataset_versions WHERE dataset = ? ORDER BY created_at, version_id",
            [dataset],
        )

    def runs(self) -> pa.Table:
        return reads.listing(self.layout, "SELECT * FROM main.runs ORDER BY started_at DESC, run_id DESC")
