"""The embedding step as a Beam pipeline: model loaded once per worker, batched, cached.

Only texts missing from the embedding store (keyed by text hash, model, recipe) are sent to
workers; the texts are sorted by length *before* batching so every batch pads little, and each
worker writes its vectors straight to the store. The driver then reads every vector back from
the store, so a text is never embedded twice, across runs too.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass

import apache_beam as beam
import numpy as np

from curation.embed import Embedder
from pipelines.ingest import beam_options
from schemas.ids import text_id
from warehouse.embeddings import EmbeddingStore

DEFAULT_BATCH = 256  # texts per Beam element; the model's own batch size is smaller


@dataclass
class EmbedCounts:
    texts: int = 0
    unique: int = 0
    cache_hits: int = 0
    computed: int = 0
    truncated: int = 0


class EmbedBatchFn(beam.DoFn):
    def __init__(self, store_root: str, model: str | None, recipe: str, device: str | None, batch_size: int | None):
        self.store_root, self.model, self.recipe = store_root, model, recipe
        self.device, self.batch_size = device, batch_size
        self.embedder = None
        self.store = None

    def setup(self):
        self.embedder = Embedder(self.model, device=self.device, batch_size=self.batch_size)
        self.store = EmbeddingStore(self.store_root)

    def process(self, batch):
        ids, texts = batch
        res = self.embedder.encode(list(texts))
        self.store.put(res.model_name, self.recipe, list(ids), res.vectors)
        yield {"computed": len(ids), "truncated": int(res.truncated)}


def embed_texts(
    texts: list[str],
    store_root: str,
    recipe: str,
    *,
    model: str | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    element_size: int = DEFAULT_BATCH,
    beam_args: list[str] | None = None,
) -> tuple[np.ndarray, EmbedCounts]:
    """Vectors for ``texts`` (L2-normalised, in input order), computing only what the store lacks."""
    store = EmbeddingStore(store_root)
    model_name = Embedder(model, device=device, batch_size=batch_size).model_name
    ids = [text_id(t) for t in texts]
    unique = dict(zip(ids, texts))
    uid = list(unique)
    found, _ = store.get(model_name, recipe, uid)
    missing = [i for i, f in zip(uid, found) if not f]
    counts = EmbedCounts(texts=len(texts), unique=len(uid), cache_hits=len(uid) - len(missing))
    if missing:
        # Length-sort globally so each element (and each model batch inside it) pads little.
        missing.sort(key=lambda i: len(unique[i]))
        batches = [
            (tuple(missing[i : i + element_size]), tuple(unique[j] for j in missing[i : i + element_size]))
            for i in range(0, len(missing), element_size)
        ]
        with tempfile.TemporaryDirectory(prefix="prefmill-embed-") as tmp:
            fn = EmbedBatchFn(store_root, model, recipe, device, batch_size)
            with beam.Pipeline(options=beam_options(beam_args)) as p:
                _ = (
                    p
                    | "Batches" >> beam.Create(batches, reshuffle=False)
                    | "Embed" >> beam.ParDo(fn)
                    | "Sum" >> beam.CombineGlobally(_sum_counts)
                    | "Report" >> beam.Map(_write_json, os.path.join(tmp, "counts.json"))
                )
            with open(os.path.join(tmp, "counts.json")) as f:
                done = json.load(f)
        counts.computed, counts.truncated = done["computed"], done["truncated"]
    found, vecs = store.get(model_name, recipe, ids)
    if not bool(np.all(found)):
        raise RuntimeError(f"{int((~np.asarray(found)).sum())} embeddings missing after the embed step")
    return vecs, counts


def _write_json(obj, path: str) -> None:
    # Results travel back through a file: Beam pickles closures, even on the in-process runner.
    with open(path, "w") as f:
        json.dump(obj, f)


def _sum_counts(items) -> dict:
    out = {"computed": 0, "truncated": 0}
    for it in items:
        out["computed"] += it["computed"]
        out["truncated"] += it["truncated"]
    return out
