"""commit(): dedup, versions, counts, lineage — against a real DuckDB catalog and Parquet lake."""

from __future__ import annotations

import hashlib

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.ids import digest
from schemas.step import Reject
from tests.warehouse.conftest import hh_rows, ingest, kto_rows, listwise_rows, stage, stage_rejects, table
from warehouse import RunCounts, StepCount, Warehouse, WarehouseError


def _runs(wh: Warehouse) -> dict[str, dict]:
    return {r["run_id"]: r for r in wh.runs().to_pylist()}


def test_first_commit_publishes_rows_in_content_addressed_zstd_objects(wh):
    rows = hh_rows(40)
    res = ingest(wh, "hh", {"pairwise": rows})
    assert res.status == "committed" and res.parent_version is None
    assert res.rows_new == {"pairwise": 40} and res.counts.rows_duplicate == 0
    back = wh.read("hh", "pairwise")
    assert back.column("record_id").to_pylist() == [r["record_id"] for r in rows]  # run order kept
    assert back.column("chosen").to_pylist() == [r["chosen"] for r in rows]
    assert back.schema.field("prompt").type == pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    for rel in res.files:
        path = wh.root / rel
        assert path.parent == wh.root / "lake" / "objects" / "pairwise"
        assert path.stem == hashlib.sha256(path.read_bytes()).hexdigest()
        meta = pq.ParquetFile(path).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
    assert not (wh.root / "staging" / res.run_id).exists()


def test_version_id_is_a_content_hash_of_dataset_and_objects(wh):
    res = ingest(wh, "hh", {"pairwise": hh_rows(10)})
    with duckdb.connect(str(wh.root / "catalog.duckdb"), read_only=True) as con:
        paths = [
            p
            for (p,) in con.execute(
                "SELECT path FROM meta.version_files WHERE version_id = ?", [res.version_id]
            ).fetchall()
        ]
    shas = sorted(p.rsplit("/", 1)[1].removesuffix(".parquet").encode() for p in paths)
    assert res.version_id == digest(b"version", b"hh", *shas)


def test_reingesting_the_same_rows_is_a_no_change_run_with_every_row_a_duplicate(wh):
    rows = hh_rows(30)
    first = ingest(wh, "hh", {"pairwise": rows})
    again = ingest(wh, "hh", {"pairwise": rows})
    assert again.status == "no_change" and again.version_id is None
    assert again.counts == RunCounts(records_read=30, rows_read=30, rows_kept=0, rows_rejected=0, rows_duplicate=30)
    assert wh.resolve_version("hh") == first.version_id
    assert wh.versions("hh").num_rows == 1
    run = _runs(wh)[again.run_id]
    assert (run["status"], run["rows_duplicate"], run["rows_kept"], run["version_id"]) == ("no_change", 30, 0, None)
    dups = wh.query(f"SELECT DISTINCT duplicate_of_version FROM duplicates WHERE run_id = '{again.run_id}'")
    assert dups.column(0).to_pylist() == [first.version_id]
    assert wh.query("SELECT count(*) FROM pairs").column(0)[0].as_py() == 30


def test_duplicates_within_a_run_keep_the_first_occurrence(wh):
    rows = hh_rows(12)
    run_id = wh.begin_run("ingest", "hh", {})
    stage(wh, run_id, "pairwise", rows[:8] + rows[:2], part=0)  # two repeats inside shard 0
    stage(wh, run_id, "pairwise", rows[5:], part=1)  # three more repeats in shard 1
    counts = RunCounts(records_read=17, rows_read=17, rows_kept=17, rows_rejected=0)
    res = wh.commit(run_id, "hh", counts=counts, steps=[])
    assert res.counts.rows_duplicate == 5 and res.counts.rows_kept == 12
    back = wh.read("hh", "pairwise")
    assert back.column("record_id").to_pylist() == [r["record_id"] for r in rows]
    assert back.column("source_row").to_pylist() == [r["source_row"] for r in rows]
    dups = wh.query("SELECT record_id, duplicate_of_version FROM duplicates ORDER BY record_id").to_pylist()
    assert sorted(d["record_id"] for d in dups) == sorted(r["record_id"] for r in rows[:2] + rows[5:8])
    assert {d["duplicate_of_version"] for d in dups} == {res.version_id}
    steps = wh.query(f"SELECT * FROM run_steps WHERE run_id = '{run_id}' AND step = 'warehouse_dedup'").to_pylist()
    assert steps[0]["rows_in"] == 17 and steps[0]["rows_kept"] == 12 and steps[0]["rows_duplicate"] == 5


def test_a_new_version_is_the_parent_plus_only_the_new_rows(wh):
    old, new = hh_rows(20), hh_rows(10, start=200)
    v1 = ingest(wh, "hh", {"pairwise": old})
    v2 = ingest(wh, "hh", {"pairwise": old[:5] + new})
    assert v2.parent_version == v1.version_id and v2.rows_new == {"pairwise": 10}
    assert v2.counts.rows_duplicate == 5
    assert wh.read("hh", "pairwise").num_rows == 30
    assert wh.read("hh", "pairwise", version=v1.version_id[:8]).num_rows == 20  # older version still readable
    with duckdb.connect(str(wh.root / "catalog.duckdb"), read_only=True) as con:

        def files(v: str) -> set[str]:
            return {
                p for (p,) in con.execute("SELECT path FROM meta.version_files WHERE version_id = ?", [v]).fetchall()
            }

        assert files(v1.version_id) < files(v2.version_id)
        assert files(v2.version_id) - files(v1.version_id) == set(v2.files)


def test_several_shapes_in_one_run_and_per_shape_version_counts(wh):
    res = ingest(wh, "mix", {"pairwise": hh_rows(5), "binary": kto_rows(7), "listwise": listwise_rows(3)})
    assert res.rows_new == {"pairwise": 5, "binary": 7, "listwise": 3}
    ds = wh.datasets().to_pylist()[0]
    assert (ds["rows_pairwise"], ds["rows_binary"], ds["rows_listwise"], ds["rows_ratings"]) == (5, 7, 3, 0)
    assert wh.read("mix", "binary").column("label").to_pylist() == [r["label"] for r in kto_rows(7)]
    assert wh.read("mix", "ratings").num_rows == 0


def test_same_rows_in_two_datasets_give_two_versions(wh):
    rows = hh_rows(5)
    a, b = ingest(wh, "a", {"pairwise": rows}), ingest(wh, "b", {"pairwise": rows})
    assert a.version_id != b.version_id and b.counts.rows_duplicate == 0
    got = wh.query("SELECT dataset, count(*) AS n FROM pairs GROUP BY dataset ORDER BY dataset").to_pylist()
    assert got == [{"dataset": "a", "n": 5}, {"dataset": "b", "n": 5}]


def test_quarantine_rows_are_registered_with_the_run(wh):
    rejects = [
        Reject("adapt", "missing_field", "no chosen", "src.jsonl", 3, raw={"x": 1}),
        Reject("validate", "chosen_equals_rejected", "", "src.jsonl", 9, "pairwise", "abc", raw="{}"),
    ]
    res = ingest(wh, "hh", {"pairwise": hh_rows(3)}, rejects=rejects)
    got = wh.query("SELECT run_id, step, reason, source_row, shape, dataset FROM quarantine ORDER BY source_row")
    assert got.to_pylist() == [
        {
            "run_id": res.run_id,
            "step": "adapt",
            "reason": "missing_field",
            "source_row": 3,
            "shape": None,
            "dataset": "hh",
        },
        {
            "run_id": res.run_id,
            "step": "validate",
            "reason": "chosen_equals_rejected",
            "source_row": 9,
            "shape": "pairwise",
            "dataset": "hh",
        },
    ]
    assert (wh.root / "lake" / "quarantine" / res.run_id / "quarantine.parquet").exists()
    run = _runs(wh)[res.run_id]
    assert run["rows_read"] == run["rows_kept"] + run["rows_rejected"] + run["rows_duplicate"] == 5


@pytest.mark.parametrize(
    "counts, message",
    [
        (RunCounts(records_read=9, rows_read=9, rows_kept=9, rows_rejected=0), "staged 8 rows"),
        (
            RunCounts(records_read=9, rows_read=9, rows_kept=8, rows_rejected=1),
            "staged 0 quarantine rows but its counts say rows_rejected=1",
        ),
        (RunCounts(records_read=9, rows_read=10, rows_kept=8, rows_rejected=0), "rows_read 10 != kept 8"),
    ],
)
def test_counts_that_do_not_add_up_are_refused_and_nothing_is_published(wh, counts, message):
    run_id = wh.begin_run("ingest", "hh", {})
    stage(wh, run_id, "pairwise", hh_rows(8))
    if counts.rows_rejected:
        stage_rejects(wh, run_id, [])  # an empty shard: zero quarantine rows
    with pytest.raises(WarehouseError, match=message):
        wh.commit(run_id, "hh", counts=counts, steps=[])
    assert _runs(wh)[run_id]["status"] == "running"
    assert wh.query("SELECT count(*) FROM pairs").column(0)[0].as_py() == 0
    with pytest.raises(WarehouseError, match="unknown dataset 'hh'"):
        wh.resolve_version("hh")


def test_step_counts_must_add_up(wh):
    run_id = wh.begin_run("ingest", "hh", {})
    stage(wh, run_id, "pairwise", hh_rows(3))
    with pytest.raises(WarehouseError, match="step 'adapt': rows_in 5 != kept 3"):
        wh.commit(
            run_id, "hh", RunCounts(3, 3, 3, 0), steps=[StepCount("adapt", rows_in=5, rows_kept=3, rows_rejected=1)]
        )
    assert _runs(wh)[run_id]["status"] == "running"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t.drop_columns(["chosen_id"]), "missing column 'chosen_id'"),
        (lambda t: t.append_column("extra", pa.array(["x"] * t.num_rows)), "unexpected columns"),
        (
            lambda t: t.set_column(t.schema.get_field_index("source_row"), "source_row", pa.array(["1"] * t.num_rows)),
            "column 'source_row' is string",
        ),
    ],
)
def test_staged_shards_with_the_wrong_schema_are_refused(wh, mutate, message):
    run_id = wh.begin_run("ingest", "hh", {})
    path = wh.staging_dir(run_id) / "pairwise" / "part-00000.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(mutate(table(hh_rows(3), "pairwise", run_id)), path)
    with pytest.raises(WarehouseError, match=message) as err:
        wh.commit(run_id, "hh", counts=RunCounts(3, 3, 3, 0), steps=[])
    assert "part-00000.parquet" in str(err.value) and "\n" not in str(err.value)


def test_unknown_staging_folder_and_unknown_run_are_refused(wh):
    run_id = wh.begin_run("ingest", "hh", {})
    (wh.staging_dir(run_id) / "pairs").mkdir()
    with pytest.raises(WarehouseError, match="unknown staging folder"):
        wh.commit(run_id, "hh", counts=RunCounts(0, 0, 0, 0))
    with pytest.raises(WarehouseError, match="unknown run 'nope'"):
        wh.commit("nope", "hh", counts=RunCounts(0, 0, 0, 0))
    with pytest.raises(WarehouseError, match="started for dataset 'hh'"):
        wh.commit(run_id, "other", counts=RunCounts(0, 0, 0, 0))


def test_committing_a_committed_run_again_returns_its_result_without_a_new_version(wh):
    res = ingest(wh, "hh", {"pairwise": hh_rows(4)})
    again = wh.commit(res.run_id, "hh", counts=RunCounts(4, 4, 4, 0))
    assert (again.status, again.version_id, again.counts) == ("committed", res.version_id, res.counts)
    assert wh.versions("hh").num_rows == 1


def test_failed_run_publishes_nothing_but_keeps_its_quarantine(wh):
    ingest(wh, "hh", {"pairwise": hh_rows(3)})
    head = wh.resolve_version("hh")
    run_id = wh.begin_run("ingest", "hh", {})
    stage(wh, run_id, "pairwise", hh_rows(5, start=50))
    stage_rejects(wh, run_id, [Reject("validate", "tie_rate_out_of_bounds", "batch", "f", 1)])
    wh.fail_run(run_id, "ValidationFailed: tie rate 0.9 > 0.5\nmore detail")
    run = _runs(wh)[run_id]
    assert run["status"] == "failed" and run["error"].startswith("ValidationFailed") and run["version_id"] is None
    assert wh.resolve_version("hh") == head
    assert wh.query(f"SELECT reason FROM quarantine WHERE run_id = '{run_id}'").column(0).to_pylist() == [
        "tie_rate_out_of_bounds"
    ]
    assert not wh.layout.staging(run_id).exists()
    with pytest.raises(WarehouseError, match="is failed"):
        wh.commit(run_id, "hh", counts=RunCounts(5, 5, 5, 0))


def test_fail_run_does_not_rewrite_a_committed_run(wh):
    res = ingest(wh, "hh", {"pairwise": hh_rows(2)})
    wh.fail_run(res.run_id, "late error")
    assert _runs(wh)[res.run_id]["status"] == "committed"


@pytest.mark.parametrize("name", ["../evil", "", "a b", "x" * 200, "a/b"])
def test_bad_dataset_names_are_refused(wh, name):
    with pytest.raises(WarehouseError, match="invalid dataset"):
        wh.begin_run("ingest", name, {})


def test_run_metrics_merge_and_params_are_json(wh):
    run_id = wh.begin_run("judge", "hh", {"model": "m", "temperature": 0.0})
    wh.set_run_metrics(run_id, {"cache_hits": 3, "tokens": 100})
    wh.set_run_metrics(run_id, {"cache_misses": 1, "tokens": 150, "cost_usd": 0.25})
    got = wh.query(
        f"SELECT metrics->>'tokens' AS tokens, metrics->>'cache_hits' AS hits, params->>'model' AS model "
        f"FROM runs WHERE run_id = '{run_id}'"
    ).to_pylist()
    assert got == [{"tokens": "150", "hits": "3", "model": "m"}]


def test_resolve_version_full_prefix_unknown_and_ambiguous(wh):
    v1 = ingest(wh, "hh", {"pairwise": hh_rows(3)}).version_id
    v2 = ingest(wh, "hh", {"pairwise": hh_rows(3, start=30)}).version_id
    assert wh.resolve_version("hh") == v2
    assert wh.resolve_version("hh", v1) == v1 and wh.resolve_version("hh", v1[:6]) == v1
    with pytest.raises(WarehouseError, match="has no version 'zzz'"):
        wh.resolve_version("hh", "zzz")
    with pytest.raises(WarehouseError, match="unknown dataset 'nope'; known: hh"):
        wh.resolve_version("nope")
    # An ambiguous prefix needs two ids sharing it: give v2 v1's first four characters.
    from warehouse import versions

    with duckdb.connect(str(wh.root / "catalog.duckdb")) as con:
        con.execute("UPDATE meta.dataset_versions SET version_id = ? WHERE version_id = ?", [v1[:4] + v2[4:], v2])
        with pytest.raises(WarehouseError, match="ambiguous"):
            versions.resolve(con, "hh", v1[:4])


def test_missing_warehouse_gives_a_clear_error(tmp_path):
    wh = Warehouse(tmp_path / "nothing-here")
    with pytest.raises(WarehouseError, match="no warehouse at"):
        wh.datasets()
    with pytest.raises(WarehouseError, match="no warehouse at"):
        wh.read("hh", "pairwise")


def test_default_root_comes_from_the_environment(monkeypatch, tmp_path):
    from warehouse import default_root

    monkeypatch.setenv("PREFMILL_WAREHOUSE", str(tmp_path / "w"))
    assert default_root() == tmp_path / "w" and Warehouse().root == (tmp_path / "w").resolve()
    monkeypatch.delenv("PREFMILL_WAREHOUSE")
    assert str(default_root()) == ".prefmill/warehouse"


def test_a_truncated_shard_and_a_corrupt_catalog_are_clear_errors(wh):
    run_id = wh.begin_run("ingest", "hh", {})
    path = stage(wh, run_id, "pairwise", hh_rows(3))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WarehouseError, match="not readable Parquet"):
        wh.commit(run_id, "hh", counts=RunCounts(3, 3, 3, 0))
    (wh.root / "catalog.duckdb").write_bytes(b"not a database" * 100)
    with pytest.raises(WarehouseError, match="cannot open the catalog"):
        wh.runs()


def test_first_occurrence_is_by_source_position_not_shard_name(wh):
    rows = hh_rows(6)
    repeat = {**rows[1], "source_row": 999}  # the same content again, later in the source
    run_id = wh.begin_run("ingest", "hh", {})
    # Pipelines name shards at random: here the shard holding the later rows sorts first.
    stage(wh, run_id, "pairwise", rows[3:] + [repeat], part=0)
    stage(wh, run_id, "pairwise", rows[:3], part=1)
    res = wh.commit(run_id, "hh", counts=RunCounts(7, 7, 7, 0), steps=[])
    back = wh.read("hh", "pairwise")
    assert back.column("source_row").to_pylist() == [r["source_row"] for r in rows]
    assert wh.query("SELECT source_row FROM duplicates").column(0).to_pylist() == [999]
    assert res.counts.rows_duplicate == 1
