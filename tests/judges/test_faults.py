"""Fault tolerance: a faulty server degrades rows, never the run; killed or cancelled runs resume without
paying twice; an unreachable server fails fast; a budget stops cleanly and a larger one resumes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from judges.cache import RequestCache
from judges.cost import Budget
from judges.errors import EngineUnreachable
from judges.http_engine import HTTPEngine
from judges.types import Request
from tests.judges.fake_openai_server import FAULTS, answer_text, request_hash

ROOT = Path(__file__).resolve().parents[2]
MODEL = "fake-judge"
REASONS = {"http_500", "http_429", "timeout", "disconnected", "bad_json"}


def reqs(n: int, tag: str) -> list[Request]:
    return [Request.chat(MODEL, [{"role": "user", "content": f"{tag} {i}"}], temperature=0.0) for i in range(n)]


def test_twenty_percent_faults_degrade_rows_never_the_run(make_fake_server, tmp_path):
    srv = make_fake_server(latency_s=0.002, fault_rate=0.2, seed=11, hang_s=3.0)
    batch, max_retries = reqs(400, "faulty"), 4
    cache = RequestCache(tmp_path / "c.sqlite")
    with HTTPEngine(
        srv.url,
        MODEL,
        concurrency=32,
        timeout_s=1.0,
        max_retries=max_retries,
        backoff_base_s=0.005,
        backoff_max_s=0.05,
        cache=cache,
    ) as eng:
        out = eng.run(batch)
    assert set(srv.counts.faults) == set(FAULTS)  # every kind of fault was exercised
    received = srv.counts.received
    for req, resp in zip(batch, out):
        h = request_hash(req.body())
        assert resp.attempts == received[h] <= max_retries + 1  # the server saw exactly the attempts we count
        assert srv.counts.succeeded[h] <= 1  # no success was ever paid twice
        if resp.ok:
            assert resp.texts() == [answer_text(h)]  # a retried answer is the right answer, intact
        else:
            assert resp.error in REASONS and resp.detail and resp.attempts == max_retries + 1
    st = eng.stats
    assert st.sent == sum(received.values()) and st.retries == st.sent - len(batch)
    assert st.retries > 0 and st.failures == sum(not r.ok for r in out)
    assert len(cache) == sum(r.ok for r in out)

    before = dict(received)
    with HTTPEngine(
        srv.url,
        MODEL,
        concurrency=32,
        timeout_s=1.0,
        max_retries=max_retries,
        backoff_base_s=0.005,
        backoff_max_s=0.05,
        cache=cache,
    ) as eng:
        rerun = eng.run(batch)
    resent = {h for h, n in srv.counts.received.items() if n > before.get(h, 0)}
    assert resent == {request_hash(q.body()) for q, r in zip(batch, out) if not r.ok}
    assert sum(r.ok for r in rerun) >= sum(r.ok for r in out)


_CHILD = """
import sys
from judges.cache import RequestCache
from judges.http_engine import HTTPEngine
from judges.types import Request
url, cache_path, progress, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
batch = [Request.chat("fake-judge", [{"role": "user", "content": f"killed {i}"}], temperature=0.0) for i in range(n)]
with open(progress, "a", buffering=1) as f:
    eng = HTTPEngine(url, "fake-judge", concurrency=4, cache=RequestCache(cache_path))
    eng.run(batch, on_result=lambda i, r: r.ok and f.write(f"{i}\\n"))
"""


def test_killed_run_resumes_without_resending_successes(make_fake_server, tmp_path):
    srv = make_fake_server(latency_s=0.025)
    n, concurrency = 600, 4
    cache_path, progress = tmp_path / "c.sqlite", tmp_path / "progress.txt"
    progress.touch()
    child = subprocess.Popen([sys.executable, "-c", _CHILD, srv.url, str(cache_path), str(progress), str(n)], cwd=ROOT)
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline and len(progress.read_text().split()) < 100:
        time.sleep(0.005)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(30) == -signal.SIGKILL, "the child finished before it could be killed midway"

    srv.wait_idle()
    batch = reqs(n, "killed")
    cache = RequestCache(cache_path)
    revision = f"/models/{MODEL}@rev1"
    durable = cache.keys()
    reported = {batch[int(i)].key(revision) for i in progress.read_text().split()}
    assert len(reported) >= 100 and reported <= durable < {q.key(revision) for q in batch}
    answered_not_kept = [
        q for q in batch if srv.counts.succeeded[request_hash(q.body())] and q.key(revision) not in durable
    ]
    assert len(answered_not_kept) <= 2 * concurrency  # only what was in flight or in the last unflushed turn

    before = dict(srv.counts.received)
    with HTTPEngine(srv.url, MODEL, concurrency=16, cache=cache) as eng:
        out = eng.run(batch)
    assert all(r.ok for r in out)
    for q, r in zip(batch, out):
        h = request_hash(q.body())
        sent_again = srv.counts.received[h] - before.get(h, 0)
        assert sent_again == (0 if q.key(revision) in durable else 1)
        assert r.cached == (q.key(revision) in durable)


def test_cancelled_run_keeps_what_it_finished(make_fake_server, tmp_path):
    srv = make_fake_server(latency_s=0.005)
    batch = reqs(300, "cancelled")
    cache = RequestCache(tmp_path / "c.sqlite")
    eng = HTTPEngine(srv.url, MODEL, concurrency=8, cache=cache)
    reported: set[int] = set()

    async def run_and_cancel():
        task = asyncio.ensure_future(eng.arun(batch, on_result=lambda i, r: on_result(task, i, r)))
        with pytest.raises(asyncio.CancelledError):
            await task

    def on_result(task, i, r):
        reported.add(i)
        if len(reported) == 100:
            task.cancel()

    asyncio.run(run_and_cancel())
    eng.close()
    srv.wait_idle()
    revision = eng.revision
    durable = cache.keys()
    assert {batch[i].key(revision) for i in reported} <= durable  # reported means kept
    assert len(reported) <= len(durable) < len(batch)

    before = dict(srv.counts.received)
    with HTTPEngine(srv.url, MODEL, cache=cache) as eng2:
        out = eng2.run(batch)
    assert all(r.ok for r in out)
    for q in batch:
        h = request_hash(q.body())
        assert srv.counts.received[h] - before.get(h, 0) == (0 if q.key(revision) in durable else 1)
    assert (eng2.stats.cache_hits, eng2.stats.sent) == (len(durable), len(batch) - len(durable))


def test_unreachable_server_raises_one_line_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    eng = HTTPEngine(f"http://127.0.0.1:{port}", MODEL, max_retries=2, backoff_base_s=0.001, backoff_max_s=0.01)
    with pytest.raises(EngineUnreachable) as err:
        eng.run(reqs(3, "nobody"))
    msg = str(err.value)
    assert msg.startswith(f"cannot reach the LLM server at http://127.0.0.1:{port}: ") and "\n" not in msg
    with pytest.raises(EngineUnreachable):
        eng.model_revision()
    eng.close()


def test_budget_stops_cleanly_and_a_larger_budget_resumes(fake_server, tmp_path):
    batch = reqs(150, "budget")
    cache = RequestCache(tmp_path / "c.sqlite")
    with HTTPEngine(fake_server.url, MODEL, concurrency=8, cache=cache, budget=Budget(max_requests=60)) as eng:
        first = eng.run(batch)
    assert eng.budget_exhausted
    assert sum(r.ok for r in first) == 60
    assert {r.error for r in first if not r.ok} == {"budget_exhausted"}
    assert fake_server.counts.as_dict()["total"] == 60

    with HTTPEngine(fake_server.url, MODEL, concurrency=8, cache=cache, budget=Budget(max_requests=1000)) as eng:
        second = eng.run(batch)
    assert all(r.ok for r in second) and not eng.budget_exhausted
    assert eng.stats.cache_hits == 60 and eng.stats.sent == 90
    assert all(n == 1 for n in fake_server.counts.received.values()) and len(fake_server.counts.received) == 150
