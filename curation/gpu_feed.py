"""Feeding a small embedding model on a GPU: tokenise once, in parallel processes, ahead of the device.

Measured on an H100 (bench/embed_gpu_profile.py, 6,492 real texts, 2026-11-25): all-MiniLM-L6-v2's forward
pass alone runs 31.7k texts/s at batch 128 and 67k at batch 512, but the tokenizer called from Python ran
2.9k texts/s on one thread and never passed 4.5k with more threads (the Python half of the call holds the
GIL), so ``SentenceTransformer.encode`` ran 2.6-3.3k texts/s and the GPU sat idle. Here:

* one tokenisation pass, in a pool of worker processes that each hold the model's Rust tokenizer (configured
  exactly as the model's own ``preprocess`` configures it, checked on a real batch once per model: any
  difference and the caller keeps the ``encode`` path); they return padded numpy arrays and how many texts
  overflowed the window (the truncation count, without a second pass);
* up to ``ahead`` batches are in flight; inputs go through pinned memory with non-blocking copies and the
  outputs stay on the device until one copy at the end, so the driving thread never waits for the GPU.

Workers are started with ``spawn`` (a forked CUDA process is unsafe) once per process and reused.
Result on the same H100 and texts: 11.1k texts/s at batch 128, 4.2x plain ``encode`` (6.3k at batch 512,
where fewer, larger tokenising tasks parallelise worse); the forward alone would allow 23k (batch 128) to
52k (batch 512), so tokenising is still the bound: 8 or 15 workers tokenised 7.0k texts/s in batches of 512.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

_KEYS = ("input_ids", "token_type_ids", "attention_mask")
_CHECKED: dict[int, tuple | None] = {}  # id(model) -> (model, tensor keys, extras, tokenizer json) | None
_POOLS: dict[tuple[int, int], ProcessPoolExecutor] = {}  # (hash of tokenizer json, workers) -> pool
_LOCK = threading.Lock()
_WORKER_TOKENIZER = None  # set in each worker process


# ---------------------------------------------------------------- worker side (no torch imported here)


def _init_worker(tokenizer_json: str) -> None:
    global _WORKER_TOKENIZER
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core per worker: the pool is the parallelism
    from tokenizers import Tokenizer

    _WORKER_TOKENIZER = Tokenizer.from_str(tokenizer_json)


def _encode(tokenizer: Any, texts: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Padded int64 arrays per input key, and which texts overflowed the window."""
    encs = tokenizer.encode_batch(texts)  # padded to the batch's longest by the tokenizer's own settings
    out = {
        k: np.array([getattr(e, a) for e in encs], dtype=np.int64)
        for k, a in zip(_KEYS, ("ids", "type_ids", "attention_mask"))
    }
    return out, np.fromiter((bool(e.overflowing) for e in encs), bool, len(encs))


def _encode_in_worker(texts: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    return _encode(_WORKER_TOKENIZER, texts)


# ---------------------------------------------------------------- driver side


def _configured_json(model: Any, sample: list[str]) -> str:
    """The model's Rust tokenizer, configured by one call made exactly as ``preprocess`` makes it."""
    import copy

    tok = copy.deepcopy(model.tokenizer)  # never reconfigure the model's own tokenizer
    tok(sample, padding=True, truncation="longest_first", max_length=int(model.max_seq_length), return_tensors="pt")
    return tok.backend_tokenizer.to_str()


def single_pass_ok(model: Any, sample: Sequence[str]) -> bool:
    """Whether ``encode_pipelined`` reproduces ``model.encode``'s inputs for this model (checked on ``sample``
    once per model object): a fast tokenizer, no default prompt, identical input tensors to ``preprocess``."""
    with _LOCK:
        known = id(model) in _CHECKED
        entry = _CHECKED.get(id(model))
        if not known or (entry is not None and entry[0] is not model):
            entry = _CHECKED[id(model)] = _check(model, [t for t in sample if t] or ["a"])
        return entry is not None


def _check(model: Any, sample: list[str]) -> tuple | None:
    import torch
    from tokenizers import Tokenizer

    tok = getattr(model, "tokenizer", None)
    preprocess = getattr(model, "preprocess", None) or getattr(model, "tokenize", None)  # older releases
    if getattr(model, "default_prompt_name", None) or not callable(preprocess) or not getattr(tok, "is_fast", False):
        return None
    ref = preprocess(sample)
    keys = [k for k, v in ref.items() if isinstance(v, torch.Tensor)]
    if not keys or not set(keys) <= set(_KEYS):
        return None
    tok_json = _configured_json(model, sample)
    ours, _ = _encode(Tokenizer.from_str(tok_json), sample)
    if any(not torch.equal(torch.from_numpy(ours[k]), ref[k].to(torch.int64)) for k in keys):
        return None
    return model, keys, {k: v for k, v in ref.items() if not isinstance(v, torch.Tensor)}, tok_json


def default_workers() -> int:
    return max(1, min(16, (os.cpu_count() or 2) - 1))  # leave a core for the process that drives the GPU


def _pool(tok_json: str, workers: int) -> ProcessPoolExecutor:
    import multiprocessing as mp

    key = (hash(tok_json), workers)
    with _LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = ProcessPoolExecutor(
                workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(tok_json,)
            )
    return pool


def shutdown_pools(wait: bool = False) -> None:
    """Stop the tokenising workers (at exit, or before a process forks and should not carry their threads)."""
    with _LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.shutdown(wait=wait, cancel_futures=True)


atexit.register(shutdown_pools)


def iter_inputs(
    model: Any, texts: list[str], batches: list[np.ndarray], workers: int | None = None, ahead: int | None = None
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
    """Yield (model input arrays, which texts overflowed the window) per batch, in order, tokenised ahead in
    worker processes.

    Call ``single_pass_ok(model, ...)`` first: it records which inputs the model takes.
    """
    entry = _CHECKED.get(id(model))
    if not entry or entry[0] is not model:
        raise RuntimeError("iter_inputs needs single_pass_ok(model, sample) to have passed first")
    keys, tok_json = entry[1], entry[3]
    workers = workers or default_workers()
    pool = _pool(tok_json, workers)
    pending = deque(pool.submit(_encode_in_worker, [texts[i] for i in b]) for b in batches[: ahead or 2 * workers])
    queued = len(pending)
    try:
        while pending:
            arrays, cut = pending.popleft().result()
            if queued < len(batches):
                pending.append(pool.submit(_encode_in_worker, [texts[i] for i in batches[queued]]))
                queued += 1
            yield {k: arrays[k] for k in keys}, cut
    finally:
        for f in pending:  # an abandoned iteration leaves no work queued in the shared pool
            f.cancel()


def encode_pipelined(
    model: Any, texts: list[str], batches: list[np.ndarray], workers: int | None = None, ahead: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(unnormalised float32 embeddings, which texts overflowed the window), both in the order of
    ``concatenate(batches)``."""
    import torch

    entry = _CHECKED.get(id(model))
    if not entry or entry[0] is not model:
        raise RuntimeError("encode_pipelined needs single_pass_ok(model, sample) to have passed first")
    extras, device = entry[2], model.device
    pin = device.type == "cuda"
    outs, cuts = [], []
    with torch.inference_mode():
        for arrays, cut in iter_inputs(model, texts, batches, workers, ahead):
            cuts.append(cut)
            inputs = {}
            for k, a in arrays.items():
                t = torch.from_numpy(a)
                inputs[k] = t.pin_memory().to(device, non_blocking=True) if pin else t
            outs.append(model({**extras, **inputs})["sentence_embedding"])
    return torch.cat(outs).float().cpu().numpy(), np.concatenate(cuts) if cuts else np.zeros(0, bool)
