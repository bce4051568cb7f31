"""EmbeddingStore: keyed by (text id, model, recipe), append-only, atomic part files."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.ids import text_id
from warehouse.embeddings import EmbeddingStore, slug

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def _vecs(n: int, d: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _ids(texts):
    return [text_id(t) for t in texts]


def test_put_then_get_round_trips_in_request_order(tmp_path):
    store = EmbeddingStore(tmp_path)
    ids, v = _ids(["a", "b", "c"]), _vecs(3)
    assert store.put(MODEL, "prompt", ids, v) == 3
    found, got = store.get(MODEL, "prompt", [ids[2], "missing", ids[0], ids[2]])
    assert found.tolist() == [True, False, True, True]
    np.testing.assert_array_equal(got[[0, 2, 3]], v[[2, 0, 2]])
    assert not got[1].any()
    assert got.dtype == np.float32


def test_layout_and_schema(tmp_path):
    store = EmbeddingStore(tmp_path)
    store.put(MODEL, "pair", _ids(["x", "y"]), _vecs(2, d=5))
    parts = list((tmp_path / "lake" / "embeddings" / slug(MODEL) / "pair").glob("part-*.parquet"))
    assert len(parts) == 1
    schema = pq.read_schema(parts[0])
    assert schema.field("text_id").type == pa.string()
    assert schema.field("vector").type == pa.list_(pa.float32(), 5)
    assert "/" not in slug(MODEL)


def test_append_only_never_rewrites_or_duplicates(tmp_path):
    store = EmbeddingStore(tmp_path)
    ids = _ids(["a", "b"])
    store.put(MODEL, "prompt", ids, _vecs(2))
    first = store.parts(MODEL, "prompt")
    before = first[0].read_bytes()
    # same ids again (with different values): nothing written, the stored vector wins
    assert store.put(MODEL, "prompt", ids, _vecs(2, seed=1)) == 0
    assert store.parts(MODEL, "prompt") == first
    # one new id among old ones: a new part with just that row; the old part is untouched
    new = _ids(["c"])[0]
    assert store.put(MODEL, "prompt", ids + [new, new], _vecs(4, seed=2)) == 1
    parts = store.parts(MODEL, "prompt")
    assert len(parts) == 2 and parts[0].read_bytes() == before
    found, got = store.get(MODEL, "prompt", ids + [new])
    assert found.all()
    np.testing.assert_array_equal(got[:2], _vecs(2))


def test_models_and_recipes_are_separate_namespaces(tmp_path):
    store = EmbeddingStore(tmp_path)
    ids = _ids(["same text"])
    store.put(MODEL, "prompt", ids, _vecs(1))
    assert not store.get(MODEL, "pair", ids)[0].any()
    assert not store.get("other-model", "prompt", ids)[0].any()
    assert store.get(MODEL, "prompt", ids)[0].all()


def test_half_written_tmp_files_are_ignored(tmp_path):
    store = EmbeddingStore(tmp_path)
    ids = _ids(["a"])
    store.put(MODEL, "prompt", ids, _vecs(1))
    d = store.dir(MODEL, "prompt")
    (d / ".tmp-part-crashed.parquet").write_bytes(b"not parquet")
    assert not list(d.glob(".tmp-*part-0*"))  # the real write left no tmp file behind
    found, _ = store.get(MODEL, "prompt", ids + _ids(["b"]))
    assert found.tolist() == [True, False]


def test_bad_input(tmp_path):
    store = EmbeddingStore(tmp_path)
    found, got = store.get(MODEL, "prompt", [])
    assert found.shape == (0,)
    found, got = store.get(MODEL, "prompt", ["a"])  # empty store: (n, 0)
    assert found.tolist() == [False] and got.shape == (1, 0)
    assert store.put(MODEL, "prompt", [], np.zeros((0, 4))) == 0
    v = _vecs(3)
    v[1, 0] = np.nan  # never stored, so a later call recomputes it
    assert store.put(MODEL, "prompt", _ids(["p", "q", "r"]), v) == 2
    assert store.get(MODEL, "prompt", _ids(["p", "q", "r"]))[0].tolist() == [True, False, True]
    with pytest.raises(ValueError, match="size"):
        store.put(MODEL, "prompt", _ids(["s"]), _vecs(1, d=3))
    with pytest.raises(ValueError, match="one vector row per id"):
        store.put(MODEL, "prompt", _ids(["t", "u"]), _vecs(1))
