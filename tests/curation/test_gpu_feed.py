"""The GPU feeding path's logic, run on the CPU with the real model: it must give what ``encode`` gives.

The CUDA-specific parts (pinned memory, fp16) run in tests/curation/test_embed_gpu.py on a GPU machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from curation import gpu_feed
from curation.embed import Embedder

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"


@pytest.fixture(scope="module", autouse=True)
def _stop_workers():
    yield
    gpu_feed.shutdown_pools(wait=True)  # later tests fork this process; leave no pool threads behind
    assert not gpu_feed._POOLS


@pytest.fixture(scope="module")
def model():
    return Embedder(device="cpu").model


@pytest.fixture(scope="module")
def texts() -> list[str]:
    rows = [json.loads(x) for x in (DATA / "self_instruct_seed_tasks" / "seed_tasks.jsonl").read_text().splitlines()]
    long_text = " ".join(r["instances"][0]["output"] for r in rows[:40])
    return [r["instruction"] for r in rows[:9]] + [long_text, "", "ok"]


def test_single_pass_matches_encode_and_counts_truncation(model, texts):
    assert gpu_feed.single_pass_ok(model, texts[:4])
    order = np.argsort(-np.array([len(t) for t in texts]), kind="stable")
    batches = [order[s : s + 5] for s in range(0, len(texts), 5)]  # uneven last batch
    vec, cut = gpu_feed.encode_pipelined(model, texts, batches, workers=2, ahead=1)
    ref = model.encode([texts[i] for i in order], batch_size=5, normalize_embeddings=False)
    np.testing.assert_allclose(vec, ref, atol=1e-5)
    over = Embedder(device="cpu").token_lengths(texts) > model.max_seq_length
    assert int(cut.sum()) == 1 == int(over.sum())
    np.testing.assert_array_equal(cut, over[order])  # per text, in batch order


def test_refused_when_inputs_would_differ_from_preprocess(model):
    prefixing = SimpleNamespace(
        tokenizer=model.tokenizer,
        max_seq_length=model.max_seq_length,
        default_prompt_name=None,  # a module that edits texts before tokenising
        preprocess=lambda t: model.preprocess(["query: " + x for x in t]),
    )
    assert not gpu_feed.single_pass_ok(prefixing, ["the same text"])
    prompted = SimpleNamespace(
        tokenizer=model.tokenizer,
        max_seq_length=model.max_seq_length,
        default_prompt_name="query",
        preprocess=model.preprocess,
    )
    assert not gpu_feed.single_pass_ok(prompted, ["anything"])
    with pytest.raises(RuntimeError, match="single_pass_ok"):
        gpu_feed.encode_pipelined(prompted, ["anything"], [np.array([0])])
