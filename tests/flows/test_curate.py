"""Curation as a run on real bundled pairs: a child version, removals with reasons, cached embeddings."""

import pytest

from curation.errors import CurationError
from flows.curate import curate
from flows.jobs import ingest
from pipelines.curate import CurateParams
from tests.conftest import DATA
from warehouse import Warehouse, WarehouseError


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    wh = Warehouse(tmp_path_factory.mktemp("wh"))
    ingest(wh, [str(DATA / "llamafactory_dpo_en_demo/dpo_en_demo.json")], "sharegpt", "dpo")
    ingest(wh, [str(DATA / "pandalm_testset/testset-v1.json")], "pandalm", "panda")
    return wh


def _count(wh, sql):
    return wh.query(sql).to_pylist()[0]["n"]


def test_curate_publishes_child_version_and_explains_every_removal(wh):
    parent = wh.resolve_version("dpo")
    n_parent = _count(wh, "SELECT count(*) n FROM pairs WHERE dataset='dpo'")
    rep = curate(wh, "dpo", CurateParams(method="isa", budget=0.5, sample=40, seed=1))
    c = rep.commit.counts
    assert c.rows_read == n_parent == c.rows_kept + c.rows_rejected + c.rows_duplicate
    assert rep.parent_version == parent and rep.commit.version_id != parent
    assert _count(wh, "SELECT count(*) n FROM pairs WHERE dataset='dpo'") == c.rows_kept == 20
    removed = wh.query(f"SELECT reason, count(*) n FROM removals WHERE run_id='{rep.run_id}' GROUP BY reason")
    by_reason = {r["reason"]: r["n"] for r in removed.to_pylist()}
    assert by_reason["not_sampled"] == n_parent - 40
    assert by_reason["not_selected:isa"] == 20
    assert sum(by_reason.values()) == c.rows_rejected + c.rows_duplicate
    # Kept rows carry the columns curation added.
    cols = wh.query("SELECT prompt_cluster, selection_score FROM pairs WHERE dataset='dpo'").to_pylist()
    assert all(r["prompt_cluster"] and r["selection_score"] is not None for r in cols)
    steps = wh.query(f"SELECT * FROM run_steps WHERE run_id='{rep.run_id}'").to_pylist()
    assert all(s["rows_in"] == s["rows_kept"] + s["rows_rejected"] + s["rows_duplicate"] for s in steps)
    # The parent version is untouched and still readable.
    assert wh.read("dpo", "pairwise", parent).num_rows == n_parent


def test_embeddings_are_never_computed_twice(wh):
    first = curate(wh, "panda", CurateParams(method="random", budget=0.5, sample=30, seed=3))
    assert first.outcome.embed.computed > 0
    # Same sample again (the curated child is the latest version now): every text comes from the store.
    again = curate(wh, "panda", CurateParams(method="kcenter", budget=0.9, seed=3))
    assert again.outcome.embed.texts == first.outcome.selection["selected"] > 0
    assert again.outcome.embed.computed == 0
    assert again.outcome.embed.cache_hits == again.outcome.embed.unique


@pytest.mark.parametrize("budget", [0.0, 1.5, -1.0])
def test_bad_budget_is_a_clear_error(wh, budget):
    before = wh.resolve_version("dpo")
    with pytest.raises(CurationError, match="budget"):
        curate(wh, "dpo", CurateParams(budget=budget))
    assert wh.resolve_version("dpo") == before


def test_unknown_dataset_and_method(wh):
    with pytest.raises(WarehouseError):
        curate(wh, "nope", CurateParams())
    with pytest.raises(CurationError, match="method"):
        curate(wh, "dpo", CurateParams(method="magic"))
