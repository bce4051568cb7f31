"""Ingest throughput: `prefmill ingest` end to end vs raw DuckDB read_json → COPY TO parquet.

Builds (once, in a temp dir) a JSONL file of N hh-rlhf-like pairs by recombining the real
harmless-base records: each row takes the human turns of one real dialogue (with a row counter so
prompts are unique) and the final assistant turns of two others as chosen and rejected. Both
contenders read the same file in the same process; prints one JSON object as its last line.

    python -m bench.ingest [--n 200000] [--keep]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
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
    return dialogue[:i], dialogue[i + len("\n\nAssistant:"):]


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
            f.write(json.dumps({"chosen": f"{p}\n\nAssistant:{a}", "rejected": f"{p}\n\nAssistant:{b}"},
                               ensure_ascii=False) + "\n")
    return path.stat().st_size


def bench_duckdb(path: Path, out_dir: Path) -> float:
    import duckdb

    con = duckdb.connect()
    t0 = time.perf_counter()
    con.execute(f"COPY (SELECT * FROM read_json('{path}')) TO '{out_dir / 'duck.parquet'}' "
                "(FORMAT parquet, COMPRESSION zstd)")
    dt = time.perf_counter() - t0
    con.close()
    return dt


def bench_prefmill(path: Path, wh_dir: Path, beam_args: list[str]) -> tuple[float, dict]:
    from flows.jobs import ingest
    from warehouse import Warehouse

    t0 = time.perf_counter()
    report = ingest(Warehouse(wh_dir), [str(path)], "hh-rlhf", "bench", beam_args=beam_args)
    dt = time.perf_counter() - t0
    c = report.counts
    return dt, {"rows_read": c.rows_read, "rows_kept": c.rows_kept - report.commit.rows_duplicate,
                "rows_rejected": c.rows_rejected, "rows_duplicate": report.commit.rows_duplicate}


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

        duck_s = bench_duckdb(src, tmp)
        pm_s, counts = bench_prefmill(src, tmp / "wh", args.beam_arg)
        result = {
            "n": args.n,
            "file_mb": round(size / 1e6, 1),
            "prefmill_seconds": round(pm_s, 2),
            "duckdb_seconds": round(duck_s, 2),
            "prefmill_pairs_per_s": round(args.n / pm_s),
            "duckdb_pairs_per_s": round(args.n / duck_s),
            "ratio": round(duck_s / pm_s, 3),
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
