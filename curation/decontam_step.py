"""``DecontamStep``: reject rows whose prompt turns (optionally also responses) contain a benchmark prompt.

Every message of the prompt (and with ``responses`` every message of chosen / rejected / completion(s)) is
matched on its own against the benchmark index (``curation.decontam``: word n-gram coverage of the
benchmark item, exact normalised match for items shorter than n words). A row with any matching message
is rejected as ``contaminated:<benchmark name>`` (the best match: highest coverage, then the first
benchmark given); ``detail`` is JSON naming the benchmark item, its coverage (n-grams found / n-grams of
the item, or ``exact``), the column and message position, and the item's text. The index is built in
``setup`` once per worker; ``process`` is vectorised over the batch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.benchmarks import DEFAULT_BENCHMARKS, Benchmark, BenchmarkIndex, read_benchmarks
from curation.decontam import DEFAULT_NGRAM, DEFAULT_THRESHOLD, DecontamError, check_params
from schemas.registry import STEPS
from schemas.step import Step, StepResult, reject_rows

STEP = "decontaminate"
REASON = "contaminated"
SHAPES = ("pairwise", "binary", "ratings", "listwise")
RESPONSE_COLUMNS = ("chosen", "rejected", "completion")  # conversation columns; listwise: ``completions``
_TEXT_CHARS = 300  # of the benchmark item, in ``detail``


@dataclass(frozen=True)
class DecontamConfig:
    benchmarks: tuple[str, ...] = DEFAULT_BENCHMARKS  # benchmark prompt files (default: the bundled ones)
    ngram: int = DEFAULT_NGRAM  # words per n-gram
    threshold: float = DEFAULT_THRESHOLD  # share of a benchmark item's n-grams a message must contain
    responses: bool = False  # also check the responses
    field: str | None = None  # the benchmark records' text field (default: prompt, turns, question, ...)

    def check(self) -> DecontamConfig:
        check_params(self.ngram, self.threshold)
        if isinstance(self.benchmarks, (str, bytes)) or not self.benchmarks:
            raise DecontamError("benchmarks must be a non-empty list of files")
        return self

    def params(self) -> dict[str, Any]:
        return {**asdict(self), "benchmarks": list(self.benchmarks)}


def load(config: DecontamConfig) -> tuple[list[Benchmark], BenchmarkIndex]:
    """Read the config's benchmark files and index them (raises ``DecontamError`` on bad files)."""
    config.check()
    benches = read_benchmarks(config.benchmarks, config.field)
    return benches, BenchmarkIndex.build(benches, config.ngram, config.threshold)


@dataclass
class _Turns:
    texts: pa.Array
    row: np.ndarray  # row of the batch
    column: np.ndarray  # position in ``names``
    pos: np.ndarray  # message position in its conversation
    names: list[str]


def _chunk(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _messages(conv: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(content, owner index, position) of every message of a list<struct<role, content>> array."""
    lens = pc.fill_null(pc.list_value_length(conv), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    owner = np.repeat(np.arange(len(conv), dtype=np.int64), lens)
    pos = np.arange(len(owner), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    content = pc.struct_field(conv.flatten(), "content")
    if pa.types.is_large_string(content.type):
        content = content.cast(pa.string())
    return content, owner, pos


def _turns(batch: pa.Table, responses: bool) -> _Turns:
    cols = ["prompt"] + (
        [c for c in (*RESPONSE_COLUMNS, "completions") if c in batch.column_names] if responses else []
    )
    texts, rows, which, poss = [], [], [], []
    for k, name in enumerate(cols):
        conv = _chunk(batch.column(name))
        if name == "completions":  # list of conversations: owner of a completion is its row
            comp_owner = np.repeat(
                np.arange(len(conv), dtype=np.int64),
                pc.fill_null(pc.list_value_length(conv), 0).to_numpy(zero_copy_only=False).astype(np.int64),
            )
            content, owner, pos = _messages(conv.flatten())
            owner = comp_owner[owner]
        else:
            content, owner, pos = _messages(conv)
        texts.append(content)
        rows.append(owner)
        which.append(np.full(len(owner), k, np.int64))
        poss.append(pos)
    return _Turns(
        pa.concat_arrays(texts) if texts else pa.array([], pa.string()),
        np.concatenate(rows),
        np.concatenate(which),
        np.concatenate(poss),
        cols,
    )


@STEPS.register(STEP, config=DecontamConfig, shapes=SHAPES, tags=("decontaminated",), extra={"stage": "curate"})
class DecontamStep(Step):
    """Reject rows whose prompt turns (or responses) contain benchmark prompts (word n-gram coverage)."""

    name = STEP
    needs = ("prompt",)
    shapes = SHAPES

    def __init__(self, config: DecontamConfig | None = None, *, index: BenchmarkIndex | None = None):
        super().__init__()
        self.config = (config or DecontamConfig()).check()
        self._given = index
        self._index: BenchmarkIndex | None = index

    def setup(self) -> None:
        if self._index is None:
            self._index = load(self.config)[1]

    def teardown(self) -> None:
        self._index = self._given

    @property
    def index(self) -> BenchmarkIndex:
        if self._index is None:  # called outside the executor
            self.setup()
        assert self._index is not None
        return self._index

    def process(self, batch: pa.Table) -> StepResult:
        ix = self.index
        turns = _turns(batch, self.config.responses)
        m = ix.index.match(turns.texts)
        hit = np.flatnonzero(m.hit)
        if len(hit) == 0:
            return StepResult(batch)
        # per row, its best message: highest coverage, then the first benchmark / item, then the first message
        order = hit[np.lexsort((hit, m.item[hit], -m.coverage[hit], turns.row[hit]))]
        first = order[np.r_[True, turns.row[order][1:] != turns.row[order][:-1]]]
        rows = turns.row[first]
        reasons, details = [], []
        texts = ix.texts
        for t in first.tolist():
            it = int(m.item[t])
            bench = ix.names[ix.bench_of[it]]
            reasons.append(f"{REASON}:{bench}")
            total = int(m.total[t])
            details.append(
                json.dumps(
                    {
                        "benchmark": bench,
                        "item": ix.item_ids[it],
                        "coverage": round(float(m.coverage[t]), 4),
                        "ngrams": f"{int(m.matched[t])}/{total}" if total else "exact",
                        "column": turns.names[int(turns.column[t])],
                        "turn": int(turns.pos[t]),
                        "text": texts[it][:_TEXT_CHARS],
                    },
                    ensure_ascii=False,
                )
            )
        mask = np.zeros(batch.num_rows, bool)
        mask[rows] = True
        rejected = reject_rows(batch.take(pa.array(rows)), self.step_name, reasons, detail=details, shape=self.shape)
        return StepResult(batch.filter(pa.array(~mask)), rejected)
