"""The judge step: on a scripted engine (the step alone), and on the executor (Beam, FnApiRunner)
against the fake OpenAI server with injected faults and a budget cap."""

import re

import pyarrow as pa
import pytest

from judges.cache import RequestCache
from judges.engines import Endpoint, EngineSpec
from judges.judge_step import VERDICT_COLUMNS, JudgeStep
from pipelines.judge import run_judge
from schemas.step import REJECTED
from tests.judges.fixtures import FAST, pair_rows
from tests.judges.generators.scripted import Letter, ScriptedEngine, fenced


def _spec(url, cache=None, **kw):
    return EngineSpec({"judge": Endpoint(url, "fake-judge")}, cache_path=cache, **kw)


def _prefers_good(req, text):
    a = fenced(text, "RESPONSE A")[0]
    if "answer 3" in a:  # row 3: the judge's answer is never a letter
        return "Banana bread."
    if "answer 5" in a:  # row 5: the request fails
        return None
    p = 0.9 if a.startswith("good") else 0.2  # a position bias: A is favoured either way
    return Letter(p)


def test_judge_step_adds_verdicts_and_rejects_bad_rows_it_keeps():
    table = pair_rows(8, tie_every=4)
    eng = ScriptedEngine(_prefers_good, model="scripted-judge")
    step = JudgeStep(engine=eng, verdict_options={"guided_fallback": False})
    step.setup()
    res = step(table, "pairwise")
    out = res.kept
    assert out.num_rows == table.num_rows  # annotating: rows without a verdict stay
    assert out.column_names == table.column_names + VERDICT_COLUMNS
    rows = out.to_pylist()
    good = rows[1]
    assert good["judge_p_ab"] == pytest.approx(0.9)  # chosen shown as A
    assert good["judge_p_ba"] == pytest.approx(1 - 0.2)  # chosen shown as B: P(B) = 1 - P(A)
    assert good["judge_prob_chosen"] == pytest.approx((0.9 + 0.8) / 2)
    assert good["judge_agrees"] is True and good["judge_model"] == "scripted-judge"
    assert re.match(r"pairwise_verdict@[0-9a-f]{8}$", good["judge_template_id"])
    assert rows[0]["judge_agrees"] is None and rows[0]["judge_prob_chosen"] is not None  # a tie: nothing to agree with
    assert res.rejected.schema == REJECTED
    by_id = {r["record_id"]: r for r in res.rejected.to_pylist()}
    assert set(by_id) == {rows[3]["record_id"], rows[5]["record_id"]}
    r3 = by_id[rows[3]["record_id"]]
    assert r3["reason"] == "judge_unparseable" and r3["step"] == "judge" and r3["source_row"] == 3
    assert r3["shape"] == "pairwise" and "Banana bread." in r3["raw"]  # the judge's answers, for the quarantine
    assert by_id[rows[5]["record_id"]]["reason"] == "scripted_failure"
    for i in (3, 5):
        assert all(rows[i][c] is None for c in VERDICT_COLUMNS)
    assert len(eng.requests) == 2 * 8  # both presentation orders, in one batch
    c = step.take_counts()  # the base class counted: verdicts, not removed rows
    assert (c.rows_in, c.rows_kept, c.rows_rejected, c.annotates) == (8, 6, 2, True)
    assert c.reasons == {"judge_unparseable": 1, "scripted_failure": 1}


def test_pipeline_with_faults_counts_add_up(judge_server, tmp_path):
    srv = judge_server(fault_rate=0.2, faults=("http_500", "http_429", "drop", "garbage", "truncated"))
    table = pair_rows(60)
    spec = _spec(srv.url, str(tmp_path / "cache.sqlite"), concurrency=8, engine_options={**FAST, "max_retries": 0})
    res = run_judge(table, spec, work=tmp_path / "work", run_id="r1", batch_rows=16)
    counts, judged = res.counts, res.table
    assert res.fatal is None and counts.batches == 4
    assert counts.rows_in == 60 == counts.rows_judged + counts.rows_rejected
    assert 0 < counts.rows_rejected < 60  # with no retries a 20% fault rate fails some rows, not all
    assert judged.column("record_id").to_pylist() == table.column("record_id").to_pylist()  # input order
    assert judged.column("judge_prob_chosen").null_count == counts.rows_rejected
    q = res.rejected
    assert q.num_rows == counts.rows_rejected and set(q.column("step").to_pylist()) == {"judge"}
    assert set(q.column("run_id").to_pylist()) == {"r1"}
    assert sum(counts.reasons.values()) == counts.rows_rejected
    assert set(counts.reasons) <= {"http_500", "http_429", "disconnected", "bad_json", "bad_body"}
    assert set(q.column("record_id").to_pylist()) == {
        r["record_id"] for r in judged.to_pylist() if r["judge_prob_chosen"] is None
    }
    assert counts.engine["cache_misses"] == 120 and counts.engine["prompt_tokens"] > 0
    ok = [r for r in judged.to_pylist() if r["judge_prob_chosen"] is not None]
    assert ok and all(r["judge_prob_chosen"] == pytest.approx(0.75) and r["judge_agrees"] for r in ok)
    assert {r["judge_mode"] for r in ok} == {"logprobs"}
    (step,) = res.steps
    assert (step.step, step.rows_in, step.rows_kept, step.rows_rejected) == ("judge", 60, 60 - q.num_rows, q.num_rows)


def test_budget_cap_then_resume_from_cache(judge_server, tmp_path):
    srv = judge_server()
    table = pair_rows(20)
    cache = str(tmp_path / "cache.sqlite")
    capped = _spec(srv.url, cache, concurrency=1, max_requests=15, engine_options=FAST)
    first = run_judge(table, capped, work=tmp_path / "w1", run_id="r1", batch_rows=8).counts
    assert first.rows_in == 20 == first.rows_judged + first.rows_rejected
    assert first.reasons["budget_exhausted"] == first.rows_rejected > 0
    assert first.engine["sent"] == 15  # the cap is exact in requests
    srv.wait_idle()
    sent_before = dict(srv.counts.received)

    full = _spec(srv.url, cache, concurrency=4, engine_options=FAST)
    res = run_judge(table, full, work=tmp_path / "w2", run_id="r2", batch_rows=8)
    second = res.counts
    assert second.rows_judged == 20 and second.rows_rejected == 0
    assert second.engine["cache_hits"] == 15 and second.engine["cache_misses"] == 25
    srv.wait_idle()
    assert all(srv.counts.received[h] == n for h, n in sent_before.items())  # nothing answered was re-sent
    assert all(n == 1 for n in srv.counts.received.values())
    assert res.table.column("judge_prob_chosen").null_count == 0
    assert len(RequestCache(cache)) == 40


def test_limit_sends_a_prefix_and_keeps_the_rest_unjudged(judge_server, tmp_path):
    srv = judge_server()
    table = pair_rows(10)
    res = run_judge(table, _spec(srv.url, engine_options=FAST), work=tmp_path / "w", limit=4, batch_rows=3)
    assert res.rows_not_attempted == 6 and res.table.num_rows == 10
    assert res.table.column("record_id").to_pylist() == table.column("record_id").to_pylist()
    assert res.table.column("judge_prob_chosen").is_null().to_pylist() == [False] * 4 + [True] * 6
    assert res.steps[0].rows_in == 4 and (res.read.rows_in, res.read.rows_kept) == (10, 10)


def test_unreachable_server_is_fatal_not_a_reject(tmp_path):
    spec = _spec("http://127.0.0.1:9", engine_options={**FAST, "max_retries": 0})
    res = run_judge(pair_rows(5), spec, work=tmp_path / "w", run_id="r1", batch_rows=2)
    assert res.table is None and res.rejected.num_rows == 0
    assert "cannot reach" in str(res.fatal) and type(res.fatal).__name__ == "EngineUnreachable"
    assert "EngineUnreachable" in res.counts.fatal and res.counts.rows_judged == 0


def test_empty_table_judges_nothing(tmp_path):
    res = run_judge(pair_rows(0), _spec("http://127.0.0.1:9"), work=tmp_path / "w")
    assert res.table.num_rows == 0 and res.table.column_names[-len(VERDICT_COLUMNS) :] == VERDICT_COLUMNS
    assert isinstance(res.table, pa.Table) and res.fatal is None
