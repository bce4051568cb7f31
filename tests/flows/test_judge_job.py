"""`judge_dataset`: a real warehouse, the real Beam step and the fake OpenAI server answering as a judge.

These judges have no audit, so every run here passes ``no_gate=True`` (the override is recorded); the
gate itself is tested in tests/flows/test_audit.py."""

import json

import pytest

from flows.judge import CACHE_FILE, JudgeError, judge_dataset
from judges.errors import EngineUnreachable
from judges.judge_step import VERDICT_COLUMNS
from tests.judges.fixtures import FAST, make_pairs_dataset
from warehouse import Warehouse, WarehouseError


@pytest.fixture
def wh(tmp_path):
    return Warehouse(tmp_path / "wh")


def _run(wh, run_id):
    row = wh.query(f"SELECT * FROM runs WHERE run_id = '{run_id}'").to_pylist()[0]
    row["metrics"] = json.loads(row["metrics"] or "{}")
    return row


def _steps(wh, run_id):
    return {s["step"]: s for s in wh.query(f"SELECT * FROM run_steps WHERE run_id = '{run_id}'").to_pylist()}


def _quarantine(wh, run_id):
    return wh.query(f"SELECT * FROM quarantine WHERE run_id = '{run_id}'").to_pylist()


def test_judge_publishes_verdicts_and_counts_add_up_with_faults(judge_server, wh):
    srv = judge_server(fault_rate=0.2, faults=("http_500", "http_429", "drop", "garbage"))
    parent = make_pairs_dataset(wh, "prefs", 40, tie_every=10)
    rep = judge_dataset(
        wh,
        "prefs",
        srv.url,
        "fake-judge",
        concurrency=8,
        batch_rows=16,
        engine_options={**FAST, "max_retries": 0},
        no_gate=True,
    )
    assert rep.commit.status == "committed" and rep.commit.parent_version == parent
    table = wh.read("prefs", "pairwise")
    assert table.num_rows == 40 and set(VERDICT_COLUMNS) <= set(table.column_names)
    run, step = _run(wh, rep.run_id), _steps(wh, rep.run_id)["judge"]
    assert run["status"] == "committed" and run["rows_read"] == 40
    assert run["rows_read"] == run["rows_kept"] + run["rows_rejected"] + run["rows_duplicate"]
    assert step["rows_in"] == 40 == step["rows_kept"] + step["rows_rejected"]
    assert 0 < step["rows_rejected"] < 40
    q = _quarantine(wh, rep.run_id)
    assert len(q) == step["rows_rejected"] and {r["step"] for r in q} == {"judge"}
    unjudged = {r["record_id"] for r in table.to_pylist() if r["judge_prob_chosen"] is None}
    assert unjudged == {r["record_id"] for r in q}  # rejected rows stay, with null verdicts
    m = run["metrics"]["judge"]
    assert m["rows_judged"] == step["rows_kept"] and m["cache_misses"] == 80 and m["cache_hits"] == 0
    assert m["prompt_tokens"] > 0 and m["completion_tokens"] > 0 and m["gpu_seconds"] > 0
    ties = [r for r in table.to_pylist() if r["label"] == "tie" and r["judge_prob_chosen"] is not None]
    assert all(r["judge_agrees"] is None for r in ties)
    assert (wh.root / CACHE_FILE).exists()
    # the override is on the record: run params and metrics, the version's extra
    assert json.loads(run["params"])["gate"]["no_gate"] is True and run["metrics"]["gate"]["status"] == "overridden"
    extra = wh.query(f"SELECT extra FROM dataset_versions WHERE version_id = '{rep.commit.version_id}'")[0][0].as_py()
    assert json.loads(extra)["gate"]["no_gate"] is True and "no audit" in json.loads(extra)["gate"]["reason"]


def test_budget_cap_stops_cleanly_and_a_rerun_resumes_from_the_cache(judge_server, wh):
    srv = judge_server(latency_s=0.02)
    make_pairs_dataset(wh, "prefs", 20)
    # $3600/GPU-hour = $1 per busy second: each request costs at least its 20 ms of latency.
    first = judge_dataset(
        wh,
        "prefs",
        srv.url,
        "fake-judge",
        concurrency=1,
        max_usd=0.1,
        gpu_usd_per_hour=3600,
        batch_rows=8,
        engine_options=FAST,
        no_gate=True,
    )
    assert first.budget_exhausted and first.commit.status == "committed"
    c1 = first.counts
    assert c1.rows_judged + c1.rows_rejected == 20 and c1.reasons["budget_exhausted"] == c1.rows_rejected > 0
    run1 = _run(wh, first.run_id)
    assert run1["metrics"]["judge"]["budget_exhausted"] is True and run1["metrics"]["judge"]["cost_usd"] > 0
    assert {r["reason"] for r in _quarantine(wh, first.run_id)} == {"budget_exhausted"}
    assert wh.read("prefs", "pairwise").column("judge_prob_chosen").null_count == c1.rows_rejected
    srv.wait_idle()
    answered = c1.engine["sent"]

    second = judge_dataset(
        wh,
        "prefs",
        srv.url,
        "fake-judge",
        concurrency=4,
        max_usd=100,
        gpu_usd_per_hour=3600,
        batch_rows=8,
        engine_options=FAST,
        no_gate=True,
    )
    assert not second.budget_exhausted and second.counts.rows_judged == 20
    assert second.parent_version == first.commit.version_id
    assert second.metrics["judge"]["cache_hits"] == answered
    assert second.metrics["judge"]["cache_misses"] == 40 - answered
    srv.wait_idle()
    assert sum(srv.counts.received.values()) == 40 and set(srv.counts.received.values()) == {1}  # no request twice
    assert wh.read("prefs", "pairwise").column("judge_prob_chosen").null_count == 0

    third = judge_dataset(wh, "prefs", srv.url, "fake-judge", batch_rows=8, engine_options=FAST, no_gate=True)
    assert third.commit.status == "no_change" and third.commit.version_id is None  # same verdicts: same content
    assert third.metrics["judge"]["cache_hits"] == 40 and third.metrics["judge"]["requests_sent"] == 0
    srv.wait_idle()
    assert sum(srv.counts.received.values()) == 40


def test_limit_judges_a_prefix_and_keeps_the_rest(judge_server, wh):
    srv = judge_server()
    make_pairs_dataset(wh, "prefs", 12)
    rep = judge_dataset(wh, "prefs", srv.url, "fake-judge", limit=5, engine_options=FAST, no_gate=True)
    assert rep.rows_not_attempted == 7 and rep.counts.rows_judged == 5
    assert _steps(wh, rep.run_id)["judge"]["rows_in"] == 5
    table = wh.read("prefs", "pairwise")
    assert table.num_rows == 12 and table.column("judge_prob_chosen").null_count == 7
    assert len(_quarantine(wh, rep.run_id)) == 0  # not attempted is not rejected


def test_unreachable_server_fails_the_run_and_publishes_nothing(wh):
    version = make_pairs_dataset(wh, "prefs", 3)
    with pytest.raises(EngineUnreachable, match="cannot reach"):
        judge_dataset(wh, "prefs", "http://127.0.0.1:9", "fake-judge", engine_options={**FAST, "max_retries": 0})
    assert wh.resolve_version("prefs") == version
    failed = wh.query("SELECT status, error FROM runs WHERE kind = 'judge'").to_pylist()
    assert failed[0]["status"] == "failed" and "EngineUnreachable" in failed[0]["error"]


def test_bad_arguments_are_clear_errors(judge_server, wh):
    srv = judge_server()
    make_pairs_dataset(wh, "prefs", 3)
    with pytest.raises(EngineUnreachable, match="not listed"):
        judge_dataset(wh, "prefs", srv.url, "no-such-model", engine_options=FAST)
    with pytest.raises(JudgeError, match="gpu-usd-per-hour"):
        judge_dataset(wh, "prefs", srv.url, "fake-judge", max_usd=1.0)
    with pytest.raises(WarehouseError):
        judge_dataset(wh, "nope", srv.url, "fake-judge")
    assert sum(srv.counts.received.values()) == 0


@pytest.mark.slow
def test_judge_flow_through_prefect(judge_server, wh, tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    from flows.judge import judge_flow

    srv = judge_server()
    make_pairs_dataset(wh, "prefs", 6)
    out = judge_flow(
        dataset="prefs",
        base_url=srv.url,
        model="fake-judge",
        warehouse=str(wh.root),
        options={"engine_options": FAST, "no_gate": True},
    )
    assert out["status"] == "committed" and out["rows_judged"] == 6 and out["cache_misses"] == 12
    assert _run(wh, out["run_id"])["status"] == "committed"
