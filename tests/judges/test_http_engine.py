"""HTTPEngine against the fake OpenAI server: answers, retry policy, errors, concurrency, sync/async use."""

from __future__ import annotations

import asyncio
import random
from email.utils import formatdate

import httpx
import pytest

from judges.errors import EngineUnreachable
from judges.http_engine import HTTPEngine, revision_from_models
from judges.http_outcome import retry_after
from judges.http_transport import PooledTransport, _dechunk
from judges.types import Request
from tests.judges.fake_openai_server import FAULTS, answer_text, request_hash

MODEL = "fake-judge"


def chat(i: int, **params) -> Request:
    return Request.chat(MODEL, [{"role": "user", "content": f"question {i}"}], temperature=0.0, **params)


def engine(srv, **kw) -> HTTPEngine:
    kw = {"backoff_base_s": 0.001, "backoff_max_s": 0.01, "timeout_s": 5, **kw}
    return HTTPEngine(srv.url, MODEL, **kw)


class Sleeps:
    """Stands in for asyncio.sleep: records the delays the engine asks for, waits for none."""

    def __init__(self):
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def test_chat_and_completion_answers_come_back_in_order(fake_server):
    reqs = [chat(i) for i in range(15)] + [
        Request.completion(MODEL, f"prompt {i}", max_tokens=4, logprobs=1) for i in range(15)
    ]
    with engine(fake_server) as eng:
        out = eng.run(reqs)
    for req, resp in zip(reqs, out):
        h = request_hash(req.body())
        assert resp.ok and resp.attempts == 1 and not resp.cached
        assert resp.texts() == [answer_text(h)]
        assert resp.completion_tokens == len(answer_text(h).split(" "))
    assert "tokens" in out[-1].body["choices"][0]["logprobs"]
    assert eng.stats.sent == fake_server.counts.as_dict()["total"] == 30
    assert eng.stats.completion_tokens == sum(r.completion_tokens for r in out)


def test_api_key_is_sent_on_every_request(fake_server):
    with engine(fake_server, api_key="sk-test") as eng:
        eng.run([chat(i) for i in range(3)])
    assert fake_server.counts.authorization == {"Bearer sk-test": 4}  # /v1/models + 3 completions


def test_revision_comes_from_models_unless_given(fake_server):
    with engine(fake_server) as eng:
        assert eng.model_revision() == f"/models/{MODEL}@rev1"
    with engine(fake_server, revision="pinned-sha") as eng:
        assert eng.model_revision() == "pinned-sha"
    assert revision_from_models({"data": [{"id": "other", "root": "x"}]}, MODEL) == ""
    assert revision_from_models({"data": [{"id": MODEL}]}, MODEL) == MODEL
    assert revision_from_models("not a dict", MODEL) == ""


def test_base_url_with_v1_suffix_is_accepted(fake_server):
    with HTTPEngine(fake_server.url + "/v1/", MODEL) as eng:
        assert eng.run([chat(1)])[0].ok


def test_client_errors_are_not_retried_and_keep_the_server_message(fake_server):
    bad = chat(1, fake_faults=["http_400"])
    unknown = Request.chat("no-such-model", [{"role": "user", "content": "hi"}])
    with engine(fake_server) as eng:
        r400, r404 = eng.run([bad, unknown])
    assert (r400.ok, r400.error, r400.attempts) == (False, "http_400", 1)
    assert "max_tokens must be positive" in r400.detail
    assert (r404.error, r404.attempts) == ("http_404", 1) and "no-such-model" in r404.detail
    assert fake_server.counts.received[request_hash(bad.body())] == 1
    assert eng.stats.retries == 0 and eng.stats.errors == {"http_400": 1, "http_404": 1}


def test_retry_after_is_honoured(make_fake_server):
    srv = make_fake_server(retry_after="3")
    with engine(srv) as eng:
        eng._sleep = sleeps = Sleeps()
        resp = eng.run([chat(1, fake_faults=["http_429", "http_429"])])[0]
    assert resp.ok and resp.attempts == 3
    assert sleeps.delays == [3.0, 3.0]


def test_retry_after_parsing():
    assert retry_after("1.5", cap=60) == 1.5
    assert retry_after("-4", cap=60) == 0.0
    assert retry_after("600", cap=60) == 60
    assert retry_after("soon", cap=60) is None and retry_after(None, cap=60) is None
    now_date = retry_after(formatdate(usegmt=True), cap=7200)  # an HTTP date: now → ~0 s
    assert now_date is not None and 0 <= now_date <= 5


def test_backoff_is_full_jitter_and_capped(fake_server):
    with engine(fake_server, max_retries=5, backoff_base_s=0.1, backoff_max_s=0.25) as eng:
        eng._sleep, eng._rng = Sleeps(), random.Random(7)
        resp = eng.run([chat(1, fake_faults=["http_500"] * 5)])[0]
    assert resp.ok and resp.attempts == 6
    caps = [min(0.25, 0.1 * 2**k) for k in range(5)]
    assert len(eng._sleep.delays) == 5
    assert all(0 <= d <= cap for d, cap in zip(eng._sleep.delays, caps))
    assert len(set(eng._sleep.delays)) == 5  # jittered, not a fixed schedule


EXPECTED_ERROR = {
    "http_500": "http_500",
    "http_429": "http_429",
    "timeout": "timeout",
    "drop": "disconnected",
    "truncated": "bad_json",
    "garbage": "bad_json",
}


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_is_retried_then_succeeds(make_fake_server, fault):
    srv = make_fake_server(hang_s=5.0)
    req = chat(1, fake_faults=[fault])
    with engine(srv, timeout_s=1.0) as eng:
        resp = eng.run([req])[0]
    assert resp.ok and resp.attempts == 2
    assert srv.counts.received[request_hash(req.body())] == 2
    assert srv.counts.succeeded[request_hash(req.body())] == 1


@pytest.mark.parametrize("fault", FAULTS)
def test_a_persistent_fault_fails_one_row_with_its_reason(make_fake_server, fault):
    srv = make_fake_server(hang_s=5.0)
    bad, good = chat(1, fake_faults=[fault] * 9), chat(2)
    with engine(srv, timeout_s=1.0, max_retries=2) as eng:
        r_bad, r_good = eng.run([bad, good])
    assert (r_bad.ok, r_bad.error, r_bad.attempts) == (False, EXPECTED_ERROR[fault], 3)
    assert r_bad.detail
    assert srv.counts.received[request_hash(bad.body())] == 3
    assert r_good.ok
    assert eng.stats.failures == 1 and eng.stats.retries == 2


def test_server_gone_mid_session_raises_unreachable(make_fake_server):
    srv = make_fake_server()
    eng = engine(srv, max_retries=1)
    assert eng.run([chat(1)])[0].ok
    srv.stop()
    with pytest.raises(EngineUnreachable, match="cannot reach the LLM server"):
        eng.run([chat(2), chat(3)])
    eng.close()


def test_concurrency_bounds_requests_in_flight(make_fake_server):
    srv = make_fake_server(latency_s=0.01)
    with engine(srv, concurrency=4) as eng:
        assert all(r.ok for r in eng.run([chat(i) for i in range(60)]))
    assert 2 <= srv.counts.max_in_flight <= 4


def test_identical_requests_in_one_call_are_sent_once(fake_server):
    reqs = [chat(i % 5) for i in range(20)]
    with engine(fake_server) as eng:
        out = eng.run(reqs)
    assert fake_server.counts.as_dict()["total"] == 5
    assert [r.texts() for r in out] == [out[i % 5].texts() for i in range(20)]
    assert eng.stats.cache_misses == 5 and eng.stats.cache_hits == 15


def test_on_result_reports_every_row_once(fake_server):
    seen: list[int] = []
    reqs = [chat(i % 7, fake_faults=["http_400"] if i == 3 else []) for i in range(25)]
    with engine(fake_server) as eng:
        out = eng.run(reqs, on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == list(range(25))
    assert not out[3].ok


def test_on_result_errors_do_not_stop_the_run(fake_server):
    def boom(i, r):
        raise RuntimeError("progress bar bug")

    with engine(fake_server) as eng:
        assert all(r.ok for r in eng.run([chat(i) for i in range(5)], on_result=boom))


def test_run_works_inside_a_running_loop_and_arun_in_another(fake_server):
    eng = engine(fake_server)

    async def sync_call_from_async_code():
        return eng.run([chat(1)])

    assert asyncio.run(sync_call_from_async_code())[0].ok
    assert asyncio.run(eng.arun([chat(2)]))[0].ok
    assert eng.run([chat(3)])[0].ok
    eng.close()


def test_transport_serves_httpx_clients_and_decodes_chunked_bodies(fake_server):
    async def get_models():
        async with httpx.AsyncClient(base_url=fake_server.url, transport=PooledTransport()) as c:
            return [(await c.get("/v1/models")).json() for _ in range(3)]

    answers = asyncio.run(get_models())
    assert all(a["data"][0]["id"] == MODEL for a in answers)
    assert _dechunk(bytearray(b"4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\n\r\n")) == b"Wikipedia"
    assert _dechunk(bytearray(b"4\r\nWiki\r\n5\r\nped")) is None
