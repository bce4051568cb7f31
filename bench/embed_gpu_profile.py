"""Where the GPU embedding path spends its time: tokenising vs the forward pass, by batch size and threads.

    python -m bench.embed_gpu_profile [--n 6492] [--batch-sizes 128,512,1024] [--workers 1,4,8,15]

Same real texts as bench.embed (length-sorted as the Embedder sorts them on CUDA). For each batch size:
``tokenize_per_s`` (curation.gpu_feed.iter_inputs alone: worker processes, no model), ``forward_per_s`` (the forward pass on
inputs tokenised beforehand, one synchronisation at the end), ``pipeline_per_s`` (Embedder.embed) and
``baseline_per_s`` (plain ``encode`` at that batch size, same model object). Then tokenising alone with
each worker count at the largest batch size. Best of ``--repeats``. One JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from bench import _data
from bench._timing import best_of
from curation import gpu_feed
from curation.embed import Embedder


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--batch-sizes", default="128,512,1024")
    ap.add_argument("--workers", default="1,4,8,15")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args(argv)
    import torch

    texts = _data.prompts_and_responses(args.n, seed=0)
    n = len(texts)
    order = np.argsort(-np.fromiter(map(len, texts), np.int64, n), kind="stable")
    emb = Embedder(device=args.device)
    model = emb.model
    assert gpu_feed.single_pass_ok(model, texts[:32])
    checked = gpu_feed._CHECKED[id(model)]
    assert checked is not None
    extras = checked[2]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    emb.embed(texts[:256])  # warm-up: kernels, allocator, pinned pool
    result = {
        "bench": "embed_gpu_profile",
        "n": n,
        "device": args.device,
        "default_workers": gpu_feed.default_workers(),
        "by_batch_size": {},
    }
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    for bs in sizes:
        batches = [order[s : s + bs] for s in range(0, n, bs)]
        tok_s = best_of(lambda b=batches: sum(1 for _ in gpu_feed.iter_inputs(model, texts, b)), args.repeats)[0]
        feats = [
            {k: torch.from_numpy(v).to(model.device) for k, v in f.items()}
            for f, _ in gpu_feed.iter_inputs(model, texts, batches)
        ]

        def forward(feats=feats):
            with torch.inference_mode():
                outs = [model({**extras, **f})["sentence_embedding"] for f in feats]
            sync()
            return outs

        fwd_s = best_of(forward, args.repeats)[0]
        del feats, forward  # free the device inputs before the next size
        run = Embedder(device=args.device, batch_size=bs)
        pipe_s = best_of(lambda r=run: r.embed(texts), args.repeats)[0]
        base_s = best_of(lambda b=bs: model.encode(texts, batch_size=b, show_progress_bar=False), args.repeats)[0]
        row = {
            k: round(n / v, 1)
            for k, v in (
                ("tokenize_per_s", tok_s),
                ("forward_per_s", fwd_s),
                ("pipeline_per_s", pipe_s),
                ("baseline_per_s", base_s),
            )
        }
        row["ratio"] = round(base_s / pipe_s, 3)
        result["by_batch_size"][bs] = row
        print(bs, row, file=sys.stderr)
    batches = [order[s : s + sizes[-1]] for s in range(0, n, sizes[-1])]
    by_workers = {}
    for w in map(int, args.workers.split(",")):
        secs = best_of(
            lambda w=w: sum(1 for _ in gpu_feed.iter_inputs(model, texts, batches, workers=w)), args.repeats
        )[0]
        by_workers[w] = round(n / secs, 1)
    result["tokenize_per_s_by_workers"] = by_workers
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
