"""A commit interrupted at any point leaves the previous version readable and intact, and a retry
of the same run succeeds. Crashes are simulated in-process (an exception) and for real (the
committing process is killed with os._exit, so no rollback or cleanup code runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.warehouse.conftest import hh_rows, ingest, stage
from warehouse import RunCounts, WarehouseError, faults

REPO = Path(__file__).resolve().parents[2]

KILL_SCRIPT = """
import json, os, sys
from warehouse import RunCounts, Warehouse, faults
root, run_id, point, counts = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
faults.reached = lambda p: os._exit(137) if p == point else None
Warehouse(root).commit(run_id, "hh", counts=RunCounts(**counts), steps=[])
print("survived")
"""


def _prepare(wh):
    """Version 1 with 20 rows, then a staged run that would add 10 rows and duplicate 5."""
    v1 = ingest(wh, "hh", {"pairwise": hh_rows(20)})
    before = wh.read("hh", "pairwise")
    run_id = wh.begin_run("ingest", "hh", {})
    stage(wh, run_id, "pairwise", hh_rows(5) + hh_rows(10, start=300))
    return v1, before, run_id, RunCounts(records_read=15, rows_read=15, rows_kept=15, rows_rejected=0)


def _objects(wh) -> set[str]:
    return {str(p.relative_to(wh.root)) for p in (wh.root / "lake" / "objects").rglob("*.parquet")}


def _referenced(wh) -> set[str]:
    with duckdb.connect(str(wh.root / "catalog.duckdb"), read_only=True) as con:
        return {p for (p,) in con.execute("SELECT DISTINCT path FROM meta.version_files").fetchall()}


def _assert_untouched(wh, v1, before, run_id):
    assert wh.resolve_version("hh") == v1.version_id
    assert wh.read("hh", "pairwise").equals(before)
    assert wh.query("SELECT count(*) FROM pairs").column(0)[0].as_py() == 20
    assert wh.query("SELECT count(*) FROM dataset_versions").column(0)[0].as_py() == 1
    assert wh.query(f"SELECT status FROM runs WHERE run_id = '{run_id}'").column(0).to_pylist() == ["running"]
    assert wh.query(f"SELECT count(*) FROM duplicates WHERE run_id = '{run_id}'").column(0)[0].as_py() == 0
    assert (wh.root / "staging" / run_id / "pairwise").exists()  # the retry still has its input


def _assert_retry_succeeds(wh, v1, run_id, counts):
    res = wh.commit(run_id, "hh", counts=counts, steps=[])
    assert res.status == "committed" and res.parent_version == v1.version_id
    assert res.counts.rows_duplicate == 5 and res.rows_new == {"pairwise": 10}
    assert wh.query("SELECT count(*) FROM pairs").column(0)[0].as_py() == 30
    # The retry rewrote identical bytes, so the crashed attempt's orphans became the referenced objects.
    assert _objects(wh) == _referenced(wh)


@pytest.mark.parametrize("point", [faults.OBJECTS_WRITTEN, faults.IN_TRANSACTION])
def test_exception_mid_commit_leaves_the_previous_version(wh, monkeypatch, point):
    v1, before, run_id, counts = _prepare(wh)

    def crash(p):
        if p == point:
            raise RuntimeError(f"crash at {p}")

    monkeypatch.setattr(faults, "reached", crash)
    with pytest.raises(RuntimeError, match="crash at"):
        wh.commit(run_id, "hh", counts=counts, steps=[])
    assert _objects(wh) - _referenced(wh), "new objects were written before the crash (orphans)"
    _assert_untouched(wh, v1, before, run_id)
    monkeypatch.setattr(faults, "reached", lambda p: None)
    _assert_retry_succeeds(wh, v1, run_id, counts)


@pytest.mark.parametrize("point", [faults.OBJECTS_WRITTEN, faults.IN_TRANSACTION])
def test_killed_process_mid_commit_leaves_the_previous_version(wh, point):
    v1, before, run_id, counts = _prepare(wh)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(wh.root), run_id, point, json.dumps(counts.__dict__)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 137 and "survived" not in proc.stdout, proc.stderr[-2000:]
    _assert_untouched(wh, v1, before, run_id)  # DuckDB discards the uncommitted WAL tail on reopen
    _assert_retry_succeeds(wh, v1, run_id, counts)


def test_crash_after_the_transaction_is_finished_by_the_retry(wh, monkeypatch):
    v1, _, run_id, counts = _prepare(wh)

    def crash(p):
        if p == faults.COMMITTED:
            raise RuntimeError(p)

    monkeypatch.setattr(faults, "reached", crash)
    with pytest.raises(RuntimeError):
        wh.commit(run_id, "hh", counts=counts, steps=[])
    new = wh.resolve_version("hh")
    assert new != v1.version_id and (wh.root / "staging" / run_id).exists()
    monkeypatch.setattr(faults, "reached", lambda p: None)
    again = wh.commit(run_id, "hh", counts=counts, steps=[])
    assert (again.status, again.version_id, again.counts.rows_duplicate) == ("committed", new, 5)
    assert not (wh.root / "staging" / run_id).exists()


def test_a_failed_commit_inside_the_transaction_is_rolled_back(wh, monkeypatch):
    """A DuckDB error while publishing (here: the views cannot be rebuilt) rolls everything back."""
    v1, before, run_id, counts = _prepare(wh)
    import warehouse.publish as publish

    def broken_views(con, layout):
        con.execute("SELECT * FROM read_parquet('/nonexistent/file.parquet')")

    monkeypatch.setattr(publish, "recreate_views", broken_views)
    with pytest.raises(WarehouseError, match="nothing was published"):
        wh.commit(run_id, "hh", counts=counts, steps=[])
    monkeypatch.undo()
    _assert_untouched(wh, v1, before, run_id)
    _assert_retry_succeeds(wh, v1, run_id, counts)
