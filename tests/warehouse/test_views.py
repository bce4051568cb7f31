"""The public SQL surface: views exist from the start, follow the latest versions, and are usable
directly from a DuckDB connection on the catalog file (as a user would in the duckdb CLI)."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from schemas.canonical import SCHEMAS
from tests.warehouse.conftest import hh_rows, ingest, kto_rows, listwise_rows, pandalm_rows
from warehouse.views import QUARANTINE_COLUMNS, SHAPE_VIEWS

PUBLIC = [
    "judge_audits",
    "pairs",
    "binary_feedback",
    "rankings",
    "ratings",
    "quarantine",
    "runs",
    "run_steps",
    "datasets",
    "dataset_versions",
    "removals",
    "duplicates",
]


def _columns(wh, view):
    return wh.query(f"SELECT * FROM {view} LIMIT 0").column_names


def test_every_view_binds_before_any_data(wh):
    wh.begin_run("ingest", "hh", {})  # creates the catalog, nothing committed
    for view in PUBLIC + [f"{v}_all_versions" for v in SHAPE_VIEWS.values()]:
        assert wh.query(f"SELECT count(*) FROM {view}").column(0)[0].as_py() == (1 if view == "runs" else 0)
    for shape, view in SHAPE_VIEWS.items():
        assert _columns(wh, view) == SCHEMAS[shape].names + ["dataset", "version_id"]
    assert _columns(wh, "quarantine") == QUARANTINE_COLUMNS.split(", ") + ["dataset"]


def test_shape_views_show_the_latest_version_of_every_dataset(wh):
    a1 = ingest(wh, "hh", {"pairwise": hh_rows(10)})
    a2 = ingest(wh, "hh", {"pairwise": hh_rows(5, start=100)})
    panda = pandalm_rows(12)
    b = ingest(wh, "panda", {"pairwise": panda, "listwise": listwise_rows(4)})
    c = ingest(wh, "kto", {"binary": kto_rows(9)})
    got = wh.query("SELECT dataset, version_id, count(*) AS n FROM pairs GROUP BY ALL ORDER BY dataset").to_pylist()
    assert got == [
        {"dataset": "hh", "version_id": a2.version_id, "n": 15},
        {"dataset": "panda", "version_id": b.version_id, "n": len({r["record_id"] for r in panda})},
    ]
    assert wh.query("SELECT count(*), any_value(version_id) FROM binary_feedback").to_pylist()[0] == {
        "count_star()": 9,
        "any_value(version_id)": c.version_id,
    }
    assert wh.query("SELECT count(*) FROM rankings").column(0)[0].as_py() == 4
    history = wh.query(
        "SELECT version_id, count(*) AS n FROM pairs_all_versions WHERE dataset = 'hh' GROUP BY ALL ORDER BY n"
    ).to_pylist()
    assert history == [{"version_id": a1.version_id, "n": 10}, {"version_id": a2.version_id, "n": 15}]
    # View rows are the same rows read() returns.
    view_ids = wh.query("SELECT record_id FROM pairs WHERE dataset = 'panda'").column(0).to_pylist()
    assert sorted(view_ids) == sorted(wh.read("panda", "pairwise").column("record_id").to_pylist())
    # Nested columns keep their structure for SQL users.
    roles = wh.query("SELECT DISTINCT chosen[1].role AS r FROM pairs").column(0).to_pylist()
    assert roles == ["assistant"]


def test_catalog_views_agree_with_the_api(wh):
    ingest(wh, "hh", {"pairwise": hh_rows(6)})
    ingest(wh, "hh", {"pairwise": hh_rows(6)})
    ds = wh.query("SELECT dataset, latest_version, rows_pairwise FROM datasets").to_pylist()
    assert ds == [{"dataset": "hh", "latest_version": wh.resolve_version("hh"), "rows_pairwise": 6}]
    versions = wh.query("SELECT version_id, is_latest FROM dataset_versions").to_pylist()
    assert versions == [{"version_id": wh.resolve_version("hh"), "is_latest": True}]
    statuses = wh.query("SELECT status FROM runs ORDER BY started_at").column(0).to_pylist()
    assert statuses == ["committed", "no_change"]
    assert wh.query("SELECT count(*) FROM duplicates").column(0)[0].as_py() == 6


def test_views_work_from_a_plain_duckdb_connection(wh):
    res = ingest(wh, "hh", {"pairwise": hh_rows(7)})
    with duckdb.connect(str(wh.root / "catalog.duckdb"), read_only=True) as con:
        got = con.sql("SELECT count(*), any_value(version_id) FROM pairs").fetchall()
    assert got == [(7, res.version_id)]


def test_derived_extra_columns_appear_in_the_view_with_nulls_elsewhere(wh):
    ingest(wh, "hh", {"pairwise": hh_rows(4)})
    ingest(wh, "other", {"pairwise": hh_rows(3, start=60)})
    parent = wh.resolve_version("hh")
    pairs = wh.read("hh", "pairwise")
    scored = pairs.append_column("judge_score", pa.array([0.5, 0.6, 0.7, 0.8]))
    from warehouse import RunCounts

    run_id = wh.begin_run("judge", "hh", {})
    wh.commit_derived(run_id, "hh", parent, {"pairwise": scored}, None, RunCounts(4, 4, 4, 0), [], {})
    got = wh.query(
        "SELECT dataset, count(judge_score) AS scored, count(*) AS n FROM pairs GROUP BY ALL ORDER BY dataset"
    ).to_pylist()
    assert got == [{"dataset": "hh", "scored": 4, "n": 4}, {"dataset": "other", "scored": 0, "n": 3}]


def test_moved_warehouse_rebuilds_its_views_on_the_next_write(wh, tmp_path):
    import shutil

    from warehouse import Warehouse

    ingest(wh, "hh", {"pairwise": hh_rows(3)})
    moved = Warehouse(shutil.move(str(wh.root), str(tmp_path / "moved")))
    moved.begin_run("ingest", "hh", {})  # any write notices the new root
    assert moved.query("SELECT count(*) FROM pairs").column(0)[0].as_py() == 3
