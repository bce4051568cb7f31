"""Reward model and annotator groups as warehouse runs, on the real PandaLM annotators."""

import json

import pytest

from curation.errors import CurationError
from curation.reward import BTRewardModel
from flows.jobs import ingest
from flows.reward import fit_annotator_groups, score_dataset, train_reward
from tests.conftest import DATA
from warehouse import Warehouse, WarehouseError


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    wh = Warehouse(tmp_path_factory.mktemp("wh"))
    ingest(wh, [str(DATA / "pandalm_testset/testset-v1.json")], "pandalm", "panda")
    return wh


def test_train_store_and_score(wh):
    out = train_reward(wh, "panda", sample=60, seed=0)
    models = wh.query("SELECT model_id, kind, dataset, version_id FROM models").to_pylist()
    assert [m["model_id"] for m in models] == [out["model_id"]] and models[0]["kind"] == "bt_reward"
    blob, info = wh.get_model(out["model_id"][:12])
    rm = BTRewardModel.from_bytes(blob)
    assert rm.weights.shape == (384,) and info["dataset"] == "panda"
    run = wh.query(f"SELECT status, rows_read FROM runs WHERE run_id = '{out['run_id']}'").to_pylist()[0]
    assert run == {"status": "done", "rows_read": 60}
    # Retraining on the same pairs gives the same weights → the same content-addressed model id.
    again = train_reward(wh, "panda", sample=60, seed=0)
    assert again["model_id"] == out["model_id"]
    assert wh.query("SELECT count(*) n FROM models").to_pylist()[0]["n"] == 1


def test_groups_then_stratified_selection_keeps_every_group(wh):
    res = fit_annotator_groups(wh, "panda", key="annotator_id", k=2, sample=90, seed=0)
    assert set(res["assign"]) <= {"pandalm:annotator1", "pandalm:annotator2", "pandalm:annotator3"}
    assert set(res["assign"].values()) <= {0, 1}
    stored = wh.query(f"SELECT key, group_id FROM annotator_groups WHERE run_id = '{res['run_id']}'").to_pylist()
    assert {r["key"]: r["group_id"] for r in stored} == res["assign"]
    groups = wh.query("SELECT DISTINCT annotator_group FROM pairs WHERE dataset = 'panda'").column(0).to_pylist()
    assert set(groups) == set(res["assign"].values())


def test_grouping_needs_a_real_key(wh):
    with pytest.raises(CurationError):
        fit_annotator_groups(wh, "panda", key="no_such_column", k=2)
    with pytest.raises(WarehouseError):
        wh.get_model("doesnotexist")


def test_score_adds_calibrated_columns(tmp_path):
    import gzip

    wh = Warehouse(tmp_path / "wh")
    src = tmp_path / "small.jsonl"
    src.write_bytes(b"\n".join(gzip.open(DATA / "hh_rlhf_harmless_base/test.jsonl.gz", "rb").read().split(b"\n")[:40]))
    ingest(wh, [str(src)], "hh-rlhf", "small")
    model_id = train_reward(wh, "small")["model_id"]
    parent = wh.resolve_version("small")
    res = score_dataset(wh, "small", model_id)
    rows = wh.query("SELECT rm_prob, rm_margin, rm_model_id FROM pairs WHERE dataset = 'small'").to_pylist()
    assert rows and all(0.0 <= r["rm_prob"] <= 1.0 and r["rm_model_id"] == model_id for r in rows)
    # prob and margin agree in direction
    assert all((r["rm_prob"] > 0.5) == (r["rm_margin"] > 0) for r in rows if abs(r["rm_margin"]) > 1e-9)
    assert res["version_id"] != parent
    run = wh.query(f"SELECT metrics FROM runs WHERE run_id = '{res['run_id']}'").to_pylist()[0]
    assert json.loads(run["metrics"])["embed_computed"] == 0  # every text came from the store
