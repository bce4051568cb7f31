"""`judge_dataset` and every `synthesize` method end to end against the real tiny-model `vllm serve`.

The model's weights are random, so these check mechanics only: the jobs run, counts add up, a
version is published or every drop is reported, and a rerun answers everything from the request
cache. Kept small (2 prompts, a few tokens) so the whole file takes seconds once the server is up.
The tiny judge has no audit here, so every run passes ``no_gate=True`` (recorded; the audit and the
gate against this server are in test_vllm_audit.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from flows.judge import judge_dataset
from flows.synthesize import synthesize
from judges.judge_step import VERDICT_COLUMNS
from tests.judges.fixtures import make_pairs_dataset
from warehouse import Warehouse

pytestmark = pytest.mark.vllm

ENGINE = {"timeout_s": 300}
# Small enough for the tiny model's 2048-token context (its BPE is close to character level).
CONFIGS = {
    "scir": {"n_samples": 2, "max_tokens": 8, "min_confidence": 0.5},  # δ = ½: any verdict counts, so pairs are kept
    "cyclealign": {
        "rounds": 1,
        "n_candidates": 2,
        "max_tokens": 8,
        "judge_max_tokens": 16,
        "dynamic_k": 0,
        "static_k": 1,
    },
    "isheep": {"batch_size": 2, "max_batches": 1, "seeds_per_prompt": 2, "max_tokens": 16, "judge_max_tokens": 8},
    "multifaceted": {"sets_per_instruction": 2, "prefset_max_tokens": 96, "sysmsg_max_tokens": 16, "max_tokens": 8},
}


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    return Warehouse(tmp_path_factory.mktemp("wh"))


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    p = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    p.write_text(
        "".join(json.dumps({"prompt": q}) + "\n" for q in ("What is the capital of France?", "Name a prime number."))
    )
    return p


def _counts_add_up(wh: Warehouse, run_id: str) -> dict:
    run = wh.query(f"SELECT * FROM runs WHERE run_id = '{run_id}'").to_pylist()[0]
    assert run["rows_read"] == run["rows_kept"] + run["rows_rejected"] + run["rows_duplicate"], run
    for s in wh.query(f"SELECT * FROM run_steps WHERE run_id = '{run_id}'").to_pylist():
        assert s["rows_in"] == s["rows_kept"] + s["rows_rejected"] + s["rows_duplicate"], s
    return run


def test_judge_end_to_end_and_rerun_from_cache(vllm_server, wh):
    make_pairs_dataset(wh, "prefs", 4)
    first = judge_dataset(
        wh, "prefs", vllm_server.url, vllm_server.model, concurrency=4, engine_options=ENGINE, no_gate=True
    )
    _counts_add_up(wh, first.run_id)
    assert first.metrics["gate"]["status"] == "overridden" and first.metrics["gate"]["no_gate"] is True
    c = first.counts
    assert c.rows_in == 4 == c.rows_judged + c.rows_rejected and c.fatal is None
    table = wh.read("prefs", "pairwise")
    assert table.num_rows == 4 and set(VERDICT_COLUMNS) <= set(table.column_names)
    for r in table.to_pylist():
        if r["judge_prob_chosen"] is not None:
            assert 0.0 <= r["judge_prob_chosen"] <= 1.0 and r["judge_model"] == vllm_server.model
    m = first.metrics["judge"]
    assert m["requests_sent"] >= 8 and m["prompt_tokens"] > 0 and m["gpu_seconds"] > 0
    second = judge_dataset(
        wh, "prefs", vllm_server.url, vllm_server.model, concurrency=4, engine_options=ENGINE, no_gate=True
    )
    m2 = second.metrics["judge"]
    assert m2["requests_sent"] == 0 and m2["cache_misses"] == 0 and m2["cache_hits"] == m["cache_misses"]
    assert second.commit.status == "no_change"  # same answers → same verdicts → same content


@pytest.mark.parametrize("method", list(CONFIGS))
def test_synthesize_end_to_end_and_rerun_from_cache(vllm_server, wh, prompts, method):
    kw = {} if method == "isheep" else {"prompts_file": str(prompts)}  # isheep: the bundled seed tasks
    args = dict(
        url=vllm_server.url,
        model=vllm_server.model,
        config=CONFIGS[method],
        limit=2,
        concurrency=4,
        engine_options=ENGINE,
        no_gate=True,
        **kw,
    )
    first = synthesize(wh, method, f"synth-{method}", **args)
    run = _counts_add_up(wh, first.run_id)
    assert first.metrics["gate"]["status"] == ("not_applicable" if method == "multifaceted" else "overridden")
    e1 = first.metrics["synthesize"]["engine"]
    assert e1["sent"] > 0 and e1["failures"] == 0, e1["errors"]  # sized to fit the model's context
    if first.commit.version_id:
        assert run["status"] == "committed" and sum(first.commit.rows_new.values()) == run["rows_kept"] > 0
    else:  # everything was dropped: reported as no_change, every drop in the quarantine
        assert run["status"] == "no_change" and run["rows_kept"] == 0 and sum(first.counts.reasons.values()) > 0
    q = wh.query(f"SELECT count(*) AS n FROM quarantine WHERE run_id = '{first.run_id}'").to_pylist()[0]["n"]
    assert q == run["rows_rejected"]

    second = synthesize(wh, method, f"synth-{method}", **args)
    e2 = second.metrics["synthesize"]["engine"]
    assert e2["sent"] == 0 and e2["cache_misses"] == 0 and e2["cache_hits"] == e1["cache_misses"]
    assert second.commit.status == "no_change" and second.commit.counts.rows_kept == 0
    assert second.commit.counts.rows_duplicate == first.commit.counts.rows_kept
    if method == "scir":
        assert first.commit.version_id  # with δ = ½ the generative RM alone keeps pairs


@pytest.mark.slow
def test_cli_llm_serve_tiny_serves_until_interrupted(tmp_path):
    """`prefmill llm serve --tiny` builds the model, serves it, and stops on Ctrl-C (a second vLLM process)."""
    port = 18000 + os.getpid() % 1000
    exe = str(Path(sys.executable).parent / "prefmill")
    proc = subprocess.Popen(
        [exe, "llm", "serve", str(tmp_path / "tiny"), "--tiny", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        # Wait for the CLI's own "serving" line, not just the port: a Ctrl-C sent between vLLM answering
        # and the CLI noticing is (rightly) "interrupted while starting", exit 130.
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and proc.poll() is None and not any("serving tiny at" in ln for ln in lines):
            time.sleep(0.5)
        if not any("serving tiny at" in ln for ln in lines):
            pytest.fail(f"prefmill llm serve did not come up: {''.join(lines)}")
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).json()
        assert [m["id"] for m in models["data"]] == ["tiny"]
        assert (tmp_path / "tiny" / "config.json").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        reader.join(timeout=10)
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert "serving tiny at http://127.0.0.1:" in out
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
