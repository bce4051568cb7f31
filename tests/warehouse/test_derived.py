"""commit_derived(): curation/judging versions made from the latest version."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tests.warehouse.conftest import hh_rows, ingest, kto_rows
from warehouse import RunCounts, StepCount, WarehouseError


def _curate(wh, keep_every=2, extra=True):
    """Keep every other pair, add a reward score column, record why the others went."""
    base = ingest(wh, "hh", {"pairwise": hh_rows(20), "binary": kto_rows(6)})
    parent = wh.resolve_version("hh")
    pairs = wh.read("hh", "pairwise")
    mask = pa.array([i % keep_every == 0 for i in range(pairs.num_rows)])
    kept = pairs.filter(mask)
    if extra:
        kept = kept.append_column("reward_margin", pa.array([float(i) for i in range(kept.num_rows)]))
    gone = pairs.filter(pc.invert(mask))
    removals = pa.table(
        {
            "record_id": gone.column("record_id"),
            "step": pa.array(["isa"] * gone.num_rows),
            "reason": pa.array(["low_information"] * gone.num_rows),
        }
    )
    run_id = wh.begin_run("curate", "hh", {"method": "isa"})
    counts = RunCounts(
        records_read=pairs.num_rows, rows_read=pairs.num_rows, rows_kept=kept.num_rows, rows_rejected=gone.num_rows
    )
    steps = [StepCount("isa", pairs.num_rows, kept.num_rows, gone.num_rows)]
    res = wh.commit_derived(run_id, "hh", parent, {"pairwise": kept}, removals, counts, steps, {"budget": 0.5})
    return base, parent, pairs, kept, gone, res


def test_derived_version_replaces_listed_shapes_and_inherits_the_others(wh):
    base, parent, pairs, kept, gone, res = _curate(wh)
    assert res.status == "committed" and res.parent_version == parent != res.version_id
    assert wh.resolve_version("hh") == res.version_id
    back = wh.read("hh", "pairwise")
    assert back.column("record_id").to_pylist() == kept.column("record_id").to_pylist()
    assert back.column_names[-1] == "reward_margin" and back.column("reward_margin").to_pylist()[:3] == [0.0, 1.0, 2.0]
    assert wh.read("hh", "binary").equals(wh.read("hh", "binary", version=parent))
    assert wh.read("hh", "pairwise", version=parent).num_rows == 20  # the parent is untouched
    view = wh.query("SELECT count(*) AS n, count(reward_margin) AS scored, any_value(version_id) AS v FROM pairs")
    assert view.to_pylist() == [{"n": 10, "scored": 10, "v": res.version_id}]
    removed = wh.query("SELECT record_id, reason, version_id, run_id FROM removals ORDER BY record_id").to_pylist()
    assert sorted(r["record_id"] for r in removed) == sorted(gone.column("record_id").to_pylist())
    assert {(r["reason"], r["version_id"], r["run_id"]) for r in removed} == {
        ("low_information", res.version_id, res.run_id)
    }
    extra = wh.query(f"SELECT extra->>'budget' AS b FROM dataset_versions WHERE version_id = '{res.version_id}'")
    assert extra.column(0).to_pylist() == ["0.5"]


def test_rows_that_vanish_without_a_removal_record_are_refused(wh):
    ingest(wh, "hh", {"pairwise": hh_rows(6)})
    parent = wh.resolve_version("hh")
    pairs = wh.read("hh", "pairwise")
    run_id = wh.begin_run("curate", "hh", {})
    with pytest.raises(WarehouseError, match="disappear without a removal record"):
        wh.commit_derived(run_id, "hh", parent, {"pairwise": pairs.slice(0, 4)}, None, RunCounts(6, 6, 4, 2), [], {})
    assert wh.resolve_version("hh") == parent


def test_a_stale_parent_is_refused(wh):
    ingest(wh, "hh", {"pairwise": hh_rows(4)})
    stale = wh.resolve_version("hh")
    pairs = wh.read("hh", "pairwise")
    ingest(wh, "hh", {"pairwise": hh_rows(4, start=40)})
    run_id = wh.begin_run("curate", "hh", {})
    with pytest.raises(WarehouseError, match="no longer the latest"):
        wh.commit_derived(run_id, "hh", stale, {"pairwise": pairs}, None, RunCounts(4, 4, 4, 0), [], {})


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t.append_column("dataset", pa.array(["x"] * t.num_rows)), "reserved"),
        (lambda t: pa.concat_tables([t, t.slice(0, 1)]), "duplicate record_id"),
        (lambda t: t.drop_columns(["label"]), "missing column 'label'"),
    ],
)
def test_bad_derived_tables_are_refused(wh, mutate, message):
    ingest(wh, "hh", {"pairwise": hh_rows(4)})
    parent = wh.resolve_version("hh")
    bad = mutate(wh.read("hh", "pairwise"))
    run_id = wh.begin_run("curate", "hh", {})
    with pytest.raises(WarehouseError, match=message):
        wh.commit_derived(
            run_id,
            "hh",
            parent,
            {"pairwise": bad},
            None,
            RunCounts(bad.num_rows, bad.num_rows, bad.num_rows, 0),
            [],
            {},
        )


def test_identical_derived_content_is_no_change(wh):
    ingest(wh, "hh", {"pairwise": hh_rows(5)})
    parent = wh.resolve_version("hh")
    run_id = wh.begin_run("judge", "hh", {})
    res = wh.commit_derived(
        run_id, "hh", parent, {"pairwise": wh.read("hh", "pairwise")}, None, RunCounts(5, 5, 5, 0), [], {}
    )
    assert res.status == "no_change" and res.version_id is None and wh.resolve_version("hh") == parent
