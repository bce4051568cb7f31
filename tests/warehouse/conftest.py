"""Test data for the warehouse: real sample records parsed by tiny helpers (the adapters live elsewhere)."""

from __future__ import annotations

import gzip
import json
import re
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas import records
from schemas.step import Reject, rejects_table
from warehouse import RunCounts, StepCount, Warehouse

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
HH = DATA / "hh_rlhf_harmless_base" / "test.jsonl.gz"
PANDALM = DATA / "pandalm_testset" / "testset-v1.json"
KTO = DATA / "llamafactory_kto_en_demo" / "kto_en_demo.json"

_TURN = re.compile(r"\n\n(Human|Assistant): ")


def _dialogue(text: str) -> list[dict]:
    parts = _TURN.split(text)[1:]
    return [
        {"role": "user" if who == "Human" else "assistant", "content": body}
        for who, body in zip(parts[::2], parts[1::2])
    ]


def hh_rows(n: int, start: int = 0) -> list[dict]:
    """HH-RLHF pairs: shared prefix is the prompt, the final assistant turns are chosen / rejected."""
    out = []
    with gzip.open(HH, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i < start:
                continue
            if len(out) == n:
                break
            obj = json.loads(line)
            chosen, rejected = _dialogue(obj["chosen"]), _dialogue(obj["rejected"])
            if not chosen or chosen[-1]["role"] != "assistant" or chosen[:-1] != rejected[:-1]:
                continue
            if chosen[-1]["content"].strip() == rejected[-1]["content"].strip():
                continue
            row = records.pairwise(chosen[:-1], chosen[-1:], rejected[-1:])
            row.update(format="hh-rlhf", source_file=str(HH), source_row=i)
            out.append(row)
    return out


def pandalm_rows(n: int | None = None) -> list[dict]:
    """PandaLM: majority of three annotators; 0 means a tie (kept as a row, never exported as a pair)."""
    items = json.loads(PANDALM.read_text())
    out = []
    for i, it in enumerate(items[:n] if n else items):
        if not all(isinstance(it[k], str) for k in ("instruction", "input", "response1", "response2")):
            continue  # a few records hold non-text responses (e.g. a bare boolean)
        votes = [it["annotator1"], it["annotator2"], it["annotator3"]]
        winner = max(set(votes), key=votes.count)
        prompt = [{"role": "user", "content": (it["instruction"] + "\n" + it["input"]).strip()}]
        r1 = [{"role": "assistant", "content": it["response1"]}]
        r2 = [{"role": "assistant", "content": it["response2"]}]
        if r1[0]["content"].strip() == r2[0]["content"].strip() or not r1[0]["content"].strip():
            continue
        chosen, rejected = (r2, r1) if winner == 2 else (r1, r2)
        row = records.pairwise(
            prompt, chosen, rejected, label="tie" if winner == 0 else "chosen_better", meta={"cmp_key": it["cmp_key"]}
        )
        row.update(format="pandalm", source_file=str(PANDALM), source_row=i)
        out.append(row)
    return out


def kto_rows(n: int | None = None) -> list[dict]:
    items = json.loads(KTO.read_text())
    out = []
    for i, it in enumerate(items[:n] if n else items):
        msgs = it["messages"]
        row = records.binary(msgs[:-1], msgs[-1:], label=it["label"])
        row.update(format="llamafactory-kto", source_file=str(KTO), source_row=i)
        out.append(row)
    return out


def listwise_rows(n: int = 20) -> list[dict]:
    """Group PandaLM responses by prompt into lists; rank by how often each response won."""
    items = json.loads(PANDALM.read_text())
    by_prompt: dict[str, dict[str, int]] = defaultdict(dict)
    for it in items:
        p = (it["instruction"] + "\n" + it["input"]).strip()
        votes = [it["annotator1"], it["annotator2"], it["annotator3"]]
        for k, resp in ((1, it["response1"]), (2, it["response2"])):
            if isinstance(resp, str) and resp.strip():
                by_prompt[p][resp] = by_prompt[p].get(resp, 0) + votes.count(k)
    out = []
    for i, (p, wins) in enumerate(by_prompt.items()):
        if len(out) == n:
            break
        if len(wins) < 3:
            continue
        resps = sorted(wins, key=lambda r: -wins[r])
        scores = [float(wins[r]) for r in resps]
        ranks = [sorted(set(scores), reverse=True).index(s) for s in scores]
        row = records.listwise(
            [{"role": "user", "content": p}],
            [[{"role": "assistant", "content": r}] for r in resps],
            ranks=ranks,
            scores=scores,
        )
        row.update(format="pandalm-lists", source_file=str(PANDALM), source_row=i)
        out.append(row)
    return out


def table(rows: list[dict], shape: str, run_id: str) -> pa.Table:
    return records.to_table([{**r, "run_id": run_id} for r in rows], shape)


def stage(wh: Warehouse, run_id: str, shape: str, rows: list[dict], part: int = 0) -> Path:
    path = wh.staging_dir(run_id) / shape / f"part-{part:05d}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table(rows, shape, run_id), path)
    return path


def stage_rejects(wh: Warehouse, run_id: str, rejects: list[Reject], part: int = 0) -> None:
    path = wh.staging_dir(run_id) / "quarantine" / f"part-{part:05d}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rejects_table(rejects, run_id), path)


def ingest(
    wh: Warehouse, dataset: str, shapes: dict[str, list[dict]], rejects: list[Reject] = (), kind: str = "ingest"
):
    """What an ingest pipeline does: stage shards, then commit with its counts."""
    run_id = wh.begin_run(kind, dataset, {"test": True})
    kept = 0
    for shape, rows in shapes.items():
        if rows:
            stage(wh, run_id, shape, rows)
        kept += len(rows)
    if rejects:
        stage_rejects(wh, run_id, list(rejects))
    n = kept + len(rejects)
    counts = RunCounts(records_read=n, rows_read=n, rows_kept=kept, rows_rejected=len(rejects))
    steps = [StepCount("adapt", rows_in=n, rows_kept=kept, rows_rejected=len(rejects))]
    return wh.commit(run_id, dataset, counts=counts, steps=steps, policies=[])


@pytest.fixture
def wh(tmp_path) -> Warehouse:
    return Warehouse(tmp_path / "wh")


@pytest.fixture
def mixed(wh) -> Warehouse:
    """Dataset "mix": pairs (HH-RLHF and PandaLM, some ties), binary feedback and ranked lists."""
    ingest(
        wh, "mix", {"pairwise": hh_rows(120) + pandalm_rows(120), "binary": kto_rows(60), "listwise": listwise_rows(25)}
    )
    return wh
