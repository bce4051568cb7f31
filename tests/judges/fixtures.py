"""Shared fixtures and helpers for the LLM tests: the fake OpenAI server (random port, background
thread), the same server answering like a pairwise judge, and a small pairs dataset.

conftest.py files import the fixtures from here (one definition, used by several test folders)."""

from __future__ import annotations

import math
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas import records
from tests.judges import fake_openai_server
from tests.judges.fake_openai_server import FakeConfig, FakeOpenAIServer
from tests.judges.generators.scripted import fenced
from warehouse import RunCounts, Warehouse

# HTTPEngine options for tests: one quick retry, no backoff.
FAST = {"max_retries": 1, "backoff_base_s": 0.0, "backoff_max_s": 0.0, "timeout_s": 5, "connect_timeout_s": 1}


@pytest.fixture
def make_fake_server():
    """Factory: ``make_fake_server(latency_s=0.005, fault_rate=0.2, ...)`` → a started FakeOpenAIServer."""
    servers: list[FakeOpenAIServer] = []

    def make(**config) -> FakeOpenAIServer:
        srv = FakeOpenAIServer(FakeConfig(**config)).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def fake_server(make_fake_server) -> FakeOpenAIServer:
    return make_fake_server()


@pytest.fixture
def judge_server(make_fake_server, monkeypatch):
    """Factory: the fake OpenAI server (same fault injection and counters) answering like a pairwise judge."""
    original = fake_openai_server.completion_body
    monkeypatch.setattr(
        fake_openai_server, "completion_body", lambda path, req, h: _letter_body(original, path, req, h)
    )
    return make_fake_server


def _quality(text: str) -> float:
    """How the fake judge rates a response: "good ..." > "bad ...", else the last number in it
    (the fake server's own answers end in "Score: k")."""
    if text.startswith(("good", "bad")):
        return 10.0 if text.startswith("good") else 0.0
    nums = re.findall(r"\d+", text)
    return float(nums[-1]) if nums else 0.0


def _letter_body(original, path: str, req: dict, h: str) -> dict:
    """A pairwise judge's answer: one letter whose first-token logprobs say P(A) = 0.8 when Response A is
    better, 0.3 when it is worse (a position bias towards A), 0.55 on a tie. So a good chosen gets
    P(chosen) = (0.8 + 0.7) / 2 = 0.75; any other request gets the fake server's usual answer."""
    body = original(path, req, h)
    text = req["messages"][-1]["content"] if req.get("messages") else ""
    a, b = fenced(text, "RESPONSE A"), fenced(text, "RESPONSE B")
    if not a or not b:
        return body
    qa, qb = _quality(a[0]), _quality(b[0])
    p_a = 0.8 if qa > qb else 0.3 if qa < qb else 0.55
    top = [{"token": "A", "logprob": math.log(p_a)}, {"token": "B", "logprob": math.log(1 - p_a)}]
    letter = "A" if p_a > 0.5 else "B"
    body["choices"] = [
        {
            "index": 0,
            "message": {"role": "assistant", "content": letter},
            "finish_reason": "length",
            "logprobs": {"content": [{**top[letter == "B"], "top_logprobs": top}]},
        }
    ]
    body["usage"]["completion_tokens"] = 1
    return body


def pair_rows(n: int, tie_every: int = 0) -> pa.Table:
    """``n`` distinct pairwise rows with lineage filled in (row i's chosen is "good answer i")."""
    rows = []
    for i in range(n):
        label = "tie" if tie_every and i % tie_every == 0 else "chosen_better"
        r = records.pairwise(
            [{"role": "user", "content": f"Question number {i}?"}],
            [{"role": "assistant", "content": f"good answer {i}"}],
            [{"role": "assistant", "content": f"bad answer {i}"}],
            label=label,
        )
        rows.append({**r, "format": "test", "source_file": "pairs.jsonl", "source_row": i, "run_id": "seed"})
    return records.to_table(rows, "pairwise")


def make_pairs_dataset(wh: Warehouse, dataset: str, n: int, tie_every: int = 0) -> str:
    """Publish ``n`` pairs as a dataset version through the ordinary staged commit; returns the version."""
    run_id = wh.begin_run("ingest", dataset, {"test": True})
    table = pair_rows(n, tie_every)
    path = wh.staging_dir(run_id) / "pairwise" / "part.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)
    return wh.commit(run_id, dataset, RunCounts(n, n, n, 0)).version_id
