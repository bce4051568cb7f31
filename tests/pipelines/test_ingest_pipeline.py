"""The Beam ingest pipeline on real bundled data, with bad rows mixed in."""

import gzip
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import pipelines.workers as workers_mod
from pipelines.ingest import ingest_steps, run_ingest
from schemas.adapters import UnknownFormat
from schemas.canonical import QUARANTINE
from schemas.readers import SourceError
from schemas.step import Step, StepResult, reject_rows

HH = Path(__file__).resolve().parents[2] / "examples" / "data" / "hh_rlhf_harmless_base" / "test.jsonl.gz"


def _mixed_file(tmp_path: Path, n_good: int = 300) -> tuple[Path, int]:
    lines = gzip.open(HH, "rb").read().split(b"\n")[:n_good]
    bad = [
        b"{not json",
        b'{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: a"}',  # missing rejected
        b'{"chosen": 5, "rejected": "x"}',  # wrong type
        b'{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: same", "rejected": "\\n\\nHuman: hi\\n\\nAssistant: same"}',
        b"\xff\xfe broken utf8",
    ]
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        if i % 60 == 0 and bad:
            out.append(bad.pop())
    out.extend(bad)
    p = tmp_path / "mixed.jsonl"
    p.write_bytes(b"\n".join(out) + b"\n")
    return p, n_good


def test_counts_add_up_and_bad_rows_are_quarantined(tmp_path):
    src, n_good = _mixed_file(tmp_path)
    # The same real lines alone: the real data has a few rows of its own that fail (empty turns).
    clean = tmp_path / "clean.jsonl"
    clean.write_bytes(b"\n".join(gzip.open(HH, "rb").read().split(b"\n")[:n_good]) + b"\n")
    base = run_ingest([str(clean)], "hh-rlhf", run_id="r0", staging=tmp_path / "s0")
    staging = tmp_path / "staging"
    counts = run_ingest([str(src)], "hh-rlhf", run_id="r1", staging=staging, chunk_rows=64)
    assert counts.records_read == n_good + 5
    assert counts.rows_read == counts.rows_kept + counts.rows_rejected
    assert counts.rows_rejected == base.rows_rejected + 5
    assert counts.rows_kept == base.rows_kept
    for reason in ("invalid_json", "missing_field", "wrong_type", "chosen_equals_rejected", "invalid_utf8"):
        assert counts.reasons[reason] == base.reasons[reason] + 1, reason
    kept = pq.read_table(staging / "pairwise")
    assert kept.num_rows == counts.rows_kept
    # Lineage: every kept row names its file and its line in it, and lines are unique.
    rows = kept.select(["source_file", "source_row", "run_id"]).to_pylist()
    assert {r["source_file"] for r in rows} == {str(src.resolve())}
    assert len({r["source_row"] for r in rows}) == counts.rows_kept
    q = pq.read_table(staging / "quarantine").to_pylist()
    assert len(q) == counts.rows_rejected and all(r["reason"] and r["raw"] is not None for r in q)
    # The bad line's row number points at the actual line in the file.
    lines = src.read_bytes().split(b"\n")
    bad_json = next(r for r in q if r["reason"] == "invalid_json")
    assert lines[bad_json["source_row"]] == b"{not json"


def test_counts_are_the_steps_own_and_rejects_are_one_quarantine_shard(tmp_path):
    src, n_good = _mixed_file(tmp_path)
    staging = tmp_path / "staging"
    counts = run_ingest([str(src)], "hh-rlhf", run_id="r1", staging=staging, chunk_rows=64)
    adapt, validate, special = counts.steps
    assert (adapt.step, validate.step, special.step) == ("adapt", "validate", "special_tokens")
    assert adapt.records_read == counts.records_read == n_good + 5
    # adapt: rows in = candidate rows + records rejected before producing one; validate sees the rest,
    # then the default ingest check (special_tokens) what validation kept.
    assert adapt.rows_in == adapt.rows_kept + adapt.rows_rejected == counts.rows_read
    assert validate.rows_in == adapt.rows_kept and special.rows_in == validate.rows_kept
    assert special.rows_kept == counts.rows_kept
    assert counts.rows_rejected == adapt.rows_rejected + validate.rows_rejected + special.rows_rejected
    assert counts.reasons == adapt.reasons + validate.reasons + special.reasons
    assert dict(counts.shapes) == {"pairwise": counts.rows_kept}
    shards = sorted((staging / "quarantine").iterdir())
    assert [p.name for p in shards] == ["rejected.parquet"]
    q = pq.read_table(shards[0])
    assert q.schema.equals(QUARANTINE) and q.num_rows == counts.rows_rejected
    assert set(q.column("run_id").to_pylist()) == {"r1"}
    by_step = Counter(q.column("step").to_pylist())
    assert by_step["validate"] == validate.rows_rejected and by_step["adapt"] + by_step["parse"] == adapt.rows_rejected
    assert not (tmp_path / "staging.work").exists()  # the executor's scratch space is gone


class _NoQuestionMarks(Step):
    """A check appended after validation: rejects pairs whose prompt ends with a question mark."""

    name = "no_question_marks"

    def process(self, batch: pa.Table) -> StepResult:
        last = [p[-1]["content"].endswith("?") for p in batch.column("prompt").to_pylist()]
        bad = pa.array(last)
        return StepResult(
            batch.filter(pc.invert(bad)), reject_rows(batch.filter(bad), self.step_name, "question", shape=self.shape)
        )


def test_an_appended_step_rejects_into_the_quarantine_and_is_counted(tmp_path):
    src, _ = _mixed_file(tmp_path, 200)
    base = run_ingest([str(src)], "hh-rlhf", run_id="a", staging=tmp_path / "a", chunk_rows=50)
    counts = run_ingest(
        [str(src)],
        "hh-rlhf",
        run_id="b",
        staging=tmp_path / "b",
        chunk_rows=50,
        steps=[*ingest_steps(), _NoQuestionMarks()],
    )
    extra = counts.steps[-1]
    assert [c.step for c in counts.steps] == ["adapt", "validate", "special_tokens", "no_question_marks"]
    assert 0 < extra.rows_rejected < extra.rows_in == base.rows_kept
    assert counts.rows_kept == base.rows_kept - extra.rows_rejected
    assert counts.rows_rejected == base.rows_rejected + extra.rows_rejected
    assert counts.reasons["question"] == extra.rows_rejected
    q = pq.read_table(tmp_path / "b" / "quarantine")
    assert q.num_rows == counts.rows_rejected and Counter(q.column("step").to_pylist())["no_question_marks"] == (
        extra.rows_rejected
    )
    kept = pq.read_table(tmp_path / "b" / "pairwise")
    assert kept.num_rows == counts.rows_kept
    assert not any(p[-1]["content"].endswith("?") for p in kept.column("prompt").to_pylist())


def test_bad_format_or_missing_file_fails_before_any_work(tmp_path):
    src, _ = _mixed_file(tmp_path, 10)
    with pytest.raises(UnknownFormat, match="known formats"):
        run_ingest([str(src)], "nope", run_id="r", staging=tmp_path / "s")
    with pytest.raises(SourceError, match="not found"):
        run_ingest([str(tmp_path / "missing.jsonl")], "hh-rlhf", run_id="r", staging=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_chunking_does_not_change_the_result(tmp_path):
    src, _ = _mixed_file(tmp_path, 200)
    a = run_ingest([str(src)], "hh-rlhf", run_id="a", staging=tmp_path / "a", chunk_rows=17)
    b = run_ingest([str(src)], "hh-rlhf", run_id="b", staging=tmp_path / "b", chunk_rows=100_000)
    ids_a = sorted(pq.read_table(tmp_path / "a" / "pairwise").column("record_id").to_pylist())
    ids_b = sorted(pq.read_table(tmp_path / "b" / "pairwise").column("record_id").to_pylist())
    assert ids_a == ids_b and a.rows_rejected == b.rows_rejected


def test_empty_file_reads_nothing(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_bytes(b"")
    counts = run_ingest([str(p)], "hh-rlhf", run_id="e", staging=tmp_path / "s")
    assert counts.records_read == 0 and counts.rows_read == 0


def test_record_over_size_limit_is_quarantined_not_loaded(tmp_path):
    big = json.dumps(
        {
            "chosen": "\n\nHuman: q\n\nAssistant: " + "x" * (10 * 1024 * 1024),
            "rejected": "\n\nHuman: q\n\nAssistant: no",
        }
    )
    good = json.dumps({"chosen": "\n\nHuman: q\n\nAssistant: yes", "rejected": "\n\nHuman: q\n\nAssistant: no"})
    p = tmp_path / "big.jsonl"
    p.write_text(good + "\n" + big + "\n" + good.replace("yes", "sure") + "\n")
    counts = run_ingest([str(p)], "hh-rlhf", run_id="b", staging=tmp_path / "s", max_record_bytes=1024 * 1024)
    assert counts.rows_kept == 2 and counts.reasons["record_too_large"] == 1
    q = pq.read_table(tmp_path / "s" / "quarantine").to_pylist()[0]
    assert q["source_row"] == 1 and len(q["raw"]) < 100_000  # the raw text is capped


# ------------------------------------------------------------------ forked parallel workers (Linux)

forked = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers are Linux-only")


@pytest.fixture
def spawned_zygote(monkeypatch):
    """A zygote started as a fresh interpreter (the driver never forks here: this test process may have
    started gRPC already); none is left running afterwards."""
    workers_mod.stop_workers()
    monkeypatch.setattr(workers_mod, "_driver_can_fork", lambda: False)
    yield
    workers_mod.stop_workers()


def _staged(staging: Path) -> tuple[pa.Table, pa.Table]:
    kept = pq.read_table(staging / "pairwise").sort_by("source_row")
    q = pq.read_table(staging / "quarantine").sort_by([("source_row", "ascending"), ("reason", "ascending")])
    return kept, q


@forked
@pytest.mark.timeout(180)
def test_spawned_zygote_workers_stage_what_the_in_process_runner_stages(tmp_path, spawned_zygote):
    src, _ = _mixed_file(tmp_path, 400)
    a = run_ingest([str(src)], "hh-rlhf", run_id="r", staging=tmp_path / "a", chunk_rows=60)
    b = run_ingest(
        [str(src)], "hh-rlhf", run_id="r", staging=tmp_path / "b", chunk_rows=60, beam_args=["--direct_num_workers=2"]
    )
    zygote = workers_mod._ZYGOTE
    assert zygote is not None and zygote.alive() and not zygote.forked  # b ran on the spawned zygote's workers
    assert vars(a) == vars(b)
    (ka, qa), (kb, qb) = _staged(tmp_path / "a"), _staged(tmp_path / "b")
    assert ka.num_rows == a.rows_kept and ka.equals(kb)
    assert qa.num_rows == a.rows_rejected and qa.equals(qb)
    # A second run reuses the warm zygote.
    c = run_ingest(
        [str(src)], "hh-rlhf", run_id="r", staging=tmp_path / "c", chunk_rows=60, beam_args=["--direct_num_workers=2"]
    )
    assert workers_mod._ZYGOTE is zygote and vars(c) == vars(a) and _staged(tmp_path / "c")[0].equals(ka)


# Run in a fresh interpreter: forking the driver is only safe before gRPC has started in the process.
_FORKED_FROM_DRIVER = """
import os, sys
from pathlib import Path
import pyarrow.parquet as pq
import pipelines.ingest as m
import pipelines.workers as workers

src, out = sys.argv[1], Path(sys.argv[2])
r, w = os.pipe()  # the zygote must not keep this (or any other) inherited descriptor open
assert workers._driver_can_fork()  # nothing has run yet (an in-process run leaves GX's tqdm monitor thread)
b = m.run_ingest([src], "hh-rlhf", run_id="r", staging=out / "b", chunk_rows=60, beam_args=["--direct_num_workers=2"])
assert workers._ZYGOTE.forked and workers._ZYGOTE.alive()
a = m.run_ingest([src], "hh-rlhf", run_id="r", staging=out / "a", chunk_rows=60)
assert vars(a) == vars(b), (vars(a), vars(b))
for d in ("pairwise", "quarantine"):
    ta = pq.read_table(out / "a" / d).sort_by([("source_row", "ascending"), ("run_id", "ascending")])
    tb = pq.read_table(out / "b" / d).sort_by([("source_row", "ascending"), ("run_id", "ascending")])
    assert ta.num_rows and ta.equals(tb), d
os.close(w)
os.set_blocking(r, False)
assert os.read(r, 1) == b""  # EOF, not BlockingIOError: no other process holds the write end
print("OK", a.rows_kept)
"""


@forked
@pytest.mark.timeout(180)
def test_zygote_forked_from_the_driver_stages_what_the_in_process_runner_stages(tmp_path):
    src, _ = _mixed_file(tmp_path, 400)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", _FORKED_FROM_DRIVER, str(src), str(tmp_path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("OK"), proc.stderr[-3000:]


def test_driver_forks_only_when_alone_on_the_main_thread():
    import threading

    seen = []
    t = threading.Thread(target=lambda: seen.append(workers_mod._driver_can_fork()))
    t.start()
    t.join()
    assert seen == [False]  # not the main thread (and another thread is running)


def test_parallel_worker_choice(tmp_path, monkeypatch):
    small, _ = _mixed_file(tmp_path, 50)
    size = small.stat().st_size
    assert workers_mod.parallel_workers(size, None) == 0  # small input: in-process
    for args in (
        ["--direct_num_workers=1"],
        ["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
        ["--runner=DirectRunner"],
        ["--environment_type=LOOPBACK"],
    ):
        assert workers_mod.parallel_workers(size, args) == 0, args  # Beam's own setup, as asked
    if sys.platform.startswith("linux"):
        assert workers_mod.parallel_workers(size, ["--direct_num_workers=3"]) == 3
        monkeypatch.setattr(workers_mod, "PARALLEL_MIN_BYTES", 1)
        monkeypatch.setattr(workers_mod, "_cpus", lambda: 16)
        assert workers_mod.parallel_workers(size, []) == workers_mod.MAX_WORKERS
        monkeypatch.setattr(workers_mod, "_cpus", lambda: 1)
        assert workers_mod.parallel_workers(size, []) == 0


# The spawned zygote runs _ZYGOTE_CODE; these replace it to break things on purpose.
_DYING_WORKERS = (
    "import json, os, sys; sys.path[:] = json.loads(sys.argv[1]); import pipelines.workers as m; "
    "m._WORKER_PRELOAD = (); m._worker_after_fork = lambda *a: os._exit(9); "
    "m._zygote_main(int(sys.argv[2]))"
)


@forked
@pytest.mark.timeout(120)
def test_a_worker_that_dies_fails_the_run_instead_of_hanging(tmp_path, monkeypatch, spawned_zygote):
    src, _ = _mixed_file(tmp_path, 100)
    monkeypatch.setattr(workers_mod, "_ZYGOTE_CODE", _DYING_WORKERS)
    with pytest.raises(RuntimeError, match=r"ingest worker worker_\d+: exited \(exit status 9\)"):
        run_ingest(
            [str(src)],
            "hh-rlhf",
            run_id="r",
            staging=tmp_path / "s",
            chunk_rows=30,
            beam_args=["--direct_num_workers=2"],
        )


@forked
@pytest.mark.timeout(120)
def test_a_zygote_that_cannot_start_fails_the_run(tmp_path, monkeypatch, spawned_zygote):
    src, _ = _mixed_file(tmp_path, 100)
    monkeypatch.setattr(workers_mod, "_ZYGOTE_CODE", "import sys; sys.exit(3)")
    with pytest.raises(RuntimeError, match=r"zygote"):
        run_ingest(
            [str(src)],
            "hh-rlhf",
            run_id="r",
            staging=tmp_path / "s",
            chunk_rows=30,
            beam_args=["--direct_num_workers=2"],
        )
