"""Feeding a small embedding model on a GPU: tokenise once, on threads, ahead of the device.

On an H100, all-MiniLM-L6-v2's forward pass on a batch takes a few milliseconds; ``SentenceTransformer.encode``
spends most of its time tokenising on one core and waiting for each batch's copy back, and the Embedder's
exact token-length pass (for sorting and the truncation count) tokenised everything a second time: the GPU
path ran at 0.75x plain ``encode`` (bench/device_check.sh, 2026-11-25). Here:

* one tokenisation pass: the tokenizer is called exactly as the model's own ``preprocess`` calls it (checked
  on a real batch once per model; any difference and the caller keeps the ``encode`` path), and the
  truncation count comes from each encoding's overflow instead of a second pass;
* ``workers`` threads tokenise batches ahead, each with its own copy of the tokenizer (the Rust tokenizer
  releases the GIL; separate copies because a shared one must not be reconfigured while in use);
* inputs go through pinned memory with non-blocking copies, outputs stay on the device until one copy at
  the end, so the CPU never waits for the GPU between batches.
"""
from __future__ import annotations

import copy
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

_CHECKED: dict[int, tuple[object, list[str], dict] | None] = {}  # id(model) -> (model, tensor keys, extras)
_LOCK = threading.Lock()


def _tokenize(tokenizer, texts: list[str], window: int):
    return tokenizer(texts, padding=True, truncation="longest_first", max_length=window, return_tensors="pt")


def single_pass_ok(model, sample: Sequence[str]) -> bool:
    """Whether ``encode_pipelined`` reproduces ``model.encode``'s inputs for this model (checked on ``sample``
    once per model object): a fast tokenizer, no default prompt, identical input tensors to ``preprocess``."""
    with _LOCK:
        entry = _CHECKED.get(id(model), False)
        if entry is False or (entry is not None and entry[0] is not model):
            entry = _CHECKED[id(model)] = _check(model, [t for t in sample if t] or ["a"])
        return entry is not None


def _check(model, sample: list[str]):
    import torch

    tok = getattr(model, "tokenizer", None)
    preprocess = getattr(model, "preprocess", None) or getattr(model, "tokenize", None)  # older releases
    if getattr(model, "default_prompt_name", None) or not callable(preprocess) or not getattr(tok, "is_fast", False):
        return None
    ref = preprocess(sample)
    ours = _tokenize(copy.deepcopy(tok), sample, int(model.max_seq_length))
    keys = [k for k, v in ref.items() if isinstance(v, torch.Tensor)]
    if not keys or any(k not in ours or not torch.equal(ours[k], ref[k]) for k in keys):
        return None
    return model, keys, {k: v for k, v in ref.items() if not isinstance(v, torch.Tensor)}


def default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 2) - 1))  # leave a core for the thread that drives the GPU


def encode_pipelined(model, texts: list[str], batches: list[np.ndarray], workers: int | None = None,
                     ahead: int | None = None) -> tuple[np.ndarray, int]:
    """(unnormalised float32 embeddings, rows in the order of ``concatenate(batches)``; texts truncated).

    Call ``single_pass_ok(model, ...)`` first: it records which input tensors the model takes.
    """
    import torch

    entry = _CHECKED.get(id(model))
    if not entry or entry[0] is not model:
        raise RuntimeError("encode_pipelined needs single_pass_ok(model, sample) to have passed first")
    _, keys, extras = entry
    device, window = model.device, int(model.max_seq_length)
    pin = device.type == "cuda"
    workers = workers or default_workers()
    local = threading.local()

    def prep(idx: np.ndarray):
        tok = getattr(local, "tok", None)
        if tok is None:
            tok = local.tok = copy.deepcopy(model.tokenizer)
        enc = _tokenize(tok, [texts[i] for i in idx], window)
        cut = sum(bool(e.overflowing) for e in enc.encodings)
        feats = {k: (enc[k].pin_memory() if pin else enc[k]) for k in keys}
        return feats, cut

    outs, truncated = [], 0
    with ThreadPoolExecutor(workers, thread_name_prefix="prefmill-tokenize") as pool, torch.inference_mode():
        pending = deque(pool.submit(prep, b) for b in batches[:ahead or 2 * workers])
        queued = len(pending)
        while pending:
            feats, cut = pending.popleft().result()
            if queued < len(batches):
                pending.append(pool.submit(prep, batches[queued]))
                queued += 1
            truncated += cut
            inputs = {k: v.to(device, non_blocking=pin) for k, v in feats.items()}
            outs.append(model({**extras, **inputs})["sentence_embedding"])
    return torch.cat(outs).float().cpu().numpy(), truncated
