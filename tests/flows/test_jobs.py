"""Ingest → validate → commit as one run, against a real warehouse on the bundled data."""

import json

import pytest

from flows.jobs import ValidationFailed, ingest
from schemas.validation import ValidationConfig
from warehouse import Warehouse

SOURCES = [
    ("hh_rlhf_harmless_base/test.jsonl.gz", "hh-rlhf", "pairs"),
    ("llamafactory_dpo_en_demo/dpo_en_demo.json", "sharegpt", "pairs"),
    ("llamafactory_kto_en_demo/kto_en_demo.json", "sharegpt", "binary_feedback"),
    ("oasst_en_100_trees/en_100_tree.jsonl", "oasst", "rankings"),
    ("topical_chat_usr_ratings/topical_chat.json", "ratings", "ratings"),
    ("pandalm_testset/testset-v1.json", "pandalm", "pairs"),
]


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory,
):
    from tests.conftest import DATA

    wh = Warehouse(tmp_path_factory.mktemp("wh"))
    reports = [ingest(wh, [str(DATA / rel)], fmt, "real") for rel, fmt, _ in SOURCES]
    return wh, reports


def test_every_run_adds_up(loaded):
    wh, reports = loaded
    runs = wh.query("SELECT * FROM runs WHERE kind = 'ingest'").to_pylist()
    assert len(runs) == len(SOURCES)
    for r in runs:
        assert r["rows_read"] == r["rows_kept"] + r["rows_rejected"] + r["rows_duplicate"], r
        assert r["rows_kept"] > 0


def test_views_hold_each_shape(loaded):
    wh, _ = loaded
    for _, _, view in SOURCES:
        n = wh.query(f"SELECT count(*) AS n FROM {view} WHERE dataset = 'real'").to_pylist()[0]["n"]
        assert n > 0, view
    # pandalm ties are kept as ties, never as chosen/rejected pairs
    ties = wh.query("SELECT count(*) AS n FROM pairs WHERE label = 'tie'").to_pylist()[0]["n"]
    assert ties > 0


def test_reingest_adds_no_rows_and_no_version(loaded, tmp_path):
    from tests.conftest import DATA

    wh, _ = loaded
    before = wh.query("SELECT count(*) AS n FROM pairs").to_pylist()[0]["n"]
    versions_before = len(wh.versions("real"))
    rep = ingest(wh, [str(DATA / SOURCES[0][0])], "hh-rlhf", "real")
    assert wh.query("SELECT count(*) AS n FROM pairs").to_pylist()[0]["n"] == before
    assert len(wh.versions("real")) == versions_before
    run = wh.query(f"SELECT * FROM runs WHERE run_id = '{rep.run_id}'").to_pylist()[0]
    assert run["rows_duplicate"] == run["rows_read"] - run["rows_rejected"] and run["rows_kept"] == 0


def test_batch_failure_stops_commit_and_keeps_previous_version(tmp_path):
    from tests.conftest import DATA

    wh = Warehouse(tmp_path / "wh")
    ingest(wh, [str(DATA / "llamafactory_kto_en_demo/kto_en_demo.json")], "sharegpt", "kto")
    latest = wh.versions("kto").to_pylist()[-1]["version_id"] if hasattr(wh.versions("kto"), "to_pylist") else None
    # Only desirable rows: a label balance of 100% True breaks the batch rule.
    only_true = tmp_path / "true.json"
    rows = [r for r in json.loads((DATA / "llamafactory_kto_en_demo/kto_en_demo.json").read_text()) if r["label"]]
    for r in rows:
        r["messages"][-1]["content"] += " (edited)"
    only_true.write_text(json.dumps(rows))
    with pytest.raises(ValidationFailed) as e:
        ingest(wh, [str(only_true)], "sharegpt", "kto", validation=ValidationConfig(max_true_rate=0.9))
    assert "true" in str(e.value).lower()
    failed = wh.query("SELECT status FROM runs ORDER BY started_at DESC LIMIT 1").to_pylist()[0]["status"]
    assert failed == "failed"
    if latest is not None:
        assert wh.versions("kto").to_pylist()[-1]["version_id"] == latest


def test_run_steps_are_the_steps_own_counters(loaded):
    wh, reports = loaded
    for rep in reports:
        rows = wh.query(
            f"SELECT step, rows_in, rows_kept, rows_rejected, rows_duplicate FROM run_steps "
            f"WHERE run_id = '{rep.run_id}' ORDER BY position"
        ).to_pylist()
        want = [[c.step, c.rows_in, c.rows_kept, c.rows_rejected, c.rows_duplicate] for c in rep.counts.steps]
        assert [list(r.values()) for r in rows[:-1]] == want
        assert rows[-1]["step"] == "warehouse_dedup" and rows[-1]["rows_in"] == rep.counts.rows_kept
        run = wh.query(f"SELECT * FROM runs WHERE run_id = '{rep.run_id}'").to_pylist()[0]
        assert (run["records_read"], run["rows_read"], run["rows_rejected"]) == (
            rep.counts.records_read,
            rep.counts.rows_read,
            rep.counts.rows_rejected,
        )


def test_bad_input_fails_the_run_with_one_line_and_leaves_no_scratch(tmp_path):
    from schemas.adapters import UnknownFormat
    from schemas.errors import PrefmillError
    from tests.conftest import DATA
    from warehouse.run_context import work_dir

    wh = Warehouse(tmp_path / "wh")
    with pytest.raises(UnknownFormat) as e:
        ingest(wh, [str(DATA / "llamafactory_kto_en_demo/kto_en_demo.json")], "no-such-format", "x")
    assert isinstance(e.value, PrefmillError) and isinstance(e.value, ValueError) and "\n" not in str(e.value)
    run = wh.query("SELECT run_id, status, error FROM runs").to_pylist()[0]
    assert run["status"] == "failed" and run["error"].startswith("UnknownFormat")
    assert not work_dir(wh, run["run_id"]).exists()


def test_validation_failed_still_imports_from_flows_jobs():
    from schemas.validation import ValidationFailed as Moved

    assert ValidationFailed is Moved and Moved.exit_code == 1
