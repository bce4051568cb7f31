"""Ingest throughput: `prefmill ingest` end to end vs raw DuckDB read_json → COPY TO parquet.

Builds (once, in a temp dir) a JSONL file of N hh-rlhf-like pairs by recombining the real
harmless-base records: each row takes the human turns of one real dialogue (with a row counter so
prompts are unique) and the final assistant turns of two others as chosen and rejected. Both
contenders read the same file in the same process; prints one JSON object as its last line, with
wall and CPU seconds (CPU counts the ingest worker processes too) per phase of ``flows.jobs.ingest``
(stage = the Beam pipeline, check = batch validation, commit = the warehouse commit).

    python -m bench.ingest [--n 200000] [--keep] [--beam-arg=--direct_num_workers=1]

At this size ingest runs on forked parallel workers (pipelines/ingest.py); ``--direct_num_workers=1``
measures the in-process runner instead.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path

from prefmill.config import quiet_env

quiet_env()

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "examples" / "data" / "hh_rlhf_harmless_base" / "test.jsonl.gz"


def _split(dialogue: str) -> tuple[str, str]:
    i = dialogue.rfind("\n\nAssistant:")
    return dialogue[:i], dialogue[i + len("\n\nAssistant:") :]


def build_file(path: Path, n: int, seed: int = 0) -> int:
    rows = [json.loads(line) for line in gzip.open(SOURCE, "rt", encoding="utf-8")]
    prompts = [_split(r["chosen"])[0] for r in rows]
    answers = [_split(r[k])[1] for r in rows for k in ("chosen", "rejected")]
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            p = prompts[rng.randrange(len(prompts))] + f" (#{i})"
            a, b = rng.sample(answers, 2)
            if a.strip() == b.strip():
                b = b + " (alt)"
            f.write(
                json.dumps({"chosen": f"{p}\n\nAssistant:{a}", "rejected": f"{p}\n\nAssistant:{b}"}, ensure_ascii=False)
                + "\n"
            )
    return path.stat().st_size


def bench_duckdb(path: Path, out_dir: Path) -> tuple[float, float]:
    import duckdb

    con = duckdb.connect()
    t0, c0 = time.perf_counter(), cpu_seconds()
    con.execute(
        f"COPY (SELECT * FROM read_json('{path}')) TO '{out_dir / 'duck.parquet'}' (FORMAT parquet, COMPRESSION zstd)"
    )
    dt, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    con.close()
    return dt, cpu


def cpu_seconds() -> float:
    """User + system CPU of this process and all its descendants: reaped children from rusage, live
    descendants from /proc (utime, stime and their own reaped children), e.g. the ingest worker
    zygote, which outlives the run, and the workers it forks."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
    procs: dict[int, tuple[int, int]] = {}  # pid → (ppid, utime + stime + cutime + cstime in ticks)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        procs[int(stat.parent.name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    ours: set[int] = set()
    frontier = {os.getpid()}
    while frontier:
        frontier = {pid for pid, (ppid, _) in procs.items() if ppid in frontier} - ours
        ours |= frontier
    return total + sum(procs[pid][1] for pid in ours) / os.sysconf("SC_CLK_TCK")


class _Phases:
    """Wall and CPU seconds of the three phases of flows.jobs.ingest (stage, batch checks, commit)."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def wrap(self, name: str, fn):
        def timed(*a, **kw):
            t0, c0 = time.perf_counter(), cpu_seconds()
            try:
                return fn(*a, **kw)
            finally:
                self.wall[name] = round(time.perf_counter() - t0, 2)
                self.cpu[name] = round(cpu_seconds() - c0, 2)

        return timed


def bench_prefmill(path: Path, wh_dir: Path, beam_args: list[str]) -> tuple[float, float, dict, _Phases]:
    import flows.jobs as jobs
    from warehouse import Warehouse

    phases = _Phases()
    # Timing wrappers only: ingest() looks these up as module globals at call time.
    names = {"stage_ingest": "stage", "check_batches": "check", "commit_ingest": "commit"}
    originals = {n: getattr(jobs, n) for n in names}
    for n, fn in originals.items():
        setattr(jobs, n, phases.wrap(names[n], fn))
    try:
        t0, c0 = time.perf_counter(), cpu_seconds()
        report = jobs.ingest(Warehouse(wh_dir), [str(path)], "hh-rlhf", "bench", beam_args=beam_args)
        dt, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    finally:
        for n, fn in originals.items():
            setattr(jobs, n, fn)
    c = report.counts
    assert report.commit is not None
    return (
        dt,
        cpu,
        {
            "rows_read": c.rows_read,
            "rows_kept": c.rows_kept - report.commit.rows_duplicate,
            "rows_rejected": c.rows_rejected,
            "rows_duplicate": report.commit.rows_duplicate,
        },
        phases,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--beam-arg", action="append", default=[])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="prefmill-bench-ingest-"))
    try:
        src = tmp / "pairs.jsonl"
        t0 = time.perf_counter()
        size = build_file(src, args.n)
        print(f"built {args.n:,} pairs ({size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f}s", flush=True)
        # Warm the page cache and imports for both contenders alike.
        src.read_bytes()
        import apache_beam  # noqa: F401
        import duckdb  # noqa: F401

        duck_s, duck_cpu = bench_duckdb(src, tmp)
        pm_s, pm_cpu, counts, phases = bench_prefmill(src, tmp / "wh", args.beam_arg)
        result = {
            "n": args.n,
            "file_mb": round(size / 1e6, 1),
            "prefmill_seconds": round(pm_s, 2),
            "duckdb_seconds": round(duck_s, 2),
            "prefmill_pairs_per_s": round(args.n / pm_s),
            "duckdb_pairs_per_s": round(args.n / duck_s),
            "ratio": round(duck_s / pm_s, 3),
            # CPU seconds (user+sys, this process and its Beam worker processes): the machine is shared,
            # so wall times are noisy and CPU time says more about the work done.
            "prefmill_cpu_s": round(pm_cpu, 2),
            "duckdb_cpu_s": round(duck_cpu, 2),
            "phases_wall_s": phases.wall,
            "phases_cpu_s": phases.cpu,
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "counts": counts,
            "beam_args": args.beam_arg,
            "cpu_count": os.cpu_count(),
        }
        print(json.dumps(result))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
