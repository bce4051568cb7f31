"""The one executor: runs a list of steps on Beam, stages kept and rejected rows, sums the steps' counts.

A pipeline is a ``Source`` (or an input table) followed by steps (``schemas.step``). The executor cuts it
into segments at every whole-dataset step (``FitStep``): a segment is one Beam pipeline whose elements
are work units (a source's units, or Parquet shards of the previous segment) and whose one ``ParDo`` runs
the segment's steps in order on each unit, each step set up once per worker. Between segments the driver
reads the previous segment's kept rows, calls ``fit`` and hands the state to the next segment, whose first
step is that ``FitStep``'s per-batch ``process``. So a cluster runner parallelises every per-batch half.

Every unit writes, named by its index (a retried bundle overwrites instead of double-counting):
kept rows as ``<out>/<shape>/<index>.parquet``, rejected rows (``REJECTED``) as
``<work>/rejected/<segment>-<index>.parquet`` and the steps' counts as ``<work>/counts/<segment>-<index>.json``.
The driver sums the counts after each segment. Columns whose name starts with ``_`` (the executor's
``_row`` index, an ``_embedding``) are working columns: they travel between segments and are dropped
from the final output.

Runner: ``FnApiRunner`` in-process by default; ``parallel_workers`` decides when to fork SDK workers from
a warm zygote (``pipelines.workers``); any other Beam option (``--runner=...``) passes through unchanged,
and cluster runners need the staging directory on a shared filesystem.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import workers
from pipelines.beam_options import beam_options
from schemas.step import REJECTED, Counts, FitStep, Source, SourceResult, Step, StepError, StepResult

ROW = "_row"  # the executor's row index over an input table: FitStep states key rows by it
DEFAULT_BATCH_ROWS = 4096


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write atomically (tmp + rename) so a half-written shard is never picked up."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


@dataclass(frozen=True)
class Unit:
    """One element of a segment: a source's unit, or a staged shard of one shape."""

    index: int
    shape: str | None = None
    path: str | None = None  # a shard of the previous segment
    payload: Any = None  # a source's unit


@dataclass
class _Stage:
    """One step as a segment runs it: the step, and the fitted state for a FitStep."""

    step: Step | FitStep[Any]
    state: Any = None

    def run(self, table: pa.Table, shape: str) -> StepResult:
        if isinstance(self.step, FitStep):
            return self.step(table, self.state, shape)
        return self.step(table, shape)


class SegmentFn(beam.DoFn):
    """Runs one segment's steps on each unit; sets every step up once per worker."""

    def __init__(
        self, segment: int, source: Source[Any] | None, stages: list[_Stage], out: str, work: str, run_id: str
    ):
        self.segment, self.source, self.stages = segment, source, stages
        self.out, self.work, self.run_id = out, work, run_id

    def setup(self) -> None:
        for s in self._all():
            s.setup()

    def teardown(self) -> None:
        for s in self._all():
            s.teardown()

    def _all(self) -> list[Any]:
        return ([self.source] if self.source is not None else []) + [st.step for st in self.stages]

    def process(self, unit: Unit) -> Iterable[dict]:
        name = f"{self.segment:02d}-{unit.index:06d}"
        rejected: list[pa.Table] = []
        if self.source is not None:
            res: SourceResult = self.source(unit.payload)
            tables = res.tables
            rejected.append(res.rejected)
        else:
            assert unit.path is not None and unit.shape is not None
            tables = {unit.shape: pq.read_table(unit.path)}
        for shape, table in tables.items():
            for st in self.stages:
                if not st.step.applies_to(shape):
                    continue
                r = st.run(table, shape)
                table = r.kept
                if r.rejected.num_rows:
                    rejected.append(r.rejected)
            if table.num_rows:
                write_parquet(table, Path(self.out) / shape / f"{unit.index:06d}.parquet")
        rej = (
            pa.concat_tables([_with_run_id(t, self.run_id) for t in rejected if t.num_rows])
            if any(t.num_rows for t in rejected)
            else None
        )
        if rej is not None:
            write_parquet(rej, Path(self.work) / "rejected" / f"{name}.parquet")
        counts = [s.take_counts().to_json() for s in self._all()]
        write_json(Path(self.work) / "counts" / f"{name}.json", counts)
        yield {"unit": unit.index}


def _with_run_id(t: pa.Table, run_id: str) -> pa.Table:
    """Rejected rows in ``REJECTED`` shape, stamped with the run (steps need not know it)."""
    if t.schema != REJECTED:
        t = t.select(REJECTED.names).cast(REJECTED)
    col = t.column("run_id")
    if col.null_count == 0 and (not run_id or not pc.any(pc.equal(col, "")).as_py()):
        return t
    fixed = pc.if_else(pc.or_kleene(pc.is_null(col), pc.equal(col, "")), run_id, col)
    return t.set_column(0, "run_id", fixed)


@dataclass
class ExecResult:
    """What a run of steps left behind: kept shards per shape under ``out``, rejected rows and counts."""

    out: Path
    work: Path
    counts: list[Counts]
    shapes: dict[str, int] = field(default_factory=dict)  # kept rows per shape

    def table(self, shape: str, *, keep_working: bool = False) -> pa.Table:
        """The kept rows of ``shape`` in input order (working ``_`` columns dropped unless asked)."""
        files = sorted((self.out / shape).glob("*.parquet")) if (self.out / shape).exists() else []
        if not files:
            raise StepError(f"no kept rows of shape {shape!r}")
        t = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
        return t if keep_working else drop_working(t)

    def rejected(self) -> pa.Table:
        files = sorted((self.work / "rejected").glob("*.parquet")) if (self.work / "rejected").exists() else []
        if not files:
            return REJECTED.empty_table()
        return pa.concat_tables([pq.read_table(f) for f in files])

    def count(self, step: str) -> Counts:
        for c in self.counts:
            if c.step == step:
                return c
        raise KeyError(step)

    @property
    def rows_rejected(self) -> int:
        return sum(c.rows_rejected for c in self.counts)

    @property
    def rows_duplicate(self) -> int:
        return sum(c.rows_duplicate for c in self.counts)

    def cleanup(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def drop_working(t: pa.Table) -> pa.Table:
    working = [c for c in t.column_names if c.startswith("_")]
    return t.drop_columns(working) if working else t


def with_row_index(table: pa.Table) -> pa.Table:
    import numpy as np

    idx = pa.array(np.arange(table.num_rows, dtype=np.int64))
    if ROW in table.column_names:
        return table.set_column(table.column_names.index(ROW), ROW, idx)
    return table.append_column(ROW, idx)


class Executor:
    """Runs steps on Beam (see the module docstring). One instance per run; ``work`` is its scratch dir."""

    def __init__(
        self,
        work: Path,
        *,
        run_id: str = "",
        beam_args: Sequence[str] | None = None,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        workers: int = 0,
    ):
        self.work, self.run_id = Path(work), run_id
        self.beam_args = list(beam_args or [])
        self.batch_rows, self.workers = max(1, int(batch_rows)), workers

    # ------------------------------------------------------------------ entry points
    def run_source(
        self, source: Source[Any], steps: Sequence[Step | FitStep[Any]], out: Path | None = None
    ) -> ExecResult:
        """``source`` → ``steps``; the last segment's kept shards land in ``out`` (default: under work)."""
        units = [Unit(i, payload=u) for i, u in enumerate(source.plan())]
        return self._run(source, units, list(steps), out)

    def run_table(
        self, table: pa.Table, steps: Sequence[Step | FitStep[Any]], shape: str, out: Path | None = None
    ) -> ExecResult:
        """An in-memory table (with a ``_row`` index added) → ``steps``."""
        table = with_row_index(table)
        inp = self.work / "input" / shape
        shutil.rmtree(inp, ignore_errors=True)
        units = []
        for i, off in enumerate(range(0, table.num_rows, self.batch_rows)):
            p = inp / f"{i:06d}.parquet"
            write_parquet(table.slice(off, self.batch_rows), p)
            units.append(Unit(i, shape=shape, path=str(p)))
        return self._run(None, units, list(steps), out)

    # ------------------------------------------------------------------ segments
    def _run(
        self, source: Source[Any] | None, units: list[Unit], steps: list[Step | FitStep[Any]], out: Path | None
    ) -> ExecResult:
        for d in ("rejected", "counts"):
            shutil.rmtree(self.work / d, ignore_errors=True)
        segments = _segments(steps)
        totals: dict[str, Counts] = {}
        order: list[str] = ([source.step_name] if source is not None else []) + [s.step_name for s in steps]
        final = Path(out) if out is not None else self.work / "out"
        prev: Path | None = None  # the previous segment's kept shards
        if source is None and not segments[0]:
            # The pipeline starts with a FitStep: it fits on the input shards themselves.
            segments, prev = segments[1:], self.work / "input"
        for k, seg in enumerate(segments):
            seg_out = final if k == len(segments) - 1 else self.work / f"seg{k:02d}"
            shutil.rmtree(seg_out, ignore_errors=True)
            if prev is not None:
                fit = seg[0]
                assert isinstance(fit, FitStep)
                fitted = _read_shape(prev, fit)
                # No rows left for it (an earlier step removed them all): nothing to fit or apply.
                state = fit.fit_checked(*fitted) if fitted is not None else None
                stages = [_Stage(fit, state)] + [_Stage(s) for s in seg[1:]]
                units = _shard_units(prev)
            else:
                stages = [_Stage(s) for s in seg]
            if units:
                self._beam(
                    SegmentFn(k, source if prev is None else None, stages, str(seg_out), str(self.work), self.run_id),
                    units,
                )
            for c in self._collect(k):
                totals[c.step] = totals[c.step] + c if c.step in totals else c
            if prev is not None:
                shutil.rmtree(prev, ignore_errors=True)
            prev = seg_out
        seg_out = final
        if not segments:  # no steps at all: the input is the output
            shutil.rmtree(final, ignore_errors=True)
            if source is None:
                shutil.copytree(self.work / "input", final)
        counts = [totals.get(name, Counts(name)) for name in order]
        shapes = (
            {
                d.name: sum(pq.read_metadata(f).num_rows for f in d.glob("*.parquet"))
                for d in sorted(seg_out.iterdir())
                if d.is_dir()
            }
            if seg_out.exists()
            else {}
        )
        return ExecResult(final, self.work, counts, shapes)

    def _collect(self, segment: int) -> list[Counts]:
        out: dict[str, Counts] = {}
        for f in sorted((self.work / "counts").glob(f"{segment:02d}-*.json")):
            for d in json.loads(f.read_text()):
                c = Counts.from_json(d)
                out[c.step] = out[c.step] + c if c.step in out else c
        return list(out.values())

    def _beam(self, fn: SegmentFn, units: list[Unit]) -> None:
        # Forked workers only where the caller asked for them (pipelines.workers.parallel_workers decides).
        n = min(self.workers, len(units))
        if n > 1:
            with workers.forked_runner(n, self.beam_args) as (runner, options):
                _pipeline(beam.Pipeline(runner=runner, options=options), units, fn)
        else:
            _pipeline(beam.Pipeline(options=beam_options(self.beam_args)), units, fn)


def _pipeline(pipeline: beam.Pipeline, units: list[Unit], fn: SegmentFn) -> None:
    with pipeline as p:
        _ = p | "Units" >> beam.Create(units, reshuffle=len(units) > 1) | "Steps" >> beam.ParDo(fn)


def _segments(steps: list[Step | FitStep[Any]]) -> list[list[Step | FitStep[Any]]]:
    """Cut before every FitStep: each one starts a segment (its fit runs on the driver between them)."""
    segs: list[list[Step | FitStep[Any]]] = [[]]
    for s in steps:
        if not isinstance(s, (Step, FitStep)):
            raise StepError(f"{s!r} is not a step (schemas.step.Step or FitStep)")
        if isinstance(s, FitStep):
            segs.append([s])
        else:
            segs[-1].append(s)
    return segs


def _shard_units(seg_dir: Path) -> list[Unit]:
    units: list[Unit] = []
    if seg_dir.exists():
        for d in sorted(p for p in seg_dir.iterdir() if p.is_dir()):
            for f in sorted(d.glob("*.parquet")):
                units.append(Unit(len(units), shape=d.name, path=str(f)))
    return units


def _read_shape(seg_dir: Path, step: FitStep[Any]) -> tuple[pa.Table, str] | None:
    """What a FitStep fits on: the previous segment's kept rows of the one shape it applies to, in order
    (None when no row is left for it)."""
    units = [u for u in _shard_units(seg_dir) if step.applies_to(u.shape)]
    shapes = sorted({u.shape for u in units if u.shape})
    if not shapes:
        return None
    if len(shapes) != 1:
        found = ", ".join(shapes) or "none"
        raise StepError(f"step {step.step_name!r} fits on one shape; the rows before it have {found}")
    return pa.concat_tables([pq.read_table(u.path) for u in units], promote_options="default"), shapes[0]
