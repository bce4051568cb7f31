"""The executor runs steps on Beam: counts come from the steps, FitSteps see every row, order is kept."""

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipelines.executor import ROW, Executor
from schemas.step import FitStep, Reject, Source, SourceResult, Step, StepError, StepResult, reject_rows


class DropOdd(Step):
    name = "drop_odd"
    needs = ("x",)

    def process(self, batch):
        odd = pc.equal(pc.bit_wise_and(batch.column("x"), 1), 1)
        return StepResult(batch.filter(pc.invert(odd)), reject_rows(batch.filter(odd), self.name, "odd"))


class DedupMod(FitStep):
    """Whole-dataset: rows whose x % m was seen earlier (in input order) are duplicates of the first."""

    name = "dedup_mod"
    needs = ("x", "record_id")

    def __init__(self, m):
        super().__init__()
        self.m = m

    def fit(self, table):
        first, dup = {}, {}
        for row, x, rid in zip(
            table.column(ROW).to_pylist(), table.column("x").to_pylist(), table.column("record_id").to_pylist()
        ):
            key = x % self.m
            if key in first:
                dup[row] = first[key]
            else:
                first[key] = rid
        return dup

    def process(self, batch, state):
        rows = batch.column(ROW).to_pylist()
        is_dup = pa.array([r in state for r in rows])
        dups = batch.filter(is_dup)
        rej = reject_rows(dups, self.name, "duplicate", duplicate_of=[state[r] for r in dups.column(ROW).to_pylist()])
        return StepResult(batch.filter(pc.invert(is_dup)), rej)


class AddSquare(Step):
    name = "square"
    adds = ("sq",)

    def setup(self):
        self.ready = True

    def process(self, batch):
        assert self.ready
        return StepResult(batch.append_column("sq", pc.multiply(batch.column("x"), batch.column("x"))))


def _table(n):
    return pa.table({"record_id": [f"r{i}" for i in range(n)], "x": list(range(n))})


def test_steps_count_themselves_and_fit_steps_see_every_row(tmp_path):
    ex = Executor(tmp_path / "work", run_id="run-1", batch_rows=7)
    res = ex.run_table(_table(40), [DropOdd(), DedupMod(6), AddSquare()], "pairwise")
    out = res.table("pairwise")
    # Even x in 0..38; x % 6 in {0, 2, 4}: only the first of each residue survives, across batches.
    assert out.column("x").to_pylist() == [0, 2, 4]
    assert out.column("sq").to_pylist() == [0, 4, 16]
    assert ROW not in out.column_names and ROW in res.table("pairwise", keep_working=True).column_names
    counts = {c.step: c for c in res.counts}
    assert (counts["drop_odd"].rows_in, counts["drop_odd"].rows_kept, counts["drop_odd"].rows_rejected) == (40, 20, 20)
    d = counts["dedup_mod"]
    assert (d.rows_in, d.rows_kept, d.rows_rejected, d.rows_duplicate) == (20, 3, 0, 17)
    assert counts["square"].rows_in == counts["square"].rows_kept == 3
    rej = res.rejected()
    assert rej.num_rows == 37 and set(rej.column("run_id").to_pylist()) == {"run-1"}
    dup_of = {r["record_id"]: r["duplicate_of"] for r in rej.to_pylist() if r["reason"] == "duplicate"}
    assert dup_of["r6"] == "r0" and dup_of["r8"] == "r2" and dup_of["r38"] == "r2"
    assert counts["drop_odd"].reasons == {"odd": 20}


def test_a_pipeline_may_start_with_a_fit_step(tmp_path):
    res = Executor(tmp_path / "w", batch_rows=5).run_table(_table(12), [DedupMod(4)], "pairwise")
    assert res.table("pairwise").column("x").to_pylist() == [0, 1, 2, 3]
    assert res.count("dedup_mod").rows_duplicate == 8


class Lines(Source):
    """Each unit is a list of ints; negative ones are rejected records, k expands into k rows."""

    name = "lines"

    def __init__(self, units):
        super().__init__()
        self.units = units

    def plan(self):
        return self.units

    def read(self, unit):
        xs = [x for x in unit if x >= 0 for _ in range(max(x, 1))]
        rejects = [Reject(self.name, "negative", source_row=i) for i, x in enumerate(unit) if x < 0]
        return SourceResult(
            {"pairwise": pa.table({"record_id": [f"{x}" for x in xs], "x": xs})} if xs else {},
            rejects,
            records_read=len(unit),
        )


def test_sources_expand_and_their_counts_add_up(tmp_path):
    out = tmp_path / "staging"
    res = Executor(tmp_path / "w").run_source(Lines([[1, 2, -1], [3, -5], []]), [DropOdd()], out=out)
    src = res.count("lines")
    assert (src.records_read, src.rows_in, src.rows_kept, src.rows_rejected) == (5, 8, 6, 2)
    assert res.count("drop_odd").rows_in == 6 and res.table("pairwise").column("x").to_pylist() == [2, 2]
    assert sorted(p.name for p in (out / "pairwise").iterdir()) == ["000000.parquet"]
    assert res.shapes == {"pairwise": 2}


def test_missing_column_is_one_clear_error(tmp_path):
    with pytest.raises(Exception, match="needs column"):
        Executor(tmp_path / "w").run_table(pa.table({"y": [1]}), [DropOdd()], "pairwise")


def test_a_step_that_loses_rows_is_refused():
    class Loses(Step):
        name = "loses"

        def process(self, batch):
            return StepResult(batch.slice(1))

    with pytest.raises(StepError, match="1 rows in but 0 kept"):
        Loses()(pa.table({"x": [1]}))


def test_a_fit_step_after_every_row_was_removed_fits_nothing(tmp_path):
    class DropAll(Step):
        name = "drop_all"

        def process(self, batch):
            return StepResult(batch.slice(0, 0), reject_rows(batch, self.name, "gone"))

    res = Executor(tmp_path / "w", batch_rows=3).run_table(_table(7), [DropAll(), DedupMod(2), AddSquare()], "pairwise")
    assert res.shapes == {} and res.count("drop_all").rows_rejected == 7
    assert res.count("dedup_mod").rows_in == 0 and res.count("square").rows_in == 0
    with pytest.raises(StepError, match="no kept rows"):
        res.table("pairwise")
