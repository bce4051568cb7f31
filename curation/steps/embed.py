"""Embeddings for curation: ``EmbedStep`` runs the model over texts into the embedding store, and
``EmbedRowsStep`` gives every row its vectors (``_embedding``) for semantic dedup and selection.

A text is never embedded twice, across runs too: ``missing_texts`` lists the distinct texts the store
(keyed by text hash, model, recipe) lacks, sorted by length over the whole call so every batch pads
little, and only those go through ``EmbedStep`` (the model loaded once per worker, vectors written to
the store by the worker; ``pipelines.embed`` runs it on the executor). ``EmbedRowsStep.fit`` asks an
injected ``TextEmbedder`` (``pipelines.embed.embed_texts``) for every row's vectors at once, keeps them in
a scratch Parquet file keyed by ``_row``, and ``process`` reads each batch's slice of it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.embed import DEFAULT_MODEL, Embedder
from curation.recipes import text_array
from curation.steps.base import EMBEDDING, ROW, set_column, vector_array
from schemas.ids import text_id
from schemas.registry import STEPS
from schemas.step import FitStep, Resources, Step, StepError, StepResult, reject_rows

DEFAULT_BATCH = 256  # texts per executor batch (one EmbedStep call); the model's own batches are smaller
_ROW_GROUP = 4096  # rows per row group of the scratch vectors file: a batch reads only its slice


class VectorStore(Protocol):
    """The embedding store's interface (``warehouse.embeddings.EmbeddingStore``)."""

    def get(self, model: str, recipe: str, text_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]: ...

    def put(self, model: str, recipe: str, text_ids: Sequence[str], vectors: np.ndarray) -> int: ...


@dataclass
class EmbedCounts:
    """One embedding call: texts asked for, distinct ones, found in the store, computed, truncated."""

    texts: int = 0
    unique: int = 0
    cache_hits: int = 0
    computed: int = 0
    truncated: int = 0


def missing_texts(
    store: VectorStore, model_name: str, recipe: str, texts: Sequence[str]
) -> tuple[list[str], pa.Table, EmbedCounts]:
    """(text id per text, the distinct texts the store lacks as a ``text_id, text`` table sorted by length,
    counts so far). The sort is over the whole call: each batch (and each model batch in it) pads little."""
    ids = [text_id(t) for t in texts]
    unique = dict(zip(ids, texts))
    uid = list(unique)
    found, _ = store.get(model_name, recipe, uid)
    missing = [i for i, f in zip(uid, found) if not f]
    missing.sort(key=lambda i: len(unique[i]))
    table = pa.table(
        {"text_id": pa.array(missing, pa.string()), "text": pa.array([unique[i] for i in missing], pa.string())}
    )
    return ids, table, EmbedCounts(len(texts), len(uid), len(uid) - len(missing))


@STEPS.register("embed_texts", shapes=("text",), tags=("embedded",), extra={"stage": "curate"})
class EmbedStep(Step):
    """Embed a batch of distinct texts (the model loaded once per worker) and store the vectors."""

    name = "embed_texts"
    needs: ClassVar[tuple[str, ...]] = ("text_id", "text")
    shapes: ClassVar[tuple[str, ...] | None] = ("text",)
    # Its "rejected" rows are the texts longer than the model window: embedded from their first tokens and
    # kept, only counted (reason "truncated").
    annotates: ClassVar[bool] = True

    def __init__(
        self,
        store: VectorStore,
        recipe: str,
        *,
        model: str | None = None,
        device: str | None = None,
        batch_size: int | None = None,
    ):
        super().__init__()
        self.store, self.recipe = store, recipe
        self.model, self.device, self.batch_size = model, device, batch_size
        self.resources = Resources(model=model or DEFAULT_MODEL, batch_rows=DEFAULT_BATCH)
        self.embedder: Embedder | None = None

    def setup(self) -> None:
        self.embedder = Embedder(self.model, device=self.device, batch_size=self.batch_size)

    def teardown(self) -> None:
        self.embedder = None

    def process(self, batch: pa.Table) -> StepResult:
        if self.embedder is None:
            self.setup()
        assert self.embedder is not None
        ids = batch.column("text_id").to_pylist()
        res = self.embedder.encode(batch.column("text").to_pylist())
        self.store.put(res.model_name, self.recipe, ids, res.vectors)
        kept = batch.select(["text_id"])
        cut = kept.filter(pa.array(res.is_truncated)).rename_columns(["record_id"])
        detail = f"longer than the {self.embedder.window}-token window: embedded from its first tokens"
        return StepResult(kept, reject_rows(cut, self.step_name, "truncated", detail=detail))


RowTexts = Callable[[pa.Table], list[str]]


@dataclass(frozen=True)
class RecipeTexts:
    """Each row's text under a curation recipe (``curation.recipes``)."""

    recipe: str = "pair"

    def __call__(self, table: pa.Table) -> list[str]:
        return text_array(table, self.recipe).to_pylist()


class TextEmbedder(Protocol):
    """Vectors for texts (L2-normalised, in order) and what it took; computes only what the store lacks."""

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, EmbedCounts]: ...


@STEPS.register("embed", shapes=("pairwise",), tags=("embedded",), extra={"stage": "curate"})
class EmbedRowsStep(FitStep[str]):
    """Attach every row's embedding(s) as working columns (default ``_embedding`` of the ``pair`` recipe)."""

    name = "embed"
    needs: ClassVar[tuple[str, ...]] = (ROW,)
    adds: ClassVar[tuple[str, ...]] = (EMBEDDING,)
    shapes: ClassVar[tuple[str, ...] | None] = ("pairwise",)
    reported: ClassVar[bool] = False  # attaches working columns only: not in run_steps

    def __init__(self, embed: TextEmbedder, work: str | os.PathLike, columns: Mapping[str, RowTexts] | None = None):
        super().__init__()
        self.embed, self.work = embed, Path(work)
        self.columns = dict(columns or {EMBEDDING: RecipeTexts()})
        self.embed_counts: EmbedCounts | None = None  # set by fit (on the driver)

    def fit(self, table: pa.Table) -> str:
        """Every row's vectors in one call, written to a scratch file keyed by ``_row`` (the state is its path)."""
        n = table.num_rows
        texts = [t for texts_of in self.columns.values() for t in texts_of(table)]
        vecs, self.embed_counts = self.embed(texts)
        cols: dict[str, pa.Array | pa.ChunkedArray] = {ROW: table.column(ROW)}
        for k, name in enumerate(self.columns):
            cols[name] = vector_array(vecs[k * n : (k + 1) * n])
        self.work.mkdir(parents=True, exist_ok=True)
        path = self.work / f"{self.step_name}-{uuid.uuid4().hex[:8]}.parquet"
        pq.write_table(pa.table(cols), path, row_group_size=_ROW_GROUP)
        return str(path)

    def process(self, batch: pa.Table, state: str) -> StepResult:
        if not batch.num_rows:
            return StepResult(batch)
        rows = batch.column(ROW)
        span = pc.min_max(rows)
        lo, hi = span["min"].as_py(), span["max"].as_py()
        part = pq.read_table(state, filters=[(ROW, ">=", lo), (ROW, "<=", hi)])
        at = pc.index_in(rows, value_set=part.column(ROW).combine_chunks()).combine_chunks()
        if at.null_count:
            raise StepError(f"step {self.step_name!r}: {at.null_count} rows have no vectors (not seen by fit)")
        for name in self.columns:
            batch = set_column(batch, name, part.column(name).combine_chunks().take(at))
        return StepResult(batch)
