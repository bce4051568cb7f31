"""The CUDA path of the Embedder (fp16, auto-selected) against its own fp32 CPU path, on real texts.

Skipped without a GPU (tests/conftest.py). ``$PREFMILL_EMBED_MODEL`` may point at a local copy of the model
(the GPU machine has no offline package); the same folder serves both devices, so differences come from the
device and precision alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from curation import gpu_feed
from curation.embed import Embedder

pytestmark = pytest.mark.gpu
DATA = Path(__file__).resolve().parents[2] / "examples" / "data"


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """175 instructions, 175 outputs of varied length, a text far over the 256-token window, an empty one."""
    rows = [json.loads(x) for x in (DATA / "self_instruct_seed_tasks" / "seed_tasks.jsonl").read_text().splitlines()]
    out = [r["instruction"] for r in rows] + [r["instances"][0]["output"] for r in rows]
    return out + [" ".join(r["instances"][0]["output"] for r in rows[:80]), ""]


@pytest.fixture(scope="module")
def gpu(texts):
    emb = Embedder()  # no device given: CUDA is picked when present
    return emb, emb.embed(texts)


@pytest.fixture(scope="module")
def cpu(texts):
    emb = Embedder(device="cpu")
    return emb, emb.embed(texts)


def test_cuda_is_picked_and_runs_in_fp16(gpu):
    import torch

    emb, res = gpu
    assert emb.device == "cuda"
    assert next(emb.model.parameters()).dtype == torch.float16
    assert res.vectors.dtype == np.float32 and np.isfinite(res.vectors).all()
    assert gpu_feed.single_pass_ok(emb.model, ["a"])  # the single-pass threaded feed was used


def test_cpu_path_runs_in_fp32_even_from_a_half_checkpoint(cpu):
    import torch

    emb, _ = cpu
    assert next(emb.model.parameters()).dtype == torch.float32


def test_gpu_fp16_vectors_match_cpu_fp32(texts, gpu, cpu):
    g, c = gpu[1], cpu[1]
    assert g.vectors.shape == c.vectors.shape == (len(texts), 384)
    nonempty = np.array([bool(t) for t in texts])
    np.testing.assert_allclose(np.linalg.norm(g.vectors[nonempty], axis=1), 1.0, atol=1e-3)
    cos = np.einsum("ij,ij->i", g.vectors, c.vectors)[nonempty]
    assert cos.min() > 0.999, f"worst row cosine {cos.min():.5f}"
    # GPU counts truncation from the single pass's overflow, CPU from its token-length pass: same answer
    assert g.truncated == c.truncated >= 1
    # Nearest neighbours are what dedup and selection use: each row's top-1 neighbour should not move.
    sg, sc = g.vectors @ g.vectors.T, c.vectors @ c.vectors.T
    np.fill_diagonal(sg, -2)
    np.fill_diagonal(sc, -2)
    same_top1 = (sg.argmax(1) == sc.argmax(1))[nonempty].mean()
    assert same_top1 > 0.97, same_top1


def test_gpu_batches_do_not_change_vectors(texts, gpu):
    """Length sorting and batch size only change padding; fp16 must not turn that into different vectors."""
    emb, res = gpu
    one_big = Embedder(device="cuda", batch_size=256).embed(texts, sort=False)
    cos = np.einsum("ij,ij->i", res.vectors, one_big.vectors)[[bool(t) for t in texts]]
    assert cos.min() > 0.999, f"worst row cosine {cos.min():.5f}"
