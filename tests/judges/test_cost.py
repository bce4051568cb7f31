"""GPU-seconds attribution, prices and budget caps (request, token and dollar caps on a live engine)."""

from __future__ import annotations

import math

import pytest

from judges.cache import RequestCache
from judges.cost import Budget, BusyMeter, Price
from judges.http_engine import HTTPEngine
from judges.types import Request

MODEL = "fake-judge"


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def chat(i: int) -> Request:
    return Request.chat(MODEL, [{"role": "user", "content": f"rate answer number {i} please"}])


def test_busy_meter_splits_overlap_and_skips_idle_gaps():
    clock = Clock()
    m = BusyMeter(clock)
    a = m.start()  # t=100: a alone
    clock.t = 102
    b = m.start()  # t=102: a and b share
    clock.t = 106
    share_a = m.stop(a)  # a: 2 alone + 4/2 shared
    clock.t = 107
    share_b = m.stop(b)  # b: 4/2 shared + 1 alone
    clock.t = 150  # idle: nobody pays
    c = m.start()
    clock.t = 151
    share_c = m.stop(c)
    assert share_a == pytest.approx(2 + 4 / 2)
    assert share_b == pytest.approx(4 / 2 + 1)
    assert share_c == pytest.approx(1)
    assert m.busy_s == pytest.approx(share_a + share_b + share_c) == pytest.approx(7 + 1)
    assert m.in_flight == 0


def test_price_combines_gpu_time_and_tokens():
    p = Price(gpu_usd_per_hour=2.0, gpus=2, usd_per_m_prompt_tokens=1.0, usd_per_m_completion_tokens=3.0)
    assert p.cost(1800) == pytest.approx(0.5 * 2 * 2.0)
    assert p.cost(0, prompt_tokens=2_000_000, completion_tokens=1_000_000) == pytest.approx(2 + 3)
    assert Price().cost(3600, 10**6, 10**6) == 0


def test_budget_caps():
    b = Budget(max_requests=2)
    assert b.admit() and b.admit() and not b.admit() and b.exhausted
    assert b.spent_requests == 2
    t = Budget(max_tokens=100)
    t.charge(tokens=99)
    assert t.admit()
    t.charge(tokens=1)
    assert t.exhausted and not t.admit()
    u = Budget(max_usd=1.0)
    u.charge(usd=0.4)
    assert not u.exhausted
    u.charge(usd=0.6)
    assert u.exhausted
    assert not Budget().exhausted


def test_usd_budget_needs_a_price(fake_server):
    with pytest.raises(ValueError, match="Price"):
        HTTPEngine(fake_server.url, MODEL, budget=Budget(max_usd=1))


def test_request_shares_add_up_to_busy_time_and_cost(make_fake_server, tmp_path):
    srv = make_fake_server(latency_s=0.005)
    price = Price(gpu_usd_per_hour=3.0, usd_per_m_prompt_tokens=0.5)
    cache = RequestCache(tmp_path / "c.sqlite")
    with HTTPEngine(srv.url, MODEL, concurrency=8, price=price, cache=cache) as eng:
        out = eng.run([chat(i) for i in range(40)])
        again = eng.run([chat(i) for i in range(40)])
    st = eng.stats
    assert all(r.gpu_seconds > 0 for r in out) and all(r.gpu_seconds == 0 for r in again)
    assert sum(r.gpu_seconds for r in out) == pytest.approx(st.busy_seconds, rel=1e-6)
    assert st.prompt_tokens == sum(r.prompt_tokens for r in out) > 0
    assert st.cost_usd == pytest.approx(price.cost(st.busy_seconds, st.prompt_tokens, st.completion_tokens))


def test_token_budget_stops_right_after_the_cap(fake_server):
    budget = Budget(max_tokens=50)
    with HTTPEngine(fake_server.url, MODEL, concurrency=1, budget=budget) as eng:
        out = eng.run([chat(i) for i in range(30)])
    sent = [r for r in out if r.ok]
    per_row = sent[0].prompt_tokens + sent[0].completion_tokens
    assert len(sent) == math.ceil(50 / per_row)  # one request at a time: no overshoot beyond the crossing one
    assert all(r.error == "budget_exhausted" for r in out[len(sent) :])
    assert eng.budget_exhausted and budget.spent_tokens >= 50
    assert fake_server.counts.as_dict()["total"] == len(sent)


def test_dollar_budget_stops_sending(make_fake_server):
    srv = make_fake_server(latency_s=0.005)
    budget = Budget(max_usd=0.5)
    price = Price(gpu_usd_per_hour=3600.0 * 100)  # $100 per busy second: a few requests exhaust it
    with HTTPEngine(srv.url, MODEL, concurrency=2, budget=budget, price=price) as eng:
        out = eng.run([chat(i) for i in range(200)])
    n_ok = sum(r.ok for r in out)
    assert n_ok >= 1 and out[-1].error == "budget_exhausted"
    assert srv.counts.as_dict()["total"] == n_ok
    assert eng.stats.cost_usd == pytest.approx(budget.spent_usd) and budget.spent_usd >= 0.5
    assert "rerun with a larger budget" in out[-1].detail
