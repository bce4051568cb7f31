"""Judge audits and the gate, on a real warehouse with the fake OpenAI server answering as a judge (or as
garbage), plus the reward-model audit on real data with the real embedding model (CPU)."""

from __future__ import annotations

import gzip
import json
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.audit import AuditError, GateRefused, audit_judge, audit_reward, summary
from flows.judge import judge_dataset
from flows.synthesize import synthesize
from judges.templates import PAIRWISE
from schemas import records
from tests.conftest import DATA
from tests.judges import fake_openai_server
from tests.judges.fixtures import FAST, make_pairs_dataset
from tests.judges.generators.scripted import Letter, ScriptedEngine, fenced
from warehouse import RunCounts, Warehouse
from warehouse.export import export


@pytest.fixture
def wh(tmp_path):
    return Warehouse(tmp_path / "wh")


@pytest.fixture
def garbage_server(make_fake_server, monkeypatch):
    """The fake server answering every chat request with text that holds no verdict and no logprobs."""
    original = fake_openai_server.completion_body

    def garbage(path, req, h):
        body = original(path, req, h)
        for ch in body["choices"]:
            ch.pop("logprobs", None)
            if "message" in ch:
                ch["message"]["content"] = "lorem ipsum dolor sit amet"
        return body

    monkeypatch.setattr(fake_openai_server, "completion_body", garbage)
    return make_fake_server()


def _publish(wh: Warehouse, dataset: str, rows: list[dict]) -> str | None:
    run_id = wh.begin_run("ingest", dataset, {"test": True})
    path = wh.staging_dir(run_id) / "pairwise" / "part.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(records.to_table(rows, "pairwise"), path)
    return wh.commit(run_id, dataset, RunCounts(len(rows), len(rows), len(rows), 0)).version_id


def _pairs(n: int, *, reversed_labels: bool = False, origin: str = "human", label: str = "chosen_better") -> list:
    """Rows like tests.judges.fixtures.pair_rows; ``reversed_labels``: the humans prefer the bad answer."""
    rows = []
    for i in range(n):
        good, bad = f"good answer {i}", f"bad answer {i}"
        c, r = (bad, good) if reversed_labels else (good, bad)
        row = records.pairwise(
            [{"role": "user", "content": f"Question number {i}?"}],
            [{"role": "assistant", "content": c}],
            [{"role": "assistant", "content": r}],
            label=label,
            origin=origin,
        )
        rows.append({**row, "format": "test", "source_file": "gold.jsonl", "source_row": i, "run_id": "seed"})
    return rows


def _run(wh, run_id):
    row = wh.query(f"SELECT * FROM runs WHERE run_id = '{run_id}'").to_pylist()[0]
    row["params"], row["metrics"] = json.loads(row["params"]), json.loads(row["metrics"] or "{}")
    return row


def _chat_requests(srv) -> int:
    return sum(srv.counts.received.values())


def test_audit_stores_a_row_and_a_passing_audit_lets_the_judge_publish(judge_server, wh, tmp_path):
    srv = judge_server()
    make_pairs_dataset(wh, "gold", 30, tie_every=10)
    rep = audit_judge(wh, "gold", srv.url, "fake-judge", concurrency=8, engine_options=FAST)
    m = rep.metrics
    assert rep.passed and rep.shortfalls == [] and rep.judge.template_id == PAIRWISE.id
    assert rep.judge.revision == "/models/fake-judge@rev1"
    assert m["accuracy"] == 1.0 and m["swap_consistency"] == 1.0 and m["coverage"] == 1.0
    assert m["position_bias_p_first"] == pytest.approx(0.55)  # the fake judge's bias towards A
    assert 0.4 <= m["kappa_majority"] < 1.0  # the humans' ties are never the judge's verdict
    assert m["judge"]["unparseable_share"] == 0.0 and m["judge"]["modes"] == {"logprobs": 30}
    rows = wh.query("SELECT * FROM judge_audits").to_pylist()
    assert len(rows) == 1 and rows[0]["audit_id"] == rep.audit_id and rows[0]["passed"] is True
    assert rows[0]["judge"] == rep.judge.key and rows[0]["gold_dataset"] == "gold"
    assert json.loads(rows[0]["metrics"])["kappa_majority"] == m["kappa_majority"]
    assert json.loads(rows[0]["thresholds"]) == {"min_kappa": 0.4, "min_swap_consistency": 0.8}
    run = _run(wh, rep.run_id)
    assert run["kind"] == "judge_audit" and run["status"] == "done" and run["rows_read"] == 30
    assert run["metrics"]["audit"]["audit_id"] == rep.audit_id and run["metrics"]["judge"]["cache_misses"] == 60
    assert summary(rep)["metrics"] == m

    make_pairs_dataset(wh, "prefs", 8)
    out = judge_dataset(wh, "prefs", srv.url, "fake-judge", engine_options=FAST)
    assert out.commit.status == "committed" and out.metrics["gate"]["status"] == "passed"
    assert out.metrics["gate"]["audit"]["audit_id"] == rep.audit_id
    extra = json.loads(
        wh.query(f"SELECT extra FROM dataset_versions WHERE version_id = '{out.commit.version_id}'")[0][0].as_py()
    )
    assert extra["gate"]["audit"]["audit_id"] == rep.audit_id and extra["gate"]["no_gate"] is False
    card = (export(wh, "prefs", "trl-dpo", tmp_path / "out").paths[-1]).read_text()
    assert "## AI labels" in card and rep.audit_id in card and "| passed |" in card and "overridden" not in card


def test_the_gate_refuses_an_unaudited_judge_and_publishes_nothing(judge_server, wh):
    srv = judge_server()
    version = make_pairs_dataset(wh, "prefs", 5)
    with pytest.raises(GateRefused, match="no audit of judge fake-judge") as e:
        judge_dataset(wh, "prefs", srv.url, "fake-judge", engine_options=FAST)
    assert "\n" not in str(e.value) and "--no-gate" in str(e.value)
    assert wh.resolve_version("prefs") == version and _chat_requests(srv) == 0  # not one verdict asked for
    run = wh.query("SELECT status, error, params FROM runs WHERE kind = 'judge'").to_pylist()[0]
    assert run["status"] == "failed" and run["error"].startswith("GateRefused: gate: no audit")
    assert json.loads(run["params"])["gate"]["no_gate"] is False


def test_the_gate_refuses_a_failing_audit_and_no_gate_overrides_it_on_the_record(judge_server, wh, tmp_path):
    srv = judge_server()
    _publish(wh, "gold", _pairs(20, reversed_labels=True))  # the humans prefer what the judge calls bad
    rep = audit_judge(wh, "gold", srv.url, "fake-judge", engine_options=FAST)
    assert not rep.passed and rep.metrics["accuracy"] == 0.0 and rep.metrics["kappa_majority"] == pytest.approx(-1.0)
    assert rep.shortfalls == ["κ vs majority -1.000 < 0.4"]
    version = make_pairs_dataset(wh, "prefs", 5)
    with pytest.raises(GateRefused, match=f"latest audit of judge fake-judge.*{rep.audit_id}.*fails: κ vs majority"):
        judge_dataset(wh, "prefs", srv.url, "fake-judge", engine_options=FAST)
    assert wh.resolve_version("prefs") == version

    out = judge_dataset(wh, "prefs", srv.url, "fake-judge", engine_options=FAST, no_gate=True)
    assert out.commit.status == "committed" and out.metrics["gate"]["status"] == "overridden"
    run = _run(wh, out.run_id)
    assert run["params"]["gate"]["no_gate"] is True and run["metrics"]["gate"]["status"] == "overridden"
    assert rep.audit_id in run["metrics"]["gate"]["reason"]
    extra = json.loads(
        wh.query(f"SELECT extra FROM dataset_versions WHERE version_id = '{out.commit.version_id}'")[0][0].as_py()
    )
    assert extra["gate"]["status"] == "overridden" and extra["gate"]["no_gate"] is True
    card = (export(wh, "prefs", "trl-dpo", tmp_path / "out").paths[-1]).read_text()
    assert "| overridden |" in card and "--no-gate" in card and rep.audit_id in card

    # thresholds are parameters: the same audit passes a gate that asks for less
    again = judge_dataset(wh, "prefs", srv.url, "fake-judge", engine_options=FAST, min_kappa=-1.0)
    assert again.metrics["gate"]["status"] == "passed" and again.metrics["gate"]["thresholds"]["min_kappa"] == -1.0

    # the latest audit decides: a passing one on another gold set supersedes the failing one
    make_pairs_dataset(wh, "gold2", 20)
    assert audit_judge(wh, "gold2", srv.url, "fake-judge", engine_options=FAST).passed
    assert judge_dataset(wh, "prefs", srv.url, "fake-judge", engine_options=FAST).metrics["gate"]["status"] == "passed"


@pytest.mark.parametrize("bad", [{"min_kappa": 1.5}, {"min_swap_consistency": -2}, {"min_kappa": float("nan")}])
def test_a_threshold_outside_minus_one_one_is_one_line_and_starts_nothing(wh, bad):
    make_pairs_dataset(wh, "prefs", 3)
    runs_before = wh.runs().num_rows
    with pytest.raises(AuditError, match=r"must be in \[-1, 1\]") as e:
        judge_dataset(wh, "prefs", "http://127.0.0.1:9", "m", **bad)
    assert "\n" not in str(e.value)
    with pytest.raises(AuditError, match=r"must be in \[-1, 1\]"):
        audit_judge(wh, "prefs", "http://127.0.0.1:9", "m", **bad)
    with pytest.raises(AuditError, match=r"must be in \[-1, 1\]"):
        synthesize(wh, "scir", "synth", prompts_from="prefs", engines={"policy": ScriptedEngine()}, **bad)
    assert wh.runs().num_rows == runs_before


def test_a_judge_answering_garbage_gets_an_audit_with_the_unparseable_share(garbage_server, wh):
    make_pairs_dataset(wh, "gold", 12)
    rep = audit_judge(wh, "gold", garbage_server.url, "fake-judge", engine_options=FAST)
    m = rep.metrics
    assert m["judge"]["unparseable_share"] == 1.0 and m["judge"]["reasons"] == {"judge_unparseable": 12}
    assert m["coverage"] == 0.0 and m["accuracy"] is None and m["kappa_majority"] is None
    assert not rep.passed and "undefined" in rep.shortfalls[0]
    assert wh.query("SELECT passed FROM judge_audits").to_pylist() == [{"passed": False}]
    assert _run(wh, rep.run_id)["status"] == "done"
    make_pairs_dataset(wh, "prefs", 3)
    with pytest.raises(GateRefused, match="undefined"):
        judge_dataset(wh, "prefs", garbage_server.url, "fake-judge", engine_options=FAST)


def test_gold_sets_without_human_labels_or_with_one_class_are_one_line_errors(judge_server, wh):
    srv = judge_server()
    _publish(wh, "ai", _pairs(5, origin="ai_judge"))
    with pytest.raises(Exception, match="no human labels") as e:
        audit_judge(wh, "ai", srv.url, "fake-judge", engine_options=FAST)
    assert "\n" not in str(e.value)
    _publish(wh, "ties", _pairs(5, label="tie"))
    with pytest.raises(Exception, match="one class only"):
        audit_judge(wh, "ties", srv.url, "fake-judge", engine_options=FAST)
    assert _chat_requests(srv) == 0 and wh.query("SELECT count(*) AS n FROM judge_audits").to_pylist() == [{"n": 0}]
    failed = wh.query("SELECT status FROM runs WHERE kind = 'judge_audit'").column(0).to_pylist()
    assert failed == ["failed", "failed"]


def _scir_answer(req, text):
    if "RESPONSE A" in text:
        a = fenced(text, "RESPONSE A")[0]
        return Letter(0.9 if a.startswith("good") else 0.1)
    return ["good answer", "bad answer"]


def _passing_metrics() -> dict:
    return {"kappa_majority": 0.7, "swap_consistency": 0.9, "accuracy": 0.85, "coverage": 1.0, "n_items": 50}


def test_synthesize_gates_the_methods_judge(wh, tmp_path):
    make_pairs_dataset(wh, "source", 2)
    policy = ScriptedEngine(_scir_answer, model="policy-m", revision="r1")
    kw: dict[str, Any] = {"prompts_from": "source", "config": {"n_samples": 2}}
    with pytest.raises(GateRefused, match=r"no audit of judge policy-m@r1"):
        synthesize(wh, "scir", "synth", engines={"policy": policy}, **kw)
    assert "synth" not in wh.datasets().column("dataset").to_pylist()
    run = wh.query("SELECT status, error FROM runs WHERE kind = 'synthesize'").to_pylist()[0]
    assert run["status"] == "failed" and "GateRefused" in run["error"]

    # a passing audit of the policy (it judges itself here), on the pairwise template
    audit_id = wh.put_audit(
        kind="llm_judge",
        model="policy-m",
        revision="r1",
        template_id=PAIRWISE.id,
        gold_dataset="source",
        gold_version=wh.resolve_version("source"),
        metrics=_passing_metrics(),
        passed=True,
        thresholds={"min_kappa": 0.4, "min_swap_consistency": 0.8},
    )
    rep = synthesize(wh, "scir", "synth", engines={"policy": policy}, **kw)
    gate = rep.metrics["gate"]
    assert rep.commit.status == "committed" and gate["status"] == "passed" and gate["role"] == "policy"
    assert gate["audit"]["audit_id"] == audit_id
    # a separate judge endpoint is the gated one, and it has no audit
    judge = ScriptedEngine(_scir_answer, model="judge-m")
    with pytest.raises(GateRefused, match="no audit of judge judge-m"):
        synthesize(wh, "scir", "synth2", engines={"policy": policy, "judge": judge}, **kw)
    over = synthesize(wh, "scir", "synth2", engines={"policy": policy, "judge": judge}, no_gate=True, **kw)
    assert over.metrics["gate"]["status"] == "overridden" and over.metrics["gate"]["role"] == "judge"
    assert _run(wh, over.run_id)["params"]["gate"]["no_gate"] is True
    labels = json.loads(
        wh.query(f"SELECT ai_labels FROM dataset_versions WHERE version_id = '{over.commit.version_id}'")[0][0].as_py()
    )
    assert [g["status"] for g in labels] == ["overridden"]
    card = (export(wh, "synth2", "trl-dpo", tmp_path / "out").paths[-1]).read_text()
    assert "judge-m" in card and "| overridden |" in card


def test_a_curated_child_of_a_judged_version_still_names_its_audit(judge_server, wh):
    srv = judge_server()
    make_pairs_dataset(wh, "gold", 20)
    rep = audit_judge(wh, "gold", srv.url, "fake-judge", engine_options=FAST)
    make_pairs_dataset(wh, "prefs", 6)
    judged = judge_dataset(wh, "prefs", srv.url, "fake-judge", engine_options=FAST)
    # a child version (e.g. a curation) made by a run without a gate of its own
    table = wh.read("prefs", "pairwise")
    table = table.append_column("note", pa.array(["curated"] * table.num_rows))
    run_id = wh.begin_run("curate", "prefs", {})
    n = table.num_rows
    child = wh.commit_derived(
        run_id, "prefs", judged.commit.version_id, {"pairwise": table}, None, RunCounts(n, n, n, 0)
    )
    assert child.version_id is not None
    labels = wh.query(f"SELECT ai_labels FROM dataset_versions WHERE version_id = '{child.version_id}'")[0][0].as_py()
    assert [g["audit"]["audit_id"] for g in json.loads(labels)] == [rep.audit_id]


def test_an_old_warehouse_gets_the_audits_table_on_its_next_write(wh):
    make_pairs_dataset(wh, "prefs", 2)
    con = duckdb.connect(str(wh.layout.catalog))
    con.execute("DROP VIEW main.judge_audits")
    con.execute("DROP TABLE meta.judge_audits")
    con.close()
    assert wh.latest_audit("m", "r") is None  # read-only: no table, no audit
    wh.begin_run("ingest", "prefs", {})  # any write runs the catalog's ensure step
    assert wh.query("SELECT count(*) AS n FROM judge_audits").to_pylist() == [{"n": 0}]
    assert wh.latest_audit("m", "r") is None


@pytest.fixture(scope="module")
def rm_wh(tmp_path_factory):
    """A warehouse with a small hh-rlhf set, a BT reward model trained on it, and a PandaLM gold subset."""
    from flows.jobs import ingest
    from flows.reward import train_reward

    tmp = tmp_path_factory.mktemp("rm")
    wh = Warehouse(tmp / "wh")
    hh = tmp / "hh.jsonl"
    hh.write_bytes(b"\n".join(gzip.open(DATA / "hh_rlhf_harmless_base/test.jsonl.gz", "rb").read().split(b"\n")[:120]))
    ingest(wh, [str(hh)], "hh-rlhf", "hh")
    panda = tmp / "panda.json"
    panda.write_text(json.dumps(json.loads((DATA / "pandalm_testset/testset-v1.json").read_text())[:40]))
    ingest(wh, [str(panda)], "pandalm", "panda")
    model_id = train_reward(wh, "hh", seed=0)["model_id"]
    return wh, model_id


def test_audit_reward_on_cpu_with_the_real_embedding_model(rm_wh):
    wh, model_id = rm_wh
    rep = audit_reward(wh, "panda", model_id[:12])
    m = rep.metrics
    assert rep.kind == "reward_model" and rep.judge.model == f"bt_reward:{model_id}"
    assert 30 <= m["n_items"] <= 40 and m["n_rows"] >= 2 * m["n_items"]
    assert m["coverage"] == 1.0 and m["swap_consistency"] == 1.0 and m["position_bias_p_first"] == pytest.approx(0.5)
    assert 0.0 <= m["accuracy"] <= 1.0 and -1.0 <= m["kappa_majority"] <= 1.0
    hh = m["human_human"]
    assert hh["annotators"] == 3 and -1.0 <= hh["mean_kappa"] <= 1.0
    assert set(m["kappa_per_annotator"]) == {"pandalm:annotator1", "pandalm:annotator2", "pandalm:annotator3"}
    assert m["reward_model"]["trained_on_gold"] is False and m["reward_model"]["trained_on"]["dataset"] == "hh"
    assert 0.0 <= m["calibration"]["ece"] <= 0.5 and m["calibration"]["curve"]
    row = wh.query(f"SELECT judge, kind, passed FROM judge_audits WHERE audit_id = '{rep.audit_id}'").to_pylist()[0]
    assert row == {"judge": f"bt_reward:{model_id}", "kind": "reward_model", "passed": rep.passed}
    # scored again: every embedding now comes from the store
    again = audit_reward(wh, "panda", model_id)
    assert again.metrics["reward_model"]["embed_computed"] == 0 and again.metrics["accuracy"] == m["accuracy"]


def test_audit_reward_refuses_a_gold_set_without_human_labels(rm_wh, tmp_path):
    wh, model_id = rm_wh
    _publish(wh, "synthetic-only", _pairs(4, origin="synthetic"))
    with pytest.raises(Exception, match="no human labels"):
        audit_reward(wh, "synthetic-only", model_id)
