"""Real sample texts for the benchmarks, read from examples/data (bundled copies; the project stands alone).

Shared by bench/embed.py, bench/dedup.py and other benches: plain Python records, deterministic order.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def _hh_turns(dialogue: str) -> list[tuple[str, str]]:
    parts = _HH_TURN.split(dialogue)
    return [(parts[k], parts[k + 1].strip()) for k in range(1, len(parts) - 1, 2)]


@cache
def hh_rlhf() -> tuple[dict, ...]:
    """hh-rlhf harmless-base: {chosen, rejected} whole dialogues + {prompt, chosen_reply, rejected_reply}."""
    rows = []
    with gzip.open(DATA / "hh_rlhf_harmless_base" / "test.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            ct, rt = _hh_turns(r["chosen"]), _hh_turns(r["rejected"])
            rows.append(
                {
                    "chosen": r["chosen"],
                    "rejected": r["rejected"],
                    "prompt": ct[0][1] if ct else "",
                    "chosen_reply": ct[-1][1] if ct and ct[-1][0] == "Assistant" else "",
                    "rejected_reply": rt[-1][1] if rt and rt[-1][0] == "Assistant" else "",
                }
            )
    return tuple(rows)


@cache
def oasst_messages() -> tuple[dict, ...]:
    """Every message of the 100 oasst trees: {text, role ('prompter'|'assistant'), depth}."""
    out = []

    def walk(m: dict, depth: int) -> None:
        out.append({"text": m["text"], "role": m["role"], "depth": depth})
        for c in m.get("replies") or []:
            walk(c, depth + 1)

    with open(DATA / "oasst_en_100_trees" / "en_100_tree.jsonl", encoding="utf-8") as f:
        for line in f:
            walk(json.loads(line)["prompt"], 0)
    return tuple(out)


@cache
def llamafactory_dpo() -> tuple[dict, ...]:
    """LLaMA-Factory DPO demo: {prompt (last human turn), chosen, rejected}."""
    rows = json.loads((DATA / "llamafactory_dpo_en_demo" / "dpo_en_demo.json").read_text(encoding="utf-8"))
    return tuple(
        {"prompt": r["conversations"][-1]["value"], "chosen": r["chosen"]["value"], "rejected": r["rejected"]["value"]}
        for r in rows
    )


@cache
def llamafactory_kto() -> tuple[dict, ...]:
    """LLaMA-Factory KTO demo: {prompt, completion, label}."""
    rows = json.loads((DATA / "llamafactory_kto_en_demo" / "kto_en_demo.json").read_text(encoding="utf-8"))
    out = []
    for r in rows:
        msgs = r["messages"]
        out.append({"prompt": msgs[0]["content"], "completion": msgs[-1]["content"], "label": bool(r["label"])})
    return tuple(out)


def prompts_and_responses(n: int | None = None, seed: int = 0) -> list[str]:
    """Distinct real prompts and responses (hh-rlhf, oasst, LLaMA-Factory), shuffled with ``seed``, alternating
    prompt/response so any prefix has both kinds."""
    prompts, responses = [], []
    for r in hh_rlhf():
        prompts.append(r["prompt"])
        responses.append(r["chosen_reply"])
    for m in oasst_messages():
        (prompts if m["role"] == "prompter" else responses).append(m["text"])
    for r in llamafactory_dpo():
        prompts.append(r["prompt"])
        responses += [r["chosen"], r["rejected"]]
    for r in llamafactory_kto():
        prompts.append(r["prompt"])
        responses.append(r["completion"])
    rng = random.Random(seed)
    out = []
    for group in (prompts, responses):
        uniq = sorted({t.strip() for t in group if t and t.strip()})
        rng.shuffle(uniq)
        out.append(uniq)
    mixed = [t for pair in zip(*out) for t in pair]
    return mixed if n is None else mixed[:n]


def documents() -> list[str]:
    """Longer real documents: hh-rlhf chosen dialogues, oasst messages, LLaMA-Factory responses (distinct)."""
    docs = [r["chosen"].strip() for r in hh_rlhf()]
    docs += [m["text"] for m in oasst_messages()]
    docs += [r[k] for r in llamafactory_dpo() for k in ("chosen", "rejected")]
    docs += [r["completion"] for r in llamafactory_kto()]
    return sorted({d for d in docs if d})
