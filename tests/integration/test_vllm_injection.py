"""flip_report end to end against a real ``vllm serve`` of the tiny random GPT-2.

The weights are random, so the flip rates mean nothing about real judges: these tests check the mechanics
(every comparison counted as judged or rejected, counts that add up, a JSON-able report) on real server answers.
"""

from __future__ import annotations

import json

import pytest

from judges import injection as I
from judges.http_engine import HTTPEngine

pytestmark = pytest.mark.vllm

ITEMS = [
    ("What is the capital of France?", "Paris.", "It is Lyon, I think."),
    ("Name a prime number.", "7", "Eight, because it is even."),
    (
        [
            {"role": "user", "content": "Say hello."},
            {"role": "assistant", "content": "To whom?"},
            {"role": "user", "content": "To me."},
        ],
        "Hello to you!",
        "No.",
    ),
    ("Give me a JSON object.", '{"ok": true}', "json is a format"),
]


@pytest.fixture
def engine(vllm_server):
    with HTTPEngine(vllm_server.url, vllm_server.model, concurrency=16, timeout_s=300) as eng:
        yield eng


def check_counts(rep: I.InjectionReport) -> None:
    n, k = len(ITEMS), len(I.PAYLOADS)
    assert rep.n_items == n and rep.payload_ids == [p.id for p in I.PAYLOADS]
    assert rep.clean["judged"] + rep.clean["rejected"] == n
    assert sum(rep.clean["reasons"].values()) == rep.clean["rejected"]
    totals = {"items": 0, "judged": 0, "rejected": 0, "rejected_clean": 0, "rejected_injected": 0}
    for pid, s in rep.per_payload.items():
        assert s["items"] == n == s["judged"] + s["rejected"], pid
        assert s["rejected"] == s["rejected_clean"] + s["rejected_injected"], pid
        assert s["rejected_clean"] == rep.clean["rejected"], pid  # a clean failure rejects that item everywhere
        assert sum(s["reasons"].values()) == s["rejected_injected"], pid
        for kind in ("swapped", "single_order"):
            t = s[kind]
            assert t["eligible"] + t["reverse_eligible"] == s["judged"], (pid, kind)
            assert 0 <= t["flips"] <= t["eligible"] and 0 <= t["reverse_flips"] <= t["reverse_eligible"]
        for key in totals:
            totals[key] += s[key]
    assert totals == {key: rep.overall[key] for key in totals} and totals["items"] == n * k
    for kind in ("swapped", "single_order"):
        assert rep.overall[kind]["flips"] == sum(s[kind]["flips"] for s in rep.per_payload.values())
    assert len(rep.rows) == n * k
    assert sum(r["status"] == "judged" for r in rep.rows) == rep.overall["judged"]
    for r in rep.rows:
        if r["status"] == "judged":
            assert all(0.0 <= r[f] <= 1.0 for f in ("clean", "injected", "clean_single", "injected_single")), r
    assert json.loads(json.dumps(rep.as_dict())) == rep.as_dict()


def test_flip_report_logprob_verdicts_on_a_real_server(engine):
    rep = I.flip_report(engine, ITEMS)  # first-token logprobs (max_tokens=1), guided re-ask when unusable
    check_counts(rep)
    # the letters always come back (logprobs, else a guided choice): every comparison is judged
    assert rep.overall["judged"] == len(ITEMS) * len(I.PAYLOADS), rep.overall
    # two requests per clean pair and per (item, payload): the skipped orders were never sent; re-asks add at most
    # one per order
    base = 2 * len(ITEMS) * (1 + len(I.PAYLOADS))
    assert base <= engine.stats.requests <= 2 * base and engine.stats.failures == 0
    print("\n" + json.dumps(rep.summary(), indent=1))


def test_flip_report_free_text_garbage_is_counted_not_raised(engine):
    # random weights: the free-text answers are mostly garbage, which must end up as counted rejections
    rep = I.flip_report(engine, ITEMS, use_logprobs=False, max_tokens=4)
    check_counts(rep)
    assert engine.stats.requests == 2 * len(ITEMS) * (1 + len(I.PAYLOADS))  # text mode never re-asks
    answer_reasons = {"judge_unparseable", "truncated", "empty_output", "refused"}
    assert set(rep.clean["reasons"]) | set(rep.overall["reasons"]) <= answer_reasons
    print("\n" + json.dumps(rep.summary(), indent=1))
