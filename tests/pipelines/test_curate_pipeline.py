"""The curation pipeline's wiring: which steps run for which params, and what comes back (no model needed)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curation.errors import CurationError
from pipelines.curate import CurateParams, curate_steps, run_curation
from schemas import records as R
from schemas.step import REJECTED


def u(t):
    return {"role": "user", "content": t}


def a(t):
    return {"role": "assistant", "content": t}


@pytest.fixture
def table() -> pa.Table:
    rows = []
    for i in range(30):
        rows.append(R.pairwise([u(f"What is {i} plus {i}?")], [a(f"It is {2 * i}.")], [a(f"No idea about {i}.")]))
    rows.append(R.pairwise([u("What is 1 plus 1?")], [a("It is 2.")], [a("No idea about 1.")], policy="copy"))
    rows.append(R.pairwise([u("Say hi")], [a("Hi there!")], [a("hi there")]))  # carries no preference
    for i, r in enumerate(rows):
        r.update(format="test", source_file="t.jsonl", source_row=i, run_id="ingest-1")
    return R.to_table(rows, "pairwise")


def _names(params, n=100):
    return [s.step_name for s in curate_steps(params, n, "/nowhere", "/nowhere")]


def test_steps_follow_the_params():
    assert _names(CurateParams(method="isa", sample=40)) == [
        "sample",
        "exact_dedup",
        "near_identical_pairs",
        "near_dedup",
        "prompt_clusters",
        "embed",
        "semantic_dedup",
        "select_isa",
        "validate",
    ]
    assert _names(CurateParams(method="kcenter", sample=400, cluster_cap=2))[2:5] == [
        "near_dedup",
        "prompt_clusters",
        "cluster_cap",
    ]
    assert "sample" not in _names(CurateParams(sample=400))  # no more rows than the sample
    assert _names(CurateParams(method="none", semantic_threshold=0.9))[-3:] == ["embed", "semantic_dedup", "validate"]
    assert "embed" not in _names(CurateParams(method="none", semantic_threshold=1.0))


def test_dedup_only_run_reports_deciding_steps_and_explains_every_removal(table, tmp_path):
    params = CurateParams(method="none", semantic_threshold=1.0, sample=31, seed=0)
    out = run_curation(table, tmp_path / "store", params, tmp_path / "work", run_id="curate-1")
    # prompt_clusters adds a column and removes nothing: it is not part of the run's bookkeeping
    assert [c.step for c in out.counts] == ["sample", "exact_dedup", "near_identical_pairs", "near_dedup", "validate"]
    assert out.counts[0].rows_in == 32 and out.count("sample").rows_rejected == 1
    assert out.embed is None and out.selection == {}
    assert out.rejected.schema == REJECTED and set(out.rejected.column("run_id").to_pylist()) == {"curate-1"}
    total = sum(c.rows_rejected + c.rows_duplicate for c in out.counts)
    assert out.kept.num_rows + out.rejected.num_rows == 32 and out.rejected.num_rows == total
    assert out.kept.num_rows == out.counts[-1].rows_kept
    assert out.steps[0] == {"step": "sample", "rows_in": 32, "rows_kept": 31, "rows_rejected": 1, "rows_duplicate": 0}
    assert "prompt_cluster" in out.kept.column_names and not any(c.startswith("_") for c in out.kept.column_names)
    dup = out.rejected.filter(pa.compute.invert(pa.compute.is_null(out.rejected.column("duplicate_of"))))
    assert set(dup.column("step").to_pylist()) <= {"exact_dedup", "near_dedup"}


@pytest.mark.parametrize("kw, match", [({"method": "magic"}, "method"), ({"budget": 1.5}, "budget")])
def test_bad_params_fail_before_any_work(table, tmp_path, kw, match):
    with pytest.raises(CurationError, match=match):
        run_curation(table, tmp_path, CurateParams(**kw), tmp_path / "work")
    assert not (tmp_path / "work").exists()


def test_an_empty_table_is_one_clear_error(table, tmp_path):
    with pytest.raises(CurationError, match="no pairwise rows"):
        run_curation(table.slice(0, 0), tmp_path, CurateParams(), tmp_path / "work")
