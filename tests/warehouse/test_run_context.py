"""wh.run(): begin, fail on an exception (keeping the staged quarantine), and stage rejected rows."""

import pyarrow.parquet as pq
import pytest

from schemas.canonical import QUARANTINE
from schemas.step import Reject, rejected_table
from warehouse.run_context import work_dir


def test_a_failed_run_is_recorded_with_its_staged_quarantine(wh):
    with pytest.raises(RuntimeError, match="boom"):
        with wh.run("ingest", "d", {}) as run:
            run.quarantine(rejected_table([Reject("adapt", "invalid_json", "bad line", "f", 3)], run.run_id), "x")
            run.work.mkdir(exist_ok=True)
            shard = run.staging / "quarantine" / "x.parquet"
            assert pq.read_schema(shard).equals(QUARANTINE)
            run.quarantine(rejected_table([]), "empty")  # nothing to say: no file
            assert not (run.staging / "quarantine" / "empty.parquet").exists()
            raise RuntimeError("boom")
    row = wh.query(f"SELECT status, error FROM runs WHERE run_id = '{run.run_id}'").to_pylist()[0]
    assert row["status"] == "failed" and "RuntimeError: boom" in row["error"]
    q = wh.query(f"SELECT reason, source_row FROM quarantine WHERE run_id = '{run.run_id}'").to_pylist()
    assert q == [{"reason": "invalid_json", "source_row": 3}]
    assert not work_dir(wh, run.run_id).exists()  # the executor's scratch space went with the run
