"""Ingest runs the registered checks after validation: the real KTO file's literal </s> row is quarantined."""

import pytest

from flows.jobs import ingest
from schemas.registry import UnknownName
from warehouse import Warehouse

KTO = "llamafactory_kto_en_demo/kto_en_demo.json"


def test_default_ingest_quarantines_the_row_with_a_literal_eos(tmp_path, data_dir):
    wh = Warehouse(tmp_path / "wh")
    rep = ingest(wh, [str(data_dir / KTO)], "sharegpt", "kto")
    q = wh.query(
        f"SELECT source_row, detail FROM quarantine WHERE run_id = '{rep.run_id}' AND reason = 'special_token'"
    )
    assert q.column("source_row").to_pylist() == [139]
    assert "'</s>'" in q.column("detail")[0].as_py()
    steps = wh.query(
        f"SELECT step, rows_in, rows_rejected FROM run_steps WHERE run_id = '{rep.run_id}' ORDER BY position"
    )
    names = steps.column("step").to_pylist()
    assert names[:3] == ["adapt", "validate", "special_tokens"]
    assert steps.to_pylist()[2]["rows_rejected"] == 1
    c = rep.commit.counts
    assert c.rows_read == c.rows_kept + c.rows_rejected + c.rows_duplicate

    # Without the check the row is kept: one more binary row in a fresh dataset.
    plain = ingest(wh, [str(data_dir / KTO)], "sharegpt", "kto_unchecked", checks=[])
    assert plain.commit.counts.rows_kept == c.rows_kept + 1


def test_an_unknown_check_is_one_clear_error(tmp_path, data_dir):
    with pytest.raises(UnknownName, match="unknown ingest check 'nope'; known: special_tokens"):
        ingest(Warehouse(tmp_path / "wh"), [str(data_dir / KTO)], "sharegpt", "kto", checks=["nope"])


def test_a_run_that_rejects_every_row_fails_with_one_line_and_keeps_its_quarantine(tmp_path, data_dir):
    from schemas.validation import NothingKept

    wh = Warehouse(tmp_path / "wh")
    # The wrong format for the file: every record is rejected by the adapter.
    with pytest.raises(NothingKept, match=r"all 300 rows read were rejected \(.*\); nothing was published") as err:
        ingest(wh, [str(data_dir / KTO)], "hh-rlhf", "kto")
    assert err.value.exit_code == 1 and "\n" not in str(err.value)
    run = wh.query("SELECT run_id, status, error FROM runs").to_pylist()[0]
    assert run["status"] == "failed" and "NothingKept" in run["error"]
    assert (
        wh.query(f"SELECT count(*) AS n FROM quarantine WHERE run_id = '{run['run_id']}'").column("n")[0].as_py() == 300
    )
    assert wh.query("SELECT count(*) AS n FROM datasets").column("n")[0].as_py() == 0
