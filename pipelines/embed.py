"""Embedding on the executor: only the texts the store lacks go through ``EmbedStep``, once.

``embed_texts`` hashes the texts, asks the embedding store (keyed by text hash, model, recipe) which
distinct ones it lacks, sorts those by length over the whole call (``curation.steps.embed.missing_texts``)
and runs ``EmbedStep`` over them on the executor, one batch of ``element_size`` texts per unit: the model
is loaded once per worker and each worker writes its vectors to the store. Every vector is then read
back from the store, so a text is never embedded twice, across runs too.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from curation.embed import resolve_model
from curation.steps.embed import DEFAULT_BATCH, EmbedCounts, EmbedStep, missing_texts
from pipelines import workers
from pipelines.executor import Executor
from warehouse.embeddings import EmbeddingStore

__all__ = ["DEFAULT_BATCH", "EmbedCounts", "embed_texts"]


def embed_texts(
    texts: list[str],
    store_root: str | os.PathLike,
    recipe: str,
    *,
    model: str | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    element_size: int = DEFAULT_BATCH,
    beam_args: list[str] | None = None,
    work: str | os.PathLike | None = None,
) -> tuple[np.ndarray, EmbedCounts]:
    """Vectors for ``texts`` (L2-normalised, in input order), computing only what the store lacks.

    ``work`` is the executor's scratch space (default: a temporary directory); what it writes there is
    removed before returning.
    """
    store = EmbeddingStore(store_root)
    model_name = resolve_model(model)[1]
    ids, missing, counts = missing_texts(store, model_name, recipe, texts)
    if missing.num_rows:
        step = EmbedStep(store, recipe, model=model, device=device, batch_size=batch_size)
        if work is not None:
            Path(work).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="embed-", dir=work) as tmp:
            # In-process unless the Beam options ask for workers: each worker loads its own model.
            ex = Executor(
                Path(tmp), batch_rows=element_size, beam_args=beam_args, workers=workers.parallel_workers(0, beam_args)
            )
            done = ex.run_table(missing, [step], "text").count(step.step_name)
        counts.computed, counts.truncated = done.rows_in, done.rows_rejected
    found, vecs = store.get(model_name, recipe, ids)
    if not bool(np.all(found)):
        raise RuntimeError(f"{int((~np.asarray(found)).sum())} embeddings missing after the embed step")
    return vecs, counts
