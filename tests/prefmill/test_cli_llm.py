"""`prefmill judge` / `prefmill synthesize` / `prefmill llm`, run as a user would (subprocess), against the
fake OpenAI server answering as a judge."""

import json

import pytest

from prefmill.cli_llm import parse_settings
from tests.judges.fixtures import make_pairs_dataset
from tests.prefmill.cli_run import one_line_error, run
from warehouse import Warehouse

FAST = ["--concurrency", "4"]


@pytest.fixture
def wh_dir(tmp_path):
    make_pairs_dataset(Warehouse(tmp_path / "wh"), "prefs", 6)
    return tmp_path / "wh"


@pytest.fixture
def prompts(tmp_path):
    p = tmp_path / "prompts.jsonl"
    p.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in ("How do I brew tea?", "Name a prime.")))
    return p


def test_judge_prints_counts_and_publishes(judge_server, wh_dir):
    srv = judge_server()
    args = ("judge", "--dataset", "prefs", "--url", srv.url, "--model", "fake-judge", "--no-gate")
    p = run(*args, *FAST, wh=wh_dir, check=True)
    assert "judged 6, rejected 0" in p.stdout and "version" in p.stdout
    assert "0 from cache, 12 new" in p.stdout
    assert "gate overridden (--no-gate): no audit of judge fake-judge" in " ".join(p.stdout.split())
    t = Warehouse(wh_dir).read("prefs", "pairwise")
    assert t.column("judge_prob_chosen").null_count == 0
    again = run(*args, wh=wh_dir, check=True)
    assert "12 from cache, 0 new" in again.stdout and "no new version" in again.stdout


def test_judge_without_an_audit_is_refused_in_one_line(judge_server, wh_dir):
    srv = judge_server()
    line = one_line_error(run("judge", "--dataset", "prefs", "--url", srv.url, "--model", "fake-judge", wh=wh_dir))
    assert "gate: no audit of judge fake-judge" in line and "--no-gate" in line
    assert len(Warehouse(wh_dir).versions("prefs")) == 1  # nothing published


def test_judge_audit_then_the_gate_lets_the_judge_publish(judge_server, tmp_path):
    srv = judge_server()
    wh = Warehouse(tmp_path / "wh")
    make_pairs_dataset(wh, "gold", 20, tie_every=10)
    make_pairs_dataset(wh, "prefs", 6)
    common = ("--url", srv.url, "--model", "fake-judge", *FAST)
    p = run("judge", "audit", "--dataset", "gold", *common, "--json", wh=wh.root, check=True)
    out = json.loads(p.stdout)
    assert out["passed"] is True and out["gold_dataset"] == "gold" and out["metrics"]["accuracy"] == 1.0
    assert out["judge"].startswith("fake-judge@/models/fake-judge@rev1 [pairwise_verdict@")
    text = " ".join(run("judge", "audit", "--dataset", "gold", *common, wh=wh.root, check=True).stdout.split())
    assert "passed" in text and "κ vs majority" in text and "swap consistency 1.000" in text
    p = run("judge", "--dataset", "prefs", *common, wh=wh.root, check=True)
    assert "gate: passed (audit audit-" in p.stdout and "judged 6" in p.stdout
    # stricter than the audit: refused
    line = one_line_error(run("judge", "--dataset", "prefs", *common, "--min-kappa", "0.99", wh=wh.root))
    assert "fails: κ vs majority" in line and "< 0.99" in line


def test_gate_thresholds_outside_the_range_are_one_line(wh_dir, prompts):
    line = one_line_error(
        run("judge", "--dataset", "prefs", "--url", "http://x", "--model", "m", "--min-kappa", "2", wh=wh_dir)
    )
    assert "--min-kappa must be in [-1, 1], got 2" in line
    line = one_line_error(
        run(
            "synthesize",
            "--method",
            "scir",
            "--url",
            "http://x",
            "--model",
            "m",
            "--dataset",
            "s",
            "--prompts",
            prompts,
            "--min-swap-consistency",
            "-1.5",
            wh=wh_dir,
        )
    )
    assert "--min-swap-consistency must be in [-1, 1]" in line
    line = one_line_error(run("judge", "audit", "--dataset", "nope", "--url", "http://x", "--model", "m", wh=wh_dir))
    assert "nope" in line


def test_judge_without_a_dataset_is_one_line(wh_dir):
    assert "needs --dataset" in one_line_error(run("judge", "--url", "http://x", "--model", "m", wh=wh_dir))


def test_judge_unreachable_server_is_one_line(wh_dir):
    line = one_line_error(run("judge", "--dataset", "prefs", "--url", "http://127.0.0.1:9", "--model", "m", wh=wh_dir))
    assert "cannot reach the LLM server at http://127.0.0.1:9" in line


def test_judge_bad_input_is_one_line(judge_server, wh_dir):
    srv = judge_server()
    line = one_line_error(
        run("judge", "--dataset", "prefs", "--url", srv.url, "--model", "fake-judge", "--max-usd", "1", wh=wh_dir)
    )
    assert "--gpu-usd-per-hour" in line
    line = one_line_error(run("judge", "--dataset", "prefs", "--url", srv.url, "--model", "other", wh=wh_dir))
    assert "'other' is not listed" in line


def test_synthesize_scir_end_to_end_and_rerun_from_cache(judge_server, tmp_path, prompts):
    srv = judge_server()
    args = [
        "synthesize",
        "--method",
        "scir",
        "--url",
        srv.url,
        "--model",
        "fake-judge",
        "--dataset",
        "synth",
        "--prompts",
        prompts,
        "--set",
        "n_samples=3",
        "--set",
        "max_tokens=16",
        "--no-gate",
        *FAST,
    ]
    first = run(*args, wh=tmp_path / "wh", check=True)
    assert "gate overridden (--no-gate)" in first.stdout
    assert "version" in first.stdout and "pairwise" in first.stdout and " 0 from cache" in first.stdout
    second = run(*args, wh=tmp_path / "wh", check=True)
    assert "0 new" in second.stdout and "already in synth" in second.stdout


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--method", "nope", "--prompts", "PROMPTS"], "unknown method 'nope'"),
        (["--method", "scir"], "needs prompts"),
        (["--method", "scir", "--prompts", "PROMPTS", "--set", "bogus=1"], "unknown scir setting"),
        (["--method", "scir", "--prompts", "PROMPTS", "--set", "novalue"], "KEY=VALUE"),
        (["--method", "multifaceted", "--prompts", "PROMPTS", "--judge-url", "http://x"], "takes no --judge-url"),
        (["--method", "scir", "--prompts", "PROMPTS", "--url", "http://127.0.0.1:9"], "cannot reach"),
    ],
)
def test_synthesize_errors_are_one_line(tmp_path, prompts, extra, expected):
    args = ["synthesize", "--url", "http://127.0.0.1:9", "--model", "m", "--dataset", "synth"]
    line = one_line_error(run(*args, *[str(prompts) if a == "PROMPTS" else a for a in extra], wh=tmp_path / "wh"))
    assert expected in line


def test_synthesize_budget_exhausted_is_one_line_and_publishes_nothing(judge_server, tmp_path, prompts):
    srv = judge_server(latency_s=0.02)
    line = one_line_error(
        run(
            "synthesize",
            "--method",
            "scir",
            "--url",
            srv.url,
            "--model",
            "fake-judge",
            "--dataset",
            "synth",
            "--prompts",
            prompts,
            "--max-usd",
            "0.01",
            "--gpu-usd-per-hour",
            "3600",
            "--concurrency",
            "1",
            "--no-gate",
            wh=tmp_path / "wh",
        )
    )
    assert "budget exhausted" in line and "rerun with a larger --max-usd" in line
    assert Warehouse(tmp_path / "wh").query("SELECT status FROM runs").to_pylist() == [{"status": "failed"}]


def test_llm_serve_is_registered():
    p = run("llm", "serve", "--help", wh="unused")
    assert p.returncode == 0 and "--tiny" in p.stdout and "--port" in p.stdout


def test_parse_settings_reads_json_values():
    assert parse_settings(["a=1", "b=0.5", "c=true", "d=hello", 'e=["x"]']) == {
        "a": 1,
        "b": 0.5,
        "c": True,
        "d": "hello",
        "e": ["x"],
    }


def test_reward_audit_prints_the_audit_as_json(tmp_path):
    import gzip

    from tests.prefmill.cli_run import DATA

    hh, panda = tmp_path / "hh.jsonl", tmp_path / "panda.json"
    hh.write_bytes(b"\n".join(gzip.open(DATA / "hh_rlhf_harmless_base/test.jsonl.gz", "rb").read().split(b"\n")[:60]))
    panda.write_text(json.dumps(json.loads((DATA / "pandalm_testset/testset-v1.json").read_text())[:20]))
    wh = tmp_path / "wh"
    run("ingest", hh, "--format", "hh-rlhf", "--dataset", "hh", wh=wh, check=True)
    run("ingest", panda, "--format", "pandalm", "--dataset", "panda", wh=wh, check=True)
    model_id = json.loads(run("reward", "train", "--dataset", "hh", wh=wh, check=True).stdout)["model_id"]
    out = json.loads(
        run("reward", "audit", "--dataset", "panda", "--model", model_id[:12], "--json", wh=wh, check=True).stdout
    )
    assert out["kind"] == "reward_model" and out["judge"] == f"bt_reward:{model_id}"
    assert out["metrics"]["swap_consistency"] == 1.0 and out["metrics"]["human_human"]["annotators"] == 3
    line = one_line_error(run("reward", "audit", "--dataset", "hh", "--model", "nosuchmodel", wh=wh))
    assert "no model 'nosuchmodel'" in line
