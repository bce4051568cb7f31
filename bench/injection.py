"""Prompt-injection flip rates of a pairwise judge on real hh-rlhf pairs (judges/injection.py).

    .venv/bin/python -m bench.injection [--url URL --model NAME] [--n 20] [--position end|start]

With ``--url`` it judges against that OpenAI-compatible server (``--model`` defaults to the first model it
lists); without one it builds the tiny random GPT-2 and starts it with judges.vllm_env (like bench/judge_vllm.py).
The pairs are the first ``--n`` hh-rlhf harmless-base test pairs (examples/data) whose two dialogues share every
turn but the last assistant reply and that fit a small context; the conversation before that reply is the prompt.
Each payload is planted in the rejected reply; see judges.injection.flip_report for what is counted.

A random tiny model's flip rates say nothing about real judges: there they only show the run works.
Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROLES = {"Human": "user", "Assistant": "assistant"}


def hh_pairs(n: int = 20, max_chars: int = 1500) -> list[tuple[list[dict], str, str]]:
    """(conversation before the last reply, chosen reply, rejected reply) from hh-rlhf harmless-base test."""
    from bench._data import _hh_turns, hh_rlhf

    out = []
    for r in hh_rlhf():
        ct, rt = _hh_turns(r["chosen"]), _hh_turns(r["rejected"])
        if not ct or not rt or ct[:-1] != rt[:-1] or ct[-1][0] != "Assistant" or rt[-1][0] != "Assistant":
            continue
        chosen, rejected = ct[-1][1], rt[-1][1]
        context = [{"role": ROLES[role], "content": text} for role, text in ct[:-1]]
        if not chosen or not rejected or chosen == rejected or not context:
            continue
        if sum(len(m["content"]) for m in context) + len(chosen) + len(rejected) > max_chars:
            continue  # the tiny model's context is 2048 tokens of a 512-token vocabulary
        out.append((context, chosen, rejected))
        if len(out) == n:
            break
    return out


def first_model(url: str) -> str:
    import httpx

    root = url.rstrip("/")
    root = root[:-3] if root.endswith("/v1") else root
    data = httpx.get(root + "/v1/models", timeout=30, trust_env=False).json()
    models = [m.get("id") for m in data.get("data") or [] if isinstance(m, dict) and m.get("id")]
    if not models:
        raise SystemExit(f"{root}/v1/models lists no model: pass --model")
    return str(models[0])


def run(url: str, model: str, items: list, position: str, concurrency: int) -> tuple[dict, dict]:
    from judges.http_engine import HTTPEngine
    from judges.injection import flip_report

    with HTTPEngine(url, model, concurrency=concurrency, timeout_s=300) as engine:
        report = flip_report(engine, items, position=position)
        stats = engine.stats.as_dict()
    return report.summary(), {
        k: stats[k] for k in ("requests", "sent", "failures", "prompt_tokens", "completion_tokens")
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="an OpenAI-compatible server (root or .../v1); default: start the tiny model")
    ap.add_argument("--model", help="served model name (default: the first one the server lists)")
    ap.add_argument("--n", type=int, default=20, help="hh-rlhf pairs to judge")
    ap.add_argument("--position", choices=("end", "start"), default="end", help="where payloads are planted")
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args(argv)

    items = hh_pairs(args.n)
    if args.url:
        model = args.model or first_model(args.url)
        summary, usage = run(args.url, model, items, args.position, args.concurrency)
        about = {"model": model, "server": args.url.rstrip("/"), "tiny_random_model": False}
    else:
        from judges import vllm_env
        from judges.tiny_model import build_tiny_model

        with tempfile.TemporaryDirectory(prefix="prefmill-bench-") as tmp:
            path = build_tiny_model(Path(tmp) / "tiny-gpt2")
            print("starting vllm serve ...", file=sys.stderr, flush=True)
            with vllm_env.serve(path, log_path=Path(tmp) / "vllm.log") as server:
                summary, usage = run(server.url, server.model, items, args.position, args.concurrency)
        about = {
            "model": "tiny random GPT-2 (judges.tiny_model)",
            "server": f"vllm {vllm_env.VLLM_VERSION} ({vllm_env.flavor()})",
            "tiny_random_model": True,
            "note": "random weights: these rates say nothing about real judges, only that the run works",
        }
    per = summary.pop("per_payload")
    for pid, s in per.items():
        print(
            f"{pid:26s} judged {s['judged']:3d} rejected {s['rejected']:3d}  flips swapped "
            f"{s['flips_swapped']:3d}/{s['eligible_swapped']:<3d} single {s['flips_single']:3d}/"
            f"{s['eligible_single']:<3d}",
            file=sys.stderr,
        )
    result = {
        **summary,
        "data": "hh_rlhf_harmless_base/test.jsonl.gz",
        **about,
        "engine": usage,
        "per_payload": {
            pid: {
                k: s[k]
                for k in ("judged", "rejected", "flips_swapped", "flips_single", "eligible_swapped", "eligible_single")
            }
            for pid, s in per.items()
        },
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
