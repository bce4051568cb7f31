"""Embedding store: vectors keyed by (text hash, model, recipe), so no text is ever embedded twice.

Layout: ``<root>/lake/embeddings/<model-slug>/<recipe>/part-<time>-<rand>.parquet`` with columns
``text_id: string`` and ``vector: fixed_size_list<float32>[d]``. Append-only: ``put`` writes only ids the
store lacks, into a new part file (written as a dot-tmp file, then ``os.replace``d, so readers never see a
half-written part and a crash leaves only an ignored tmp file). Concurrent writers may both add the same id;
``get`` takes the first, and the vectors are the same anyway.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def slug(name: str) -> str:
    """Directory-safe name: "sentence-transformers/all-MiniLM-L6-v2" → "sentence-transformers_all-MiniLM-L6-v2"."""
    s = _SLUG.sub("_", str(name)).strip("._")
    if not s:
        raise ValueError(f"cannot make a directory name from {name!r}")
    return s[:128]


def store_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("text_id", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
        ]
    )


class EmbeddingStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()

    def dir(self, model: str, recipe: str) -> Path:
        return self.root / "lake" / "embeddings" / slug(model) / slug(recipe)

    def parts(self, model: str, recipe: str) -> list[Path]:
        d = self.dir(model, recipe)
        return sorted(d.glob("part-*.parquet")) if d.is_dir() else []

    def dim(self, model: str, recipe: str) -> int | None:
        parts = self.parts(model, recipe)
        return pq.read_schema(parts[0]).field("vector").type.list_size if parts else None

    def get(self, model: str, recipe: str, text_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, vectors) aligned with ``text_ids``; missing rows are zeros. ``vectors`` is (n, d) float32,
        (n, 0) when nothing is stored for this model and recipe."""
        ids = pa.array(list(text_ids), pa.string())
        n = len(ids)
        found = np.zeros(n, bool)
        parts = self.parts(model, recipe)
        if not parts or n == 0:
            d = self.dim(model, recipe) or 0
            return found, np.zeros((n, d), np.float32)
        out = None
        want = pc.unique(ids)
        for part in parts:  # read the id column of every part, vectors only of the rows asked for
            stored = pq.read_table(part, columns=["text_id"]).column("text_id")
            rows = np.flatnonzero(pc.is_in(stored, value_set=want).to_numpy(zero_copy_only=False))
            if not len(rows):
                continue
            vec_col = pq.read_table(part, columns=["vector"]).column("vector").combine_chunks().take(pa.array(rows))
            d = vec_col.type.list_size
            vecs = vec_col.flatten().to_numpy(zero_copy_only=False).reshape(-1, d)
            if out is None:
                out = np.zeros((n, d), np.float32)
            elif out.shape[1] != d:
                raise ValueError(f"{part}: vector size {d} != {out.shape[1]} in earlier parts")
            pos = pc.index_in(ids, value_set=stored.take(pa.array(rows))).fill_null(-1).to_numpy()
            take = pos >= 0
            new = take & ~found
            out[new] = vecs[pos[new]]
            found |= new
        if out is None:
            out = np.zeros((n, self.dim(model, recipe) or 0), np.float32)
        return found, out

    def put(self, model: str, recipe: str, text_ids: Sequence[str], vectors: np.ndarray) -> int:
        """Append the vectors of ids the store lacks (non-finite rows are never stored). Returns rows written."""
        vectors = np.asarray(vectors, dtype=np.float32)
        ids = list(text_ids)
        if vectors.ndim != 2 or len(ids) != len(vectors):
            raise ValueError(f"need one vector row per id: {len(ids)} ids, vectors of shape {vectors.shape}")
        if not ids:
            return 0
        d = vectors.shape[1]
        have = self.dim(model, recipe)
        if have is not None and have != d:
            raise ValueError(f"vectors of size {d} for {model}/{recipe}, which stores size {have}")
        found, _ = self.get(model, recipe, ids)
        _, first = np.unique(np.asarray(ids, dtype=object).astype(str), return_index=True)
        keep = np.zeros(len(ids), bool)
        keep[first] = True  # one row per id
        keep &= ~found & np.isfinite(vectors).all(axis=1)
        rows = np.flatnonzero(keep)
        if not len(rows):
            return 0
        table = pa.table(
            {
                "text_id": pa.array([ids[i] for i in rows], pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors[rows].ravel()), d),
            },
            schema=store_schema(d),
        )
        target = self.dir(model, recipe)
        target.mkdir(parents=True, exist_ok=True)
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = target / f".tmp-{name}"
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, target / name)
        finally:
            tmp.unlink(missing_ok=True)
        return len(rows)
