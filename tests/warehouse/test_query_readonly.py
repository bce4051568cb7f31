"""wh.query(): reads only. Writes are refused by statement type before execution, the catalog is
opened read-only, and file access is confined to the lake."""

from __future__ import annotations

import hashlib

import pytest

from tests.warehouse.conftest import hh_rows, ingest
from warehouse import Warehouse, WarehouseError


@pytest.fixture
def filled(wh):
    ingest(wh, "hh", {"pairwise": hh_rows(5)})
    return wh


def _snapshot(wh: Warehouse) -> dict[str, str]:
    return {
        str(p.relative_to(wh.root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(wh.root.rglob("*"))
        if p.is_file() and p.name != ".writer.lock"
    }


@pytest.mark.parametrize(
    "sql, keyword",
    [
        ("COPY (SELECT * FROM pairs) TO '{out}'", "COPY"),
        ("ATTACH '{out}' AS other", "ATTACH"),
        ("INSTALL httpfs", "INSTALL"),
        ("LOAD httpfs", "LOAD"),
        ("SET threads = 1", "SET"),
        ("PRAGMA version", "PRAGMA"),
        ("CREATE TABLE t AS SELECT 1", "CREATE"),
        ("INSERT INTO meta.runs (run_id) VALUES ('x')", "INSERT"),
        ("UPDATE meta.datasets SET latest_version = 'x'", "UPDATE"),
        ("DELETE FROM meta.version_files", "DELETE"),
        ("EXPORT DATABASE '{out}'", "EXPORT"),
        ("DROP VIEW pairs", "DROP"),
        ("SELECT 1; DROP VIEW pairs", "DROP"),
        ("EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}'", "COPY"),
        ("CHECKPOINT", "CHECKPOINT"),
        ("CALL pragma_version()", "CALL"),
    ],
)
def test_statements_that_could_write_are_refused_and_change_nothing(filled, tmp_path, sql, keyword):
    out = tmp_path / "leak.out"
    before = _snapshot(filled)
    with pytest.raises(WarehouseError, match=f"^read-only: {keyword} statements are refused$"):
        filled.query(sql.format(out=out))
    assert _snapshot(filled) == before and not out.exists()


def test_reads_work_and_return_arrow(filled):
    t = filled.query("WITH c AS (SELECT label, count(*) AS n FROM pairs GROUP BY label) SELECT * FROM c")
    assert t.to_pylist() == [{"label": "chosen_better", "n": 5}]
    assert filled.query("EXPLAIN SELECT * FROM pairs").num_rows >= 1
    assert filled.query("DESCRIBE pairs").num_rows == len(filled.read("hh", "pairwise").column_names) + 2


def test_files_outside_the_lake_cannot_be_read(filled, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    with pytest.raises(WarehouseError, match="Permission Error"):
        filled.query(f"SELECT * FROM read_csv('{secret}')")


def test_sql_errors_are_one_line(filled):
    with pytest.raises(WarehouseError) as err:
        filled.query("SELECT nope FROM pairs")
    assert "nope" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(WarehouseError, match="syntax error"):
        filled.query("SELEC 1")
    with pytest.raises(WarehouseError, match="empty query"):
        filled.query("  ")
    with pytest.raises(WarehouseError, match="one statement"):
        filled.query("SELECT 1; SELECT 2")


def test_missing_warehouse_is_a_clear_error(tmp_path):
    with pytest.raises(WarehouseError, match=r"^no warehouse at .*nowhere"):
        Warehouse(tmp_path / "nowhere").query("SELECT 1")
    assert not (tmp_path / "nowhere").exists()  # a read never creates a warehouse
