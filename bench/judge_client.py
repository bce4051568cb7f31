"""Client throughput: HTTPEngine vs a plain openai.AsyncOpenAI + asyncio.gather baseline.

Both send the same n chat requests to the fake OpenAI server (fixed 5 ms latency, no faults, no
cache) running in its own process, so client and server don't share a GIL. The baseline gets a
semaphore of the same concurrency. Prints progress lines, then ONE JSON object as the last line.

    .venv/bin/python -m bench.judge_client [--n 10000] [--concurrency 64] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODEL = "fake-judge"


def start_server(latency_ms: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.judges.fake_openai_server", "--latency-ms", str(latency_ms)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"fake server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


def server_total(url: str) -> int:
    import httpx

    return httpx.get(f"{url}/_stats", timeout=10).json()["total"]


def checked(url: str, n: int, name: str, fn, *args) -> tuple[float, float]:
    """Run one client and check the server really answered n requests (no shortcut, no drop)."""
    before = server_total(url)
    rps, cpu = fn(url, n, *args)
    if server_total(url) - before != n + args[0]:  # n timed requests + `concurrency` warm-up requests
        raise SystemExit(f"{name}: server saw {server_total(url) - before} requests, expected {n + args[0]}")
    return rps, cpu


def messages(i: int, tag: str) -> list[Any]:
    return [
        {"role": "system", "content": "You are an impartial judge."},
        {"role": "user", "content": f"[{tag}] Which response is better for prompt {i}? A or B."},
    ]


def bench_prefmill(url: str, n: int, concurrency: int, tag: str) -> tuple[float, float]:
    from judges.http_engine import HTTPEngine
    from judges.types import Request

    reqs = [Request.chat(MODEL, messages(i, tag), temperature=0.0, max_tokens=8) for i in range(n)]
    warm = [Request.chat(MODEL, messages(i, tag + "-warm"), temperature=0.0, max_tokens=8) for i in range(concurrency)]
    with HTTPEngine(url, MODEL, concurrency=concurrency, timeout_s=30) as eng:
        eng.run(warm)  # connections open, revision fetched
        c0, t0 = time.process_time(), time.perf_counter()
        out = eng.run(reqs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    bad = sum(not r.ok for r in out)
    if bad:
        raise SystemExit(f"prefmill: {bad} of {n} requests failed: {out[[r.ok for r in out].index(False)]}")
    return n / wall, cpu / n * 1e6


def bench_baseline(url: str, n: int, concurrency: int, tag: str) -> tuple[float, float]:
    import openai

    async def main() -> tuple[float, float]:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="bench", timeout=30)
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int, t: str):
            async with sem:
                r = await client.chat.completions.create(
                    model=MODEL, messages=messages(i, t), temperature=0.0, max_tokens=8
                )
                return r.choices[0].message.content

        await asyncio.gather(*(one(i, tag + "-warm") for i in range(concurrency)))
        c0, t0 = time.process_time(), time.perf_counter()
        out = await asyncio.gather(*(one(i, tag) for i in range(n)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        await client.close()
        if not all(out):
            raise SystemExit("baseline: empty answers")
        return n / wall, cpu / n * 1e6

    return asyncio.run(main())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency-ms", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=1, help="alternate prefmill/baseline this many times; best of each")
    args = ap.parse_args(argv)
    proc, url = start_server(args.latency_ms)
    try:
        ours, base, ours_cpu, base_cpu = [], [], [], []
        for r in range(args.rounds):
            rps, cpu = checked(url, args.n, "prefmill", bench_prefmill, args.concurrency, f"p{r}")
            ours.append(rps)
            ours_cpu.append(cpu)
            print(f"round {r}: prefmill {rps:.0f} req/s ({cpu:.0f} client CPU-us/req)", flush=True)
            rps, cpu = checked(url, args.n, "baseline", bench_baseline, args.concurrency, f"b{r}")
            base.append(rps)
            base_cpu.append(cpu)
            print(f"round {r}: baseline {rps:.0f} req/s ({cpu:.0f} client CPU-us/req)", flush=True)
    finally:
        proc.kill()
        proc.wait()
    result = {
        "prefmill_req_per_s": round(max(ours), 1),
        "baseline_req_per_s": round(max(base), 1),
        "ratio": round(max(ours) / max(base), 2),
        "concurrency": args.concurrency,
        "n": args.n,
        "server_latency_ms": args.latency_ms,
        "client_cpu_us_per_req": round(min(ours_cpu)),
        "baseline_cpu_us_per_req": round(min(base_cpu)),
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
