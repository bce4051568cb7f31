"""Writers in separate processes are serialised by the lock file; readers in other processes only
ever see whole versions (before or after a commit, never in between)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.errors import PrefmillError, TransientError
from tests.warehouse.conftest import hh_rows, ingest
from warehouse import WarehouseError, lock
from warehouse.errors import WarehouseBusy

REPO = Path(__file__).resolve().parents[2]

WRITER = """
import sys
import pytest

from schemas.errors import PrefmillError, TransientError
from tests.warehouse.conftest import hh_rows, ingest
from warehouse import WarehouseError, lock
from warehouse.errors import WarehouseBusy
from warehouse import Warehouse
wh = Warehouse(sys.argv[1])
for start in map(int, sys.argv[2].split(",")):
    ingest(wh, "hh", {"pairwise": hh_rows(40, start=start)})
"""

HOLDER = """
import sys
from warehouse.layout import Layout
from warehouse.lock import writer_lock
with writer_lock(Layout.at(sys.argv[1]).lock_file):
    print("holding", flush=True)
    sys.stdin.readline()  # until the test lets go
"""

READER = """
import json, sys, time
from warehouse import Warehouse, WarehouseError
wh, seen, errors = Warehouse(sys.argv[1]), set(), []
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    try:
        seen.add(wh.query("SELECT count(*) FROM pairs").column(0)[0].as_py())
    except WarehouseError as e:
        errors.append(str(e))
print(json.dumps({"seen": sorted(seen), "errors": errors[:3]}))
"""


def _spawn(script, *args, stdin=None):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        env=env,
        cwd=REPO,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_concurrent_writers_and_a_reader(wh):
    ingest(wh, "hh", {"pairwise": hh_rows(40, start=0)})  # the catalog exists before the reader starts
    reader = _spawn(READER, wh.root, 12)
    writers = [_spawn(WRITER, wh.root, "100,300"), _spawn(WRITER, wh.root, "500,700")]
    for w in writers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err[-2000:]
    out, err = reader.communicate(timeout=300)
    assert reader.returncode == 0, err[-2000:]
    total = len({r["record_id"] for s in (0, 100, 300, 500, 700) for r in hh_rows(40, start=s)})
    assert wh.query("SELECT count(*) FROM pairs").column(0)[0].as_py() == total
    # Five commits, one chain: every version's parent is the version before it.
    chain = wh.query("SELECT version_id, parent_version FROM dataset_versions ORDER BY created_at").to_pylist()
    assert len(chain) == 5 and all(b["parent_version"] == a["version_id"] for a, b in zip(chain, chain[1:]))
    report = json.loads(out)
    assert report["errors"] == []
    per_version = set(wh.query("SELECT count(*) FROM pairs_all_versions GROUP BY version_id").column(0).to_pylist())
    assert set(report["seen"]) <= per_version  # only whole versions were ever visible


def test_a_writer_that_waits_too_long_for_the_lock_is_a_transient_error(wh, monkeypatch):
    ingest(wh, "hh", {"pairwise": hh_rows(5)})
    holder = _spawn(HOLDER, wh.root, stdin=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == "holding\n", holder.stderr.read()
        monkeypatch.setattr(lock, "TIMEOUT_S", 0.3)
        with pytest.raises(WarehouseBusy) as err:
            wh.begin_run("ingest", "hh", {})
        e = err.value
        assert isinstance(e, WarehouseError) and isinstance(e, TransientError) and isinstance(e, PrefmillError)
        assert e.transient and "\n" not in str(e) and str(wh.root / ".writer.lock") in str(e)
        assert wh.query("SELECT count(*) FROM runs").column(0)[0].as_py() == 1  # the refused writer wrote nothing
    finally:
        holder.communicate("go\n", timeout=60)
    assert holder.returncode == 0
    run_id = wh.begin_run("ingest", "hh", {})  # the same call succeeds once the other writer is done
    assert run_id in wh.query("SELECT run_id FROM runs").column(0).to_pylist()


def test_bad_input_is_not_transient(wh):
    with pytest.raises(WarehouseError) as err:
        wh.begin_run("ingest", "a b", {})
    assert not err.value.transient
