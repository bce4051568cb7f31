"""Benchmark prompt files for decontamination: JSONL / JSON / CSV / Parquet records → text items.

A record's text is the first of ``prompt``, ``turns`` (a list: each turn is its own item), ``question``,
``instruction``, ``input`` it has (or only ``field`` when one is given); a record that is a bare string is
its own text, and a chat turn ``{"role": ..., "content": ...}`` gives its content. An item is named
``<id>`` or ``<id>.<turn>`` with the record's ``question_id`` / ``id`` (else its position in the file).
Items that cannot be used are counted per reason and skipped: ``missing_field``, ``null``, ``empty``
(blank text), ``non_text`` (a number, an object, ...), ``no_words`` (only punctuation or symbols),
``bad_record`` (a JSONL line that is not JSON). A file that is missing, of an unknown type, unreadable,
or gives no item at all is one clear error. The benchmark's name is the file's stem
(``mt_bench_questions.jsonl`` → ``mt_bench_questions``): rows it finds are rejected as
``contaminated:<name>``.

The MT-Bench and Vicuna-bench questions are bundled (examples/data/benchmark_prompts) as the defaults.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curation.decontam import DecontamError, NgramIndex, words

TEXT_FIELDS = ("prompt", "turns", "question", "instruction", "input")
ID_FIELDS = ("question_id", "id", "idx", "task_id")
BUNDLED = Path(__file__).resolve().parents[1] / "examples" / "data" / "benchmark_prompts"
DEFAULT_BENCHMARKS = (
    str(BUNDLED / "mt_bench_questions.jsonl"),
    str(BUNDLED / "vicuna_bench_questions.jsonl"),
)
_KINDS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class Item:
    item_id: str
    text: str


@dataclass
class Benchmark:
    """One benchmark file's usable items and what was skipped (reason → count)."""

    name: str
    path: str
    sha256: str
    records: int = 0
    items: list[Item] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "records": self.records,
            "items": len(self.items),
            "skipped": dict(sorted(self.skipped.items())),
        }


def _kind(path: Path) -> tuple[str, bool]:
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    ext = suffixes[-2] if gz and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
    if ext not in _KINDS or (gz and _KINDS[ext] == "parquet"):
        raise DecontamError(
            f"benchmark file {path}: unknown type {''.join(path.suffixes) or '(none)'}; "
            "expected .jsonl, .json, .csv or .parquet (.gz allowed except for Parquet)"
        )
    return _KINDS[ext], gz


def _stem(path: Path) -> str:
    name = path.name
    for s in reversed(path.suffixes):
        if s.lower() in (".gz", *_KINDS):
            name = name[: -len(s)]
    return name or path.name


def _records(path: Path, data: bytes, kind: str, skipped: Counter[str]) -> Iterator[Any]:
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            yield from pq.read_table(io.BytesIO(data)).to_pylist()
            return
        text = data.decode("utf-8-sig")
        if kind == "csv":
            import pyarrow.csv as pcsv

            # every column as text: a numeric-looking question stays its text
            opts = pcsv.ConvertOptions(strings_can_be_null=False, column_types=None)
            table = pcsv.read_csv(io.BytesIO(text.encode()), convert_options=opts)
            yield from table.cast(pa.schema([pa.field(n, pa.string()) for n in table.column_names])).to_pylist()
            return
        if kind == "json":
            obj = json.loads(text)
            if isinstance(obj, dict):
                lists = [v for v in obj.values() if isinstance(v, list)]
                if len(lists) != 1:
                    raise DecontamError(f"benchmark file {path}: a JSON object needs exactly one list of records")
                obj = lists[0]
            if not isinstance(obj, list):
                raise DecontamError(f"benchmark file {path}: JSON must be a list of records")
            yield from obj
            return
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                skipped["bad_record"] += 1
                yield _BAD
    except DecontamError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, pa.ArrowException, OSError, EOFError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DecontamError(f"benchmark file {path} cannot be read as {kind}: {first}") from None


_BAD = object()  # a record that could not be parsed (already counted)


def _texts(rec: Any, fld: str | None) -> tuple[list[tuple[str, Any]], str | None]:
    """(suffix, value) pairs to turn into items, or a skip reason for the whole record."""
    if isinstance(rec, str) and fld is None:
        return [("", rec)], None
    if not isinstance(rec, dict):
        return [], "non_text" if fld is None else "missing_field"
    names = [fld] if fld is not None else [f for f in TEXT_FIELDS if f in rec]
    if not names or names[0] not in rec:
        return [], "missing_field"
    value = rec[names[0]]
    if isinstance(value, (list, tuple)):
        if not value:
            return [], "empty"
        return [(f".{k}", v) for k, v in enumerate(value)], None
    return [("", value)], None


def read_benchmark(path: str | Path, fld: str | None = None) -> Benchmark:
    """One benchmark file (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise DecontamError(f"benchmark file not found: {p}")
    kind, gz = _kind(p)
    raw = p.read_bytes()
    if gz:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DecontamError(f"benchmark file {p} is not valid gzip: {e}") from None
    bench = Benchmark(_stem(p), str(p.resolve()), hashlib.sha256(raw).hexdigest())
    candidates: list[Item] = []
    for pos, rec in enumerate(_records(p, raw, kind, bench.skipped)):
        bench.records += 1
        if rec is _BAD:
            continue
        pairs, reason = _texts(rec, fld)
        if reason:
            bench.skipped[reason] += 1
            continue
        rid = next((rec[k] for k in ID_FIELDS if isinstance(rec, dict) and rec.get(k) is not None), pos)
        for suffix, value in pairs:
            if isinstance(value, dict) and "content" in value:  # a chat turn {"role": ..., "content": ...}
                value = value["content"]
            if value is None:
                bench.skipped["null"] += 1
            elif not isinstance(value, str):
                bench.skipped["non_text"] += 1
            elif not value.strip():
                bench.skipped["empty"] += 1
            else:
                candidates.append(Item(f"{rid}{suffix}", value))
    if candidates:
        n_words = pc.list_value_length(words([c.text for c in candidates])).fill_null(0).to_pylist()
        for c, k in zip(candidates, n_words):
            if k:
                bench.items.append(c)
            else:
                bench.skipped["no_words"] += 1
    if not bench.items:
        what = f"field {fld!r}" if fld else "fields " + ", ".join(TEXT_FIELDS)
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(bench.skipped.items())) or "no records"
        raise DecontamError(f"benchmark file {p} has no usable text in {what} ({bench.records} records; {skipped})")
    return bench


def read_benchmarks(paths: Sequence[str | Path], fld: str | None = None) -> list[Benchmark]:
    if not paths:
        raise DecontamError("no benchmark files given")
    out = [read_benchmark(p, fld) for p in paths]
    names = Counter(b.name for b in out)
    twice = sorted(n for n, c in names.items() if c > 1)
    if twice:
        raise DecontamError(
            f"benchmark files must have distinct names (rows are rejected as contaminated:<name>); "
            f"{', '.join(twice)} is given more than once: rename a copy"
        )
    return out


@dataclass
class BenchmarkIndex:
    """An n-gram index over several benchmarks' items, and which benchmark and item each index entry is."""

    index: NgramIndex
    names: list[str]  # benchmark names, in the order given
    bench_of: list[int]  # per item: its benchmark's position in ``names``
    item_ids: list[str]
    texts: list[str]

    @classmethod
    def build(cls, benchmarks: Sequence[Benchmark], n: int, threshold: float) -> BenchmarkIndex:
        items = [(b, it) for b, bench in enumerate(benchmarks) for it in bench.items]
        texts = [it.text for _, it in items]
        return cls(
            NgramIndex.build(texts, n, threshold),
            [b.name for b in benchmarks],
            [b for b, _ in items],
            [it.item_id for _, it in items],
            texts,
        )

    def short_items(self) -> Counter[str]:
        """Items per benchmark that only an exact match finds (fewer than n words)."""
        return Counter(self.names[self.bench_of[i]] for i in range(self.index.items) if not self.index.item_ngrams[i])
