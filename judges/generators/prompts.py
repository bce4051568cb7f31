"""Where a generator's prompts come from: a JSONL prompts file, or the distinct prompts of a dataset."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from judges.generators.common import GeneratorError, as_messages
from schemas.step import Reject

STEP = "prompts"  # the quarantine step of a bad prompts-file line


def read_prompts_file(path: str | Path) -> tuple[list[list[dict]], list[Reject]]:
    """JSONL of ``{"prompt": text | [{role, content}, ...]}`` → message lists, and a Reject per bad line."""
    path = Path(path)
    if not path.is_file():
        raise GeneratorError(f"prompts file not found: {path}")
    prompts, rejects = [], []
    src = source_label(path)
    with path.open("rb") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                rejects.append(Reject(STEP, "invalid_json", str(e), src, i, raw=line))
                continue
            if not isinstance(obj, dict) or "prompt" not in obj:
                rejects.append(Reject(STEP, "missing_field", 'expected {"prompt": ...}', src, i, raw=line))
                continue
            try:
                msgs = as_messages(obj["prompt"])
            except GeneratorError as e:
                rejects.append(Reject(STEP, "bad_type", str(e), src, i, raw=line))
                continue
            if not any(m["content"].strip() for m in msgs if isinstance(m["content"], str)):
                rejects.append(Reject(STEP, "empty_prompt", "", src, i, raw=line))
                continue
            prompts.append(msgs)
    return prompts, rejects


def source_label(path: str | Path) -> str:
    return str(Path(path).resolve())


def distinct_prompts(tables: Iterable[pa.Table], limit: int | None = None) -> list[list[dict]]:
    """The distinct prompts (by ``prompt_id``, first occurrence, table after table) of tables with
    ``prompt_id`` and ``prompt`` columns; stops reading tables once ``limit`` prompts are found."""
    seen: set[str] = set()
    out: list[list[dict]] = []
    if limit is not None and limit <= 0:
        return out
    for t in tables:
        if t.num_rows == 0:
            continue
        ids = t.column("prompt_id").combine_chunks()
        # First row of each id in this table, in row order; only those rows become Python objects.
        firsts = (
            pa.table({"id": ids, "i": np.arange(len(ids))}).group_by("id", use_threads=False).aggregate([("i", "min")])
        )
        order = np.sort(firsts.column("i_min").to_numpy())
        new = order[~np.isin(ids.take(pa.array(order)).to_numpy(zero_copy_only=False), list(seen))] if seen else order
        if limit is not None:
            new = new[: limit - len(out)]
        take = pa.array(new, pa.int64())
        seen.update(pc.take(ids, take).to_pylist())
        out.extend(t.column("prompt").take(take).to_pylist())
        if limit is not None and len(out) >= limit:
            break  # the next table is never read
    return out
