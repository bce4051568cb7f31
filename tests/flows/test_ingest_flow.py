"""The Prefect flows, run ephemerally (no server), and the cron deployment `prefmill serve` runs."""

import pytest

from tests.conftest import DATA

pytestmark = pytest.mark.slow  # Prefect's temporary server takes ~10-20 s to start


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory):
    import os

    home = tmp_path_factory.mktemp("prefect")
    old = os.environ.get("PREFECT_HOME")
    os.environ["PREFECT_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("PREFECT_HOME", None)
    else:
        os.environ["PREFECT_HOME"] = old


def test_ingest_flow_runs_and_exports(prefect_home, tmp_path):
    from flows.ingest_flow import ingest_flow
    from warehouse import Warehouse

    out = tmp_path / "export"
    summary = ingest_flow(
        paths=[str(DATA / "pandalm_testset/testset-v1.json")],
        format_name="pandalm",
        dataset="panda",
        warehouse=str(tmp_path / "wh"),
        export_format="trl-dpo",
        export_dir=str(out),
    )
    assert summary["rows_read"] == summary["rows_kept"] + summary["rows_rejected"] + summary["rows_duplicate"]
    assert summary["version_id"] and summary["export"]["version_id"] == summary["version_id"]
    assert (out / "README.md").exists()
    run = (
        Warehouse(tmp_path / "wh")
        .query(f"SELECT status, params FROM runs WHERE run_id = '{summary['run_id']}'")
        .to_pylist()[0]
    )
    assert run["status"] == "committed" and "prefect" in run["params"]


def test_drop_folder_flow_is_idempotent(prefect_home, tmp_path):
    import shutil

    from flows.ingest_flow import drop_folder_flow
    from warehouse import Warehouse

    drop = tmp_path / "drop"
    drop.mkdir()
    shutil.copy(DATA / "oasst_en_100_trees/en_100_tree.jsonl", drop / "a.jsonl")
    first = drop_folder_flow(
        drop_folder=str(drop), format_name="oasst", dataset="nightly", warehouse=str(tmp_path / "wh")
    )
    second = drop_folder_flow(
        drop_folder=str(drop), format_name="oasst", dataset="nightly", warehouse=str(tmp_path / "wh")
    )
    assert first["rows_kept"] > 0 and second["rows_kept"] == 0
    assert second["rows_duplicate"] == first["rows_kept"]
    assert len(Warehouse(tmp_path / "wh").versions("nightly")) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert drop_folder_flow(drop_folder=str(empty), format_name="oasst", warehouse=str(tmp_path / "wh")) == {"files": 0}


def test_serve_builds_a_cron_deployment():
    from flows.ingest_flow import drop_folder_deployment

    dep = drop_folder_deployment(
        "nightly-ingest",
        "0 2 * * *",
        drop_folder="/data/in",
        format_name="trl",
        dataset="prod",
        pattern="*.jsonl",
        mapping=None,
        warehouse="/wh",
    )
    assert dep.name == "nightly-ingest"
    crons = [getattr(s.schedule, "cron", None) for s in dep.schedules]
    assert crons == ["0 2 * * *"]
    assert dep.parameters["drop_folder"] == "/data/in" and dep.parameters["format_name"] == "trl"


class _State:
    def __init__(self, error: BaseException | None):
        self.error = error

    def result(self):
        if self.error is not None:
            raise self.error
        return 1


def test_commits_are_retried_only_on_transient_errors():
    from flows.ingest_flow import _is_transient, _may_succeed_later
    from schemas.errors import PrefmillError, TransientError
    from schemas.readers import SourceError
    from warehouse import WarehouseError

    class Locked(TransientError):
        pass

    assert _is_transient(_State(Locked("catalog is locked")))
    assert _is_transient(_State(WarehouseError("another writer holds /wh/.writer.lock for more than 600 s")))
    for e in (WarehouseError("staged 3 rows but its counts say 4"), PrefmillError("bad"), OSError("disk"), None):
        assert not _is_transient(_State(e)), e
    # A pipeline attempt is retried unless its input is at fault.
    assert _may_succeed_later(_State(RuntimeError("ingest worker worker_1: exited (killed by signal 9)")))
    assert _may_succeed_later(_State(Locked("x")))
    assert not _may_succeed_later(_State(SourceError("file not found: x")))
    assert not _may_succeed_later(_State(None))
