"""The installed `prefmill` command, run as a user would (subprocess)."""

import json
from pathlib import Path

import pytest

from tests.prefmill.cli_run import DATA, one_line_error, run


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    wh = tmp_path_factory.mktemp("cliwh")
    run(
        "ingest",
        DATA / "pandalm_testset/testset-v1.json",
        "--format",
        "pandalm",
        "--dataset",
        "panda",
        wh=wh,
        check=True,
    )
    return wh


def test_missing_file_is_one_line(tmp_path):
    line = one_line_error(run("ingest", tmp_path / "nope.jsonl", "--format", "hh-rlhf", wh=tmp_path / "w"))
    assert "not found" in line


def test_unknown_format_is_one_line(tmp_path):
    line = one_line_error(
        run("ingest", DATA / "pandalm_testset/testset-v1.json", "--format", "nope", wh=tmp_path / "w")
    )
    assert "hh-rlhf" in line  # the message lists the known formats


def test_query_json_and_counts(wh):
    p = run(
        "query", "SELECT rows_read, rows_kept, rows_rejected, rows_duplicate FROM runs", "--json", wh=wh, check=True
    )
    rows = json.loads(p.stdout)
    assert rows and all(r["rows_read"] == r["rows_kept"] + r["rows_rejected"] + r["rows_duplicate"] for r in rows)
    n = json.loads(
        run("query", "SELECT count(*) AS n FROM pairs WHERE dataset='panda'", "--json", wh=wh, check=True).stdout
    )
    assert n[0]["n"] == rows[0]["rows_kept"]


@pytest.mark.parametrize(
    "sql", ["DELETE FROM runs", "CREATE TABLE x AS SELECT 1", "COPY (SELECT 1) TO '/tmp/prefmill_should_not_exist.csv'"]
)
def test_query_refuses_writes(wh, sql):
    line = one_line_error(run("query", sql, wh=wh))
    assert "read-only" in line
    assert not Path("/tmp/prefmill_should_not_exist.csv").exists()


def test_datasets_runs_and_export(wh, tmp_path):
    assert "panda" in run("datasets", wh=wh, check=True).stdout
    assert run("runs", wh=wh, check=True).returncode == 0
    out = tmp_path / "export"
    run("export", "--dataset", "panda", "--format", "trl-dpo", "--out", out, wh=wh, check=True)
    files = sorted(p.name for p in out.iterdir())
    assert "README.md" in files and any(f.startswith("train") for f in files)


def test_curate_command_publishes_a_child_version(wh):
    p = run(
        "curate", "--dataset", "panda", "--method", "random", "--budget", "0.5", "--sample", "20", wh=wh, check=True
    )
    assert "select_random" in p.stdout and "kept" in p.stdout
    rows = json.loads(
        run("query", "SELECT reason, count(*) AS n FROM removals GROUP BY reason", "--json", wh=wh, check=True).stdout
    )
    reasons = {r["reason"]: r["n"] for r in rows}
    assert reasons.get("not_selected:random", 0) >= 9 and reasons["not_sampled"] > 0
    bad = run("curate", "--dataset", "panda", "--budget", "0", wh=wh)
    assert "budget" in one_line_error(bad)
