"""The Beam judge step: the per-batch step on a scripted engine, and the real pipeline (FnApiRunner)
against the fake OpenAI server with injected faults and a budget cap."""

import json
import math
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from judges.cache import RequestCache
from pipelines.ingest import counts_dir_for
from pipelines.judge import VERDICT_COLUMNS, JudgeSpec, judge_batch, run_judge
from schemas import records
from tests.judges import fake_openai_server
from tests.judges.conftest import make_fake_server  # noqa: F401  (fixture)
from tests.judges.generators.scripted import Letter, ScriptedEngine, fenced
from warehouse import RunCounts, Warehouse

FAST = {"max_retries": 1, "backoff_base_s": 0.0, "backoff_max_s": 0.0, "timeout_s": 5, "connect_timeout_s": 1}


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


def _quality(text: str) -> float:
    """How the fake judge rates a response: "good ..." > "bad ...", else the last number in it
    (the fake server's own answers end in "Score: k")."""
    if text.startswith(("good", "bad")):
        return 10.0 if text.startswith("good") else 0.0
    nums = re.findall(r"\d+", text)
    return float(nums[-1]) if nums else 0.0


def _letter_body(path: str, req: dict, h: str) -> dict:
    """A pairwise judge's answer: one letter whose first-token logprobs say P(A) = 0.8 when Response A is
    better, 0.3 when it is worse (a position bias towards A), 0.55 on a tie. So a good chosen gets
    P(chosen) = (0.8 + 0.7) / 2 = 0.75; any other request gets the fake server's usual answer."""
    body = ORIGINAL_BODY(path, req, h)
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


ORIGINAL_BODY = fake_openai_server.completion_body


@pytest.fixture
def judge_server(make_fake_server, monkeypatch):
    """Factory: the fake OpenAI server (same fault injection and counters) answering like a pairwise judge."""
    monkeypatch.setattr(fake_openai_server, "completion_body", _letter_body)
    return make_fake_server


def _prefers_good(req, text):
    a, b = fenced(text, "RESPONSE A")[0], fenced(text, "RESPONSE B")[0]
    if "answer 3" in a:  # row 3: the judge's answer is never a letter
        return "Banana bread."
    if "answer 5" in a:  # row 5: the request fails
        return None
    p = 0.9 if a.startswith("good") else 0.2  # a position bias: A is favoured either way
    return Letter(p)


def test_judge_batch_adds_verdicts_and_rejects_bad_rows():
    table = pair_rows(8, tie_every=4)
    eng = ScriptedEngine(_prefers_good, model="scripted-judge")
    out, rejects = judge_batch(eng, table, guided_fallback=False)
    assert out.num_rows == table.num_rows
    assert out.column_names == table.column_names + VERDICT_COLUMNS
    rows = out.to_pylist()
    good = rows[1]
    assert good["judge_p_ab"] == pytest.approx(0.9)  # chosen shown as A
    assert good["judge_p_ba"] == pytest.approx(1 - 0.2)  # chosen shown as B: P(B) = 1 - P(A)
    assert good["judge_prob_chosen"] == pytest.approx((0.9 + 0.8) / 2)
    assert good["judge_agrees"] is True and good["judge_model"] == "scripted-judge"
    assert re.match(r"pairwise_verdict@[0-9a-f]{8}$", good["judge_template_id"])
    assert rows[0]["judge_agrees"] is None and rows[0]["judge_prob_chosen"] is not None  # a tie: nothing to agree with
    by_id = {r.record_id: r for r in rejects}
    assert set(by_id) == {rows[3]["record_id"], rows[5]["record_id"]}
    assert by_id[rows[3]["record_id"]].reason == "judge_unparseable"
    assert by_id[rows[3]["record_id"]].step == "judge" and by_id[rows[3]["record_id"]].source_row == 3
    assert by_id[rows[5]["record_id"]].reason == "scripted_failure"
    for i in (3, 5):
        assert all(rows[i][c] is None for c in VERDICT_COLUMNS)
    assert len(eng.requests) == 2 * 8  # both presentation orders, in one batch


def test_pipeline_with_faults_counts_add_up(judge_server, tmp_path):
    srv = judge_server(fault_rate=0.2, faults=("http_500", "http_429", "drop", "garbage", "truncated"))
    table = pair_rows(60)
    spec = JudgeSpec(
        srv.url,
        "fake-judge",
        cache_path=str(tmp_path / "cache.sqlite"),
        concurrency=8,
        engine_options={**FAST, "max_retries": 0},
    )
    staging = tmp_path / "staging"
    judged, counts = run_judge(table, spec, run_id="r1", staging=staging, batch_rows=16)
    assert counts.fatal is None and counts.batches == 4
    assert counts.rows_in == 60 == counts.rows_judged + counts.rows_rejected
    assert 0 < counts.rows_rejected < 60  # with no retries a 20% fault rate fails some rows, not all
    assert judged.column("record_id").to_pylist() == table.column("record_id").to_pylist()  # input order
    assert judged.column("judge_prob_chosen").null_count == counts.rows_rejected
    q = pq.read_table(staging / "quarantine")
    assert q.num_rows == counts.rows_rejected and set(q.column("step").to_pylist()) == {"judge"}
    assert sum(counts.reasons.values()) == counts.rows_rejected
    assert set(counts.reasons) <= {"http_500", "http_429", "disconnected", "bad_json", "bad_body"}
    assert set(q.column("record_id").to_pylist()) == {
        r["record_id"] for r in judged.to_pylist() if r["judge_prob_chosen"] is None
    }
    assert counts.engine["cache_misses"] == 120 and counts.engine["prompt_tokens"] > 0
    ok = [r for r in judged.to_pylist() if r["judge_prob_chosen"] is not None]
    assert ok and all(r["judge_prob_chosen"] == pytest.approx(0.75) and r["judge_agrees"] for r in ok)
    assert {r["judge_mode"] for r in ok} == {"logprobs"}
    per_batch = [json.loads(p.read_text()) for p in sorted(counts_dir_for(staging).glob("*.json"))]
    assert [b["rows_in"] for b in per_batch] == [16, 16, 16, 12]
    assert all(b["rows_in"] == b["rows_judged"] + b["rows_rejected"] for b in per_batch)


def test_budget_cap_then_resume_from_cache(judge_server, tmp_path):
    srv = judge_server()
    table = pair_rows(20)
    cache = str(tmp_path / "cache.sqlite")
    capped = JudgeSpec(srv.url, "fake-judge", cache_path=cache, concurrency=1, max_requests=15, engine_options=FAST)
    _, first = run_judge(table, capped, run_id="r1", staging=tmp_path / "s1", batch_rows=8)
    assert first.rows_in == 20 == first.rows_judged + first.rows_rejected
    assert first.reasons["budget_exhausted"] == first.rows_rejected > 0
    assert first.engine["sent"] == 15  # the cap is exact in requests
    srv.wait_idle()
    sent_before = dict(srv.counts.received)

    full = JudgeSpec(srv.url, "fake-judge", cache_path=cache, concurrency=4, engine_options=FAST)
    judged, second = run_judge(table, full, run_id="r2", staging=tmp_path / "s2", batch_rows=8)
    assert second.rows_judged == 20 and second.rows_rejected == 0
    assert second.engine["cache_hits"] == 15 and second.engine["cache_misses"] == 25
    srv.wait_idle()
    assert all(srv.counts.received[h] == n for h, n in sent_before.items())  # nothing answered was re-sent
    assert all(n == 1 for n in srv.counts.received.values())
    assert judged.column("judge_prob_chosen").null_count == 0
    assert len(RequestCache(cache)) == 40


def test_unreachable_server_is_fatal_not_a_reject(tmp_path):
    spec = JudgeSpec("http://127.0.0.1:9", "fake-judge", engine_options={**FAST, "max_retries": 0})
    judged, counts = run_judge(pair_rows(5), spec, run_id="r1", staging=tmp_path / "s", batch_rows=2)
    assert judged is None
    assert "EngineUnreachable" in counts.fatal and counts.rows_judged == 0
    assert not (tmp_path / "s" / "quarantine").exists()
