"""`synthesize`: each method end to end into a real warehouse — scripted engines for the methods'
logic (fast, rows guaranteed), the fake OpenAI server for the HTTP path: cache resume, budget, outage.

Their judges have no audit, so the runs pass ``no_gate=True`` (recorded; see ``_check_run``); the gate
itself is tested in tests/flows/test_audit.py."""

import json
import math
from collections import defaultdict

import orjson
import pytest

from flows.jobs import ValidationFailed
from flows.synthesize import BudgetExhausted, synthesize
from judges.errors import EngineUnreachable
from judges.generators.common import GeneratorError
from tests.judges import fake_openai_server
from tests.judges.fixtures import FAST, make_pairs_dataset
from tests.judges.generators.scripted import Letter, ScriptedEngine, bag_of_words_embed, fenced
from warehouse import Warehouse


@pytest.fixture
def wh(tmp_path):
    return Warehouse(tmp_path / "wh")


@pytest.fixture
def prompts_file(tmp_path):
    p = tmp_path / "prompts.jsonl"
    lines = [
        json.dumps({"prompt": "How do I brew green tea?"}),
        "{not json",
        json.dumps({"prompt": [{"role": "user", "content": "Name a prime number."}]}),
        json.dumps({"question": "no prompt field"}),
        json.dumps({"prompt": 7}),
    ]
    p.write_text("\n".join(lines) + "\n")
    return p


def _check_run(wh, rep, method):
    """The run's counts add up (run and every step), each rejection has a quarantine row, lineage is filled."""
    run = wh.query(f"SELECT * FROM runs WHERE run_id = '{rep.run_id}'").to_pylist()[0]
    assert run["rows_read"] == run["rows_kept"] + run["rows_rejected"] + run["rows_duplicate"]
    for s in wh.query(f"SELECT * FROM run_steps WHERE run_id = '{rep.run_id}'").to_pylist():
        assert s["rows_in"] == s["rows_kept"] + s["rows_rejected"] + s["rows_duplicate"], s
    q = wh.query(f"SELECT * FROM quarantine WHERE run_id = '{rep.run_id}'").to_pylist()
    assert len(q) == run["rows_rejected"]
    assert {r["step"] for r in q} <= {method, f"diagnostic:{method}", "validate", "prompts"}
    all_metrics = json.loads(run["metrics"])
    metrics = all_metrics["synthesize"]
    assert metrics["method"] == method and "usd_per_kept_pair" in metrics
    gate = all_metrics["gate"]
    if method == "multifaceted":  # no judge role: nothing to gate
        assert gate["status"] == "not_applicable" and gate["judge"] is None
    else:
        assert json.loads(run["params"])["gate"]["no_gate"] is True and gate["status"] == "overridden"
    if rep.commit.version_id:  # the version itself carries the gate decision (lineage)
        v = wh.query(f"SELECT extra FROM dataset_versions WHERE version_id = '{rep.commit.version_id}'")
        assert json.loads(v.column("extra")[0].as_py())["gate"]["status"] == gate["status"]
    return run, q, metrics


def _shape_rows(wh, dataset, shape):
    return wh.read(dataset, shape).to_pylist()


# ---------------------------------------------------------------------------------------- scripted, per method

CANDS = ["Answer alpha is excellent.", "Answer bravo is good.", "Answer charlie is fair.", "Answer delta is poor."]
LOGP = {c: -k * len(c) for c, k in zip(CANDS, (1.0, 2.0, 9.0, 4.0))}  # white-box: alpha > bravo > delta > charlie


def test_cyclealign_end_to_end(wh, prompts_file):
    def rank(req, text):
        shown = fenced(text.split("Now the request to judge.")[-1], "CANDIDATE")
        return " > ".join(f"[{i + 1}]" for i in sorted(range(len(shown)), key=lambda i: CANDS.index(shown[i])))

    policy = ScriptedEngine(lambda req, text: list(CANDS), logprob=LOGP, model="policy")
    judge = ScriptedEngine(rank, model="judge")
    rep = synthesize(
        wh,
        "cyclealign",
        "synth",
        prompts_file=str(prompts_file),
        config={"rounds": 2},
        engines={"policy": policy, "judge": judge},
        embed=bag_of_words_embed,
        no_gate=True,
    )
    assert rep.commit.status == "committed" and rep.prompts == 2 and rep.prompt_rejects == 3
    run, q, metrics = _check_run(wh, rep, "cyclealign")
    assert sorted(r["reason"] for r in q if r["step"] == "prompts") == ["bad_type", "invalid_json", "missing_field"]
    lw, pairs = _shape_rows(wh, "synth", "listwise"), _shape_rows(wh, "synth", "pairwise")
    # per prompt and round: one listwise row and 3 pairs (agreement alpha > bravo > charlie|delta); round 2 repeats
    # round 1's rows exactly (same candidates, same rankings), so the commit counts them as duplicates
    assert len(lw) == 2 and len(pairs) == 6 and run["rows_duplicate"] == 8
    assert {r["format"] for r in pairs} == {"cyclealign"} and pairs[0]["source_file"] == str(prompts_file.resolve())
    assert {r["policy"] for r in pairs} == {"cyclealign:agreement"}
    assert metrics["kept_pairs"] == 12 and metrics["models"] == {"policy": "policy", "judge": "judge"}


QUALITY = {"good answer": 3.0, "fine answer": 0.0, "bad answer": -3.0, "meh one": 0.1, "meh two": -0.1}


def test_scir_end_to_end_with_diagnostics_in_the_quarantine(wh):
    make_pairs_dataset(wh, "source", 3)

    def answer(req, text):
        if "RESPONSE A" in text:
            a, b = fenced(text, "RESPONSE A")[0], fenced(text, "RESPONSE B")[0]
            return Letter(1 / (1 + math.exp(-(QUALITY[a] - QUALITY[b]))))
        return ["good answer", "meh one", "meh two", "bad answer"]

    eng = ScriptedEngine(answer, model="policy")
    rep = synthesize(wh, "scir", "synth", prompts_from="source", limit=2, engines={"policy": eng}, no_gate=True)
    run, q, metrics = _check_run(wh, rep, "scir")
    assert rep.prompts == 2 and run["records_read"] == 2
    pairs = _shape_rows(wh, "synth", "pairwise")
    got = {(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs}
    assert len(pairs) == 2 * 5  # 6 pairs of 4 samples per prompt, less the too-close "meh one" vs "meh two"
    assert all(QUALITY[c] > QUALITY[r] for c, r in got) and not {c for c, _ in got} & {"bad answer"}
    diags = [r for r in q if r["step"] == "diagnostic:scir"]
    assert diags and {r["reason"] for r in diags} == {"scir_low_confidence"}  # meh one vs meh two
    d = orjson.loads(diags[0]["raw"])
    assert d["scir_status"] == "low_confidence" and {d["y1"], d["y2"]} == {"meh one", "meh two"}
    assert metrics["diagnostics"] == len(diags)
    assert run["rows_read"] == len(pairs) + len(q)


GOOD, BAD = "Here is a clear and correct answer", "Some rambling text that misses the point"
BATCH = (
    " Give three tips for saving money on groceries.\n6. Input:\n<noinput>\n###\n"
    "7. Instruction: Classify the tone of this email as formal or casual.\n7. Input:\nDear Sir,\n###\n"
    "8. Instruction: Name"
)


def test_isheep_end_to_end_from_a_seed_file(wh, tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    rows = [
        {"instruction": f"Seed task number {i} asks something useful", "instances": [{"input": "", "output": "x"}]}
        for i in range(6)
    ] + [{"instruction": "no instances"}]
    seeds.write_text("\n".join(json.dumps(r) for r in rows) + "\n{oops\n")

    def answer(req, text):
        if "List of tasks:" in text:
            return BATCH
        if "Rate the response's quality" in text:
            return "9||fine" if f"Response: {GOOD}" in text else "4||weak"
        if "how well the response follows" in text:
            return "10||fine"
        return [GOOD, BAD]

    rep = synthesize(
        wh,
        "isheep",
        "synth",
        seeds_file=str(seeds),
        limit=2,
        config={"max_batches": 1},
        engines={"policy": ScriptedEngine(answer, model="gen-0")},
        no_gate=True,
    )
    run, q, metrics = _check_run(wh, rep, "isheep")
    sft, pairs = _shape_rows(wh, "synth", "binary"), _shape_rows(wh, "synth", "pairwise")
    assert len(sft) == 2 and all(r["label"] and r["policy"] == "isheep:sft" for r in sft)
    assert len(pairs) == 2 and all(p["chosen"][0]["content"] == GOOD for p in pairs)
    reasons = defaultdict(int)
    for r in q:
        reasons[(r["step"], r["reason"])] += 1
    assert reasons[("isheep", "seed_missing_field")] == 1 and reasons[("isheep", "seed_invalid_json")] == 1
    assert reasons[("diagnostic:isheep", "below_threshold")] == 2  # the BAD answers, with their scores
    assert rep.prompts == 6  # usable seeds


def _pset(style, bk, inf, harm):
    picks = {"Style": style, "Background knowledge": bk, "Informativeness": inf, "Harmlessness": harm}
    return {
        "preferences": [
            {
                "dimension": d,
                "subdimension": s,
                "preference": f"{s} first",
                "description": f"The reply favours {s.lower()} ({d}).",
            }
            for d, s in picks.items()
        ]
    }


def test_multifaceted_end_to_end(wh, tmp_path):
    sets = [
        _pset("Clarity", "Novice", "Depth", "Safety"),
        _pset("Tone", "Expert", "Depth", "Safety"),
        _pset("Clarity", "Expert", "Creativity", "Morality"),
    ]
    calls = defaultdict(int)

    def answer(req, text):
        if "Answer with JSON only" in text:
            ins = fenced(text, "USER REQUEST")[0]
            calls[ins] += 1
            return json.dumps(sets[(calls[ins] - 1) % 3])
        if "<<<BEGIN PREFERENCES>>>" in text:
            return "You are a guide. " + " ".join(fenced(text, "PREFERENCES")[0].split("\n"))
        return f"Reply to [{text}] under [{req.messages[0][1]}]"

    p = tmp_path / "p.jsonl"
    p.write_text(
        json.dumps({"prompt": "Plan a picnic."})
        + "\n"
        + json.dumps({"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]})
        + "\n"
    )
    rep = synthesize(wh, "multifaceted", "synth", prompts_file=str(p), engines={"policy": ScriptedEngine(answer)})
    run, q, _ = _check_run(wh, rep, "multifaceted")
    assert len(_shape_rows(wh, "synth", "binary")) == 3 and len(_shape_rows(wh, "synth", "pairwise")) == 1
    assert [r["reason"] for r in q] == ["instruction_has_system"]  # a prompt that already has a system message


def test_everything_dropped_is_a_clear_no_change(wh, prompts_file):
    rep = synthesize(
        wh,
        "scir",
        "synth",
        prompts_file=str(prompts_file),
        engines={"policy": ScriptedEngine(lambda req, text: None)},
        no_gate=True,
    )
    assert rep.commit.status == "no_change" and rep.commit.version_id is None and rep.counts.rows_kept == 0
    run, q, _ = _check_run(wh, rep, "scir")
    assert run["rows_kept"] == 0 and {r["reason"] for r in q if r["step"] == "scir"} == {"sample_scripted_failure"}


def test_rows_failing_validation_are_quarantined_and_a_bad_batch_stops_the_commit(wh, prompts_file):
    huge = "x " * 150_000  # over the 256 KiB row limit

    def answer(req, text):
        if "RESPONSE A" in text:
            return Letter(0.9 if fenced(text, "RESPONSE A")[0].startswith("good") else 0.1)
        return ["good answer", huge.strip()]

    with pytest.raises(ValidationFailed, match="reject"):  # every pair is invalid: over the batch's reject rate
        synthesize(
            wh,
            "scir",
            "synth",
            prompts_file=str(prompts_file),
            config={"n_samples": 2},
            engines={"policy": ScriptedEngine(answer)},
            no_gate=True,
        )
    run = wh.query("SELECT status, run_id FROM runs").to_pylist()[0]
    assert run["status"] == "failed" and "synth" not in wh.datasets().column("dataset").to_pylist()
    q = wh.query(f"SELECT reason FROM quarantine WHERE run_id = '{run['run_id']}' AND step = 'validate'").to_pylist()
    assert q and {r["reason"] for r in q} == {"text_too_long"}  # the failed run still explains itself


def test_bad_arguments_are_clear_errors(wh, prompts_file):
    eng = {"policy": ScriptedEngine()}
    with pytest.raises(GeneratorError, match="unknown method"):
        synthesize(wh, "nope", "synth", prompts_file=str(prompts_file), engines=eng)
    with pytest.raises(GeneratorError, match="needs prompts"):
        synthesize(wh, "scir", "synth", engines=eng)
    with pytest.raises(GeneratorError, match="one prompt source"):
        synthesize(wh, "scir", "synth", prompts_file=str(prompts_file), prompts_from="x", engines=eng)
    with pytest.raises(GeneratorError, match="unknown scir setting"):
        synthesize(wh, "scir", "synth", prompts_file=str(prompts_file), config={"nope": 1}, engines=eng)
    with pytest.raises(GeneratorError, match="takes no --reference"):
        synthesize(
            wh,
            "cyclealign",
            "synth",
            url="http://x",
            model="m",
            reference_url="http://y",
            prompts_file=str(prompts_file),
        )
    with pytest.raises(GeneratorError, match="not found"):
        synthesize(wh, "scir", "synth", prompts_file="/nonexistent.jsonl", engines=eng)
    assert not wh.layout.exists()  # nothing was started: not even a run record


# ---------------------------------------------------------------------------------------- the HTTP path


def _scir_http(wh, srv, **kw):
    return synthesize(
        wh,
        "scir",
        "synth",
        url=srv.url,
        model="fake-judge",
        prompts_file=kw.pop("prompts_file"),
        config={"n_samples": 3, "max_tokens": 16},
        engine_options=FAST,
        concurrency=4,
        no_gate=True,
        **kw,
    )


def test_scir_over_http_rerun_hits_the_cache_and_sends_nothing(judge_server, wh, prompts_file):
    srv = judge_server()
    first = _scir_http(wh, srv, prompts_file=str(prompts_file))
    assert first.commit.status == "committed" and first.counts.shapes["pairwise"] > 0
    _check_run(wh, first, "scir")
    srv.wait_idle()
    sent = sum(srv.counts.received.values())
    second = _scir_http(wh, srv, prompts_file=str(prompts_file))
    srv.wait_idle()
    assert sum(srv.counts.received.values()) == sent  # every answer came from the request cache
    m = second.metrics["synthesize"]["engine"]
    assert m["cache_misses"] == 0 and m["cache_hits"] == first.metrics["synthesize"]["engine"]["cache_misses"]
    assert second.commit.status == "no_change" and second.commit.counts.rows_duplicate == first.counts.rows_kept


def test_budget_exhausted_publishes_nothing_and_a_rerun_resumes(judge_server, wh, prompts_file):
    srv = judge_server()
    with pytest.raises(BudgetExhausted, match="nothing was published"):
        _scir_http(wh, srv, prompts_file=str(prompts_file), max_requests=3)
    run = wh.query("SELECT status, metrics FROM runs").to_pylist()[0]
    assert run["status"] == "failed" and json.loads(run["metrics"])["synthesize"]["engine"]["sent"] == 3
    assert "synth" not in wh.datasets().column("dataset").to_pylist()
    srv.wait_idle()
    before = dict(srv.counts.received)
    rep = _scir_http(wh, srv, prompts_file=str(prompts_file))
    srv.wait_idle()
    assert rep.commit.status == "committed"
    assert rep.metrics["synthesize"]["engine"]["cache_hits"] >= 3
    assert all(srv.counts.received[h] == n for h, n in before.items())  # nothing answered was re-sent


def test_server_lost_midway_fails_the_run_then_resumes_elsewhere(make_fake_server, wh, prompts_file, monkeypatch):
    srv = make_fake_server()
    original = fake_openai_server.completion_body

    answered: set = set()

    def die_on_verdicts(path, req, h):  # the server goes away once sampling is done and judging starts
        if "RESPONSE A" in json.dumps(req):
            if not answered:
                answered.update(srv.counts.succeeded)
            srv._server.close()
            for tr in list(srv._conns):
                tr.close()
        return original(path, req, h)

    monkeypatch.setattr(fake_openai_server, "completion_body", die_on_verdicts)
    with pytest.raises(EngineUnreachable):
        _scir_http(wh, srv, prompts_file=str(prompts_file))
    run = wh.query("SELECT status, error FROM runs").to_pylist()[0]
    assert run["status"] == "failed" and "EngineUnreachable" in run["error"]
    samples = set(answered)
    assert len(samples) == 2  # one sampling request per prompt was answered before the outage

    monkeypatch.setattr(fake_openai_server, "completion_body", original)
    again = make_fake_server()  # a new server (new port) serving the same model and revision
    rep = _scir_http(wh, again, prompts_file=str(prompts_file))
    again.wait_idle()
    assert not samples & set(again.counts.received)  # sampling was not paid for twice
    assert rep.metrics["synthesize"]["engine"]["cache_hits"] == len(samples)
    assert rep.commit.counts.rows_read == rep.commit.counts.rows_kept + rep.commit.counts.rows_rejected


def test_unreachable_server_is_a_clear_error_and_a_failed_run(wh, prompts_file):
    with pytest.raises(EngineUnreachable, match="cannot reach"):
        synthesize(
            wh,
            "multifaceted",
            "synth",
            url="http://127.0.0.1:9",
            model="m",
            prompts_file=str(prompts_file),
            engine_options={**FAST, "max_retries": 0},
        )
    assert wh.query("SELECT status FROM runs").to_pylist() == [{"status": "failed"}]


@pytest.mark.slow
def test_the_four_prefect_flows(judge_server, wh, prompts_file, tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    import flows.synthesize as fs

    srv = judge_server()
    small = {
        "cyclealign": {"rounds": 1, "n_candidates": 2, "dynamic_k": 0, "max_tokens": 8},
        "scir": {"n_samples": 3, "max_tokens": 8},
        "isheep": {"max_batches": 1, "max_tokens": 8},
        "multifaceted": {"sets_per_instruction": 2, "max_tokens": 8},
    }
    for method, cfg in small.items():
        flow = getattr(fs, f"{method}_flow")
        out = flow(
            dataset=f"synth-{method}",
            url=srv.url,
            model="fake-judge",
            warehouse=str(wh.root),
            prompts_file=None if method == "isheep" else str(prompts_file),
            limit=2,
            options={"config": cfg, "engine_options": FAST, "no_gate": True},
        )
        assert out["rows_read"] == out["rows_kept"] + out["rows_rejected"] + out["rows_duplicate"], out
        assert out["status"] in ("committed", "no_change") and (out["version_id"] is None) == (out["rows_kept"] == 0)
    assert out["method"] == "multifaceted"
    scir = wh.query("SELECT status FROM runs WHERE dataset = 'synth-scir'").to_pylist()
    assert scir == [{"status": "committed"}]  # the fake judge is decisive on distinct samples
