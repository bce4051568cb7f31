"""Judge throughput through prefmill vs the plain OpenAI SDK, against the same real ``vllm serve``.

    .venv/bin/python -m bench.judge_vllm [--requests 256] [--concurrency 32] [--max-tokens 16] [--rounds 3]

Starts the tiny random GPT-2 with judges.vllm_env, then alternates rounds of
- prefmill: ``judges.primitives.sample`` over ``HTTPEngine`` (no request cache), and
- baseline: ``AsyncOpenAI`` + ``asyncio.gather`` under a semaphore of the same concurrency,
on the same prompts and sampling (``ignore_eos`` so every completion has exactly max_tokens).
All prompts are sent once before timing, so vLLM's prefix cache is equally warm for both sides.
The server is the bottleneck; the target is ratio >= 0.95. Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def make_prompts(n: int) -> list[str]:
    topics = [
        "the capital of France",
        "prime numbers",
        "a haiku about rain",
        "sorting algorithms",
        "the water cycle",
        "photosynthesis",
        "a polite refusal",
        "unit tests",
    ]
    return [f"Request {i}: explain {topics[i % len(topics)]} in one sentence." for i in range(n)]


SAMPLING: dict[str, Any] = {"temperature": 0.0, "seed": 0}
TOKENS: dict[str, int] = {}  # completion tokens of each side's last round: proves both did the same work


def run_prefmill(engine, prompts: list[str], max_tokens: int) -> tuple[float, int]:
    from judges.primitives import sample

    t0 = time.perf_counter()
    res = sample(engine, prompts, n=1, max_tokens=max_tokens, ignore_eos=True, **SAMPLING)
    dt = time.perf_counter() - t0
    TOKENS["prefmill"] = sum(r.completion_tokens for r in res)
    return dt, sum(r.ok for r in res)


async def _baseline(base_url: str, model: str, prompts: list[str], max_tokens: int, concurrency: int) -> int:
    from openai import AsyncOpenAI

    sem = asyncio.Semaphore(concurrency)
    async with AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=300) as client:

        async def one(p: str) -> int:
            async with sem:
                r = await client.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": p}],
                    max_tokens=max_tokens,
                    n=1,
                    extra_body={"ignore_eos": True},
                    **SAMPLING,
                )
                return r.usage.completion_tokens if r.choices else -1

        got = await asyncio.gather(*(one(p) for p in prompts))
        TOKENS["baseline"] = sum(t for t in got if t > 0)
        return sum(t > 0 for t in got)


def run_baseline(base_url: str, model: str, prompts: list[str], max_tokens: int, concurrency: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    ok = asyncio.run(_baseline(base_url, model, prompts, max_tokens, concurrency))
    return time.perf_counter() - t0, ok


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=256)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)

    from judges import vllm_env
    from judges.http_engine import HTTPEngine
    from judges.tiny_model import build_tiny_model

    prompts = make_prompts(args.requests)
    with tempfile.TemporaryDirectory(prefix="prefmill-bench-") as tmp:
        model = build_tiny_model(Path(tmp) / "tiny-gpt2")
        print("starting vllm serve ...", file=sys.stderr, flush=True)
        with vllm_env.serve(model, log_path=Path(tmp) / "vllm.log") as server:
            run_baseline(server.base_url, server.model, prompts, args.max_tokens, args.concurrency)  # warm-up
            ours, theirs = [], []
            with HTTPEngine(server.url, server.model, concurrency=args.concurrency, timeout_s=300) as engine:
                run_prefmill(engine, prompts[:8], args.max_tokens)  # connections + revision lookup
                for rnd in range(args.rounds):
                    # alternate who goes first, so drift in the shared machine's load hits both sides
                    order = ("prefmill", "baseline") if rnd % 2 == 0 else ("baseline", "prefmill")
                    for side in order:
                        if side == "prefmill":
                            dt, ok = run_prefmill(engine, prompts, args.max_tokens)
                            ours.append(ok / dt)
                        else:
                            dt, ok = run_baseline(
                                server.base_url, server.model, prompts, args.max_tokens, args.concurrency
                            )
                            theirs.append(ok / dt)
                        if ok != len(prompts):
                            raise SystemExit(f"{side}: only {ok}/{len(prompts)} completions succeeded")
                        print(f"round {rnd} {side}: {ok / dt:.1f} completions/s", file=sys.stderr, flush=True)
    ours_med, theirs_med = statistics.median(ours), statistics.median(theirs)
    result = {
        "prefmill_completions_per_s": round(ours_med, 2),
        "baseline_completions_per_s": round(theirs_med, 2),
        "ratio": round(ours_med / theirs_med, 3),
        "prefmill_rounds": [round(x, 2) for x in ours],
        "baseline_rounds": [round(x, 2) for x in theirs],
        "completion_tokens_per_round": dict(TOKENS),
        "requests": args.requests,
        "concurrency": args.concurrency,
        "max_tokens": args.max_tokens,
        "model": "tiny random GPT-2 (judges.tiny_model)",
        "server": f"vllm {vllm_env.VLLM_VERSION} ({vllm_env.flavor()})",
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
