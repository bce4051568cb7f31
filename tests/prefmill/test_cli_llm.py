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
    p = run("judge", "--dataset", "prefs", "--url", srv.url, "--model", "fake-judge", *FAST, wh=wh_dir, check=True)
    assert "judged 6, rejected 0" in p.stdout and "version" in p.stdout
    assert "0 from cache, 12 new" in p.stdout
    t = Warehouse(wh_dir).read("prefs", "pairwise")
    assert t.column("judge_prob_chosen").null_count == 0
    again = run("judge", "--dataset", "prefs", "--url", srv.url, "--model", "fake-judge", wh=wh_dir, check=True)
    assert "12 from cache, 0 new" in again.stdout and "no new version" in again.stdout


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
        *FAST,
    ]
    first = run(*args, wh=tmp_path / "wh", check=True)
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
