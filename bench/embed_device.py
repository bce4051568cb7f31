"""Do curation decisions change when embeddings come from the GPU (fp16) instead of the CPU (fp32)?

    python -m bench.embed_device [--n 6492] [--budget 0.1] [--reference vectors.npy]

Same real texts (bench/_data.prompts_and_responses), same model folder, embedded by the Embedder twice:
``device=cuda`` (fp16) and ``device=cpu`` (fp32). Reported: per-row cosine between the two, top-10 neighbour
overlap, and how far each decision built on the vectors moves — semantic dedup at 0.95 and 0.90 (removed
rows, Jaccard of the removed sets), ISA and k-center at ``--budget`` (Jaccard of the selected sets), with
random selection's own overlap across seeds as the yardstick of "no agreement". ``--reference`` is an (m, d)
float32 array embedded on another machine with the original fp32 weights for the first m texts (checks a
half-precision copy of the weights carried to the GPU machine). Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import pyarrow as pa

from bench import _data
from curation.dedup import semantic_duplicates
from curation.embed import Embedder
from curation.select import select


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def _topk_overlap(x: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    def top(v):
        s = v @ v.T
        np.fill_diagonal(s, -np.inf)
        return np.argpartition(-s, k, axis=1)[:, :k]

    tx, ty = top(x), top(y)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(tx, ty)]))


def _removed(table: pa.Table, vectors: np.ndarray, threshold: float) -> np.ndarray:
    return semantic_duplicates(table, vectors, threshold=threshold, by=None)[0]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=None, help="texts (default: all distinct ones, ~6.5k)")
    ap.add_argument("--budget", type=float, default=0.1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--reference", default=None)
    ap.add_argument("--devices", default="cuda,cpu", help="the two devices compared (cpu,cpu: a smoke run)")
    args = ap.parse_args(argv)

    texts = _data.prompts_and_responses(args.n, seed=0)
    devices = args.devices.split(",")
    out, secs = [], []
    for device in devices:
        emb = Embedder(device=device, batch_size=args.batch_size)
        emb.embed(texts[:8])  # load + warm-up outside the timing
        t0 = time.perf_counter()
        out.append(emb.embed(texts).vectors)
        secs.append(time.perf_counter() - t0)
        print(f"{device}: {len(texts) / secs[-1]:.0f} texts/s", file=sys.stderr)
    g, c = out
    cos = np.einsum("ij,ij->i", g, c)
    table = pa.table({"record_id": [f"r{i}" for i in range(len(texts))]})
    result = {
        "bench": "embed_device",
        "n": len(texts),
        "budget": args.budget,
        "devices": devices,
        "texts_per_s": [round(len(texts) / s, 1) for s in secs],
        "cosine_min": round(float(cos.min()), 6),
        "cosine_mean": round(float(cos.mean()), 6),
        "top10_neighbour_overlap": round(_topk_overlap(g, c), 4),
    }
    for thr in (0.95, 0.90):
        rg, rc = _removed(table, g, thr), _removed(table, c, thr)
        result[f"semantic_dedup_{thr}"] = {
            "removed": [int(rg.sum()), int(rc.sum())],
            "jaccard": round(_jaccard(rg, rc), 4),
        }
    for method in ("isa", "kcenter"):
        sg = select(method, g, args.budget, seed=0).selected
        sc = select(method, c, args.budget, seed=0).selected
        result[f"{method}_jaccard"] = round(_jaccard(sg, sc), 4)
    r0, r1 = select("random", c, args.budget, seed=0).selected, select("random", c, args.budget, seed=1).selected
    result["random_seed0_vs_seed1_jaccard"] = round(_jaccard(r0, r1), 4)
    if args.reference:
        ref = np.load(args.reference)
        ref_cos_gpu = np.einsum("ij,ij->i", g[: len(ref)], ref)
        ref_cos_cpu = np.einsum("ij,ij->i", c[: len(ref)], ref)
        result["reference_rows"] = len(ref)
        result["reference_cosine_min"] = [round(float(ref_cos_gpu.min()), 6), round(float(ref_cos_cpu.min()), 6)]
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
