"""RequestCache: persistence, only successes, batching, threads; the engine never re-sends a cached success."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from judges.cache import RequestCache
from judges.http_engine import HTTPEngine
from judges.types import Request, Response
from tests.judges.fake_openai_server import request_hash

ROOT = Path(__file__).resolve().parents[2]
MODEL = "fake-judge"


def chat(i: int, **params) -> Request:
    return Request.chat(MODEL, [{"role": "user", "content": f"q{i}"}], template_id="judge@abc", **params)


def ok(i: int) -> Response:
    usage = {"prompt_tokens": i, "completion_tokens": 2}
    return Response(ok=True, body={"choices": [{"text": f"a{i}"}], "usage": usage}, latency_s=0.01)


def test_stores_only_successes_and_reads_them_back(tmp_path):
    cache = RequestCache(tmp_path / "c.sqlite")
    items = [(chat(i).key("r"), chat(i), ok(i) if i % 3 else Response(ok=False, error="timeout")) for i in range(9)]
    assert cache.put_many(items, revision="r") == 6
    got = cache.get_many([k for k, _, _ in items] + ["missing"])
    assert set(got) == {k for k, _, r in items if r.ok}
    assert all(got[k] == r.body for k, _, r in items if r.ok)
    st = cache.stats
    assert (st["entries"], st["hits"], st["misses"], st["writes"]) == (6, 6, 4, 6)
    assert st["prompt_tokens"] == sum(i for i in range(9) if i % 3)


def test_row_records_request_and_metadata(tmp_path):
    cache = RequestCache(tmp_path / "c.sqlite")
    req = chat(1, temperature=0.5)
    cache.put_many([(req.key("rev9"), req, ok(4))], revision="rev9")
    row = (
        cache._conn()
        .execute("SELECT model, revision, template_id, request, prompt_tokens, completion_tokens FROM responses")
        .fetchone()
    )
    assert row[:3] == (MODEL, "rev9", "judge@abc")
    assert b'"temperature":0.5' in row[3]
    assert row[4:] == (4, 2)


def test_survives_reopening_and_other_processes(tmp_path):
    path = tmp_path / "c.sqlite"
    code = (
        "from judges.cache import RequestCache; from judges.types import Request, Response\n"
        f"c = RequestCache({str(path)!r})\n"
        "rs = [Request.completion('m', f'p{i}') for i in range(40)]\n"
        "c.put_many([(r.key(), r, Response(ok=True, body={'choices': []})) for r in rs])\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
    keys = [Request.completion("m", f"p{i}").key() for i in range(40)]
    assert len(RequestCache(path).get_many(keys)) == 40


def test_one_connection_per_thread_and_concurrent_writers(tmp_path):
    cache = RequestCache(tmp_path / "c.sqlite")
    conns, errors = [], []

    def write(t: int):
        try:
            conns.append(cache._conn())
            for b in range(5):
                start = t * 100 + b * 20
                cache.put_many([(chat(i).key(), chat(i), ok(i)) for i in range(start, start + 20)])
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len({id(c) for c in conns}) == 4
    assert len(cache) == 400
    cache.close()


def test_many_keys_are_looked_up_in_chunks(tmp_path):
    cache = RequestCache(tmp_path / "c.sqlite")
    cache.put_many([(chat(i).key(), chat(i), ok(i)) for i in range(1300)])
    assert len(cache.get_many([chat(i).key() for i in range(1400)])) == 1300


def test_second_run_sends_nothing_and_serves_identical_answers(fake_server, tmp_path):
    reqs = [chat(i, temperature=0.0) for i in range(50)]
    with HTTPEngine(fake_server.url, MODEL, cache=RequestCache(tmp_path / "c.sqlite")) as eng:
        first = eng.run(reqs)
    assert fake_server.counts.as_dict()["total"] == 50
    with HTTPEngine(fake_server.url, MODEL, cache=RequestCache(tmp_path / "c.sqlite")) as eng:
        second = eng.run(reqs)
    assert fake_server.counts.as_dict()["total"] == 50
    assert all(r.cached and r.ok for r in second)
    assert [r.body for r in second] == [r.body for r in first]
    assert (eng.stats.cache_hits, eng.stats.cache_misses, eng.stats.sent) == (50, 0, 0)
    assert eng.stats.prompt_tokens == 0  # nothing was paid for this run


def test_failures_are_not_cached_and_retried_next_run(fake_server, tmp_path):
    # a scripted 400 on the first attempt only: the next run's attempt succeeds
    reqs = [chat(i, fake_faults=["http_400"] if i % 4 == 0 else []) for i in range(20)]
    cache = RequestCache(tmp_path / "c.sqlite")
    with HTTPEngine(fake_server.url, MODEL, cache=cache) as eng:
        first = eng.run(reqs)
    assert [r.ok for r in first] == [i % 4 != 0 for i in range(20)]
    assert len(cache) == 15
    before = dict(fake_server.counts.received)  # not reset: the script counts attempts across runs
    with HTTPEngine(fake_server.url, MODEL, cache=cache) as eng:
        second = eng.run(reqs)
    assert all(r.ok for r in second)
    resent = {h for h, n in fake_server.counts.received.items() if n > before.get(h, 0)}
    assert resent == {request_hash(reqs[i].body()) for i in range(0, 20, 4)}


def test_model_revision_is_part_of_the_key(fake_server, tmp_path):
    cache = RequestCache(tmp_path / "c.sqlite")
    for rev in ("rev-a", "rev-b", "rev-a"):
        with HTTPEngine(fake_server.url, MODEL, revision=rev, cache=cache) as eng:
            eng.run([chat(1)])
    assert fake_server.counts.as_dict()["total"] == 2
