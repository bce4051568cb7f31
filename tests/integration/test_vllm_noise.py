"""`flag_noise` with one real tiny-model `vllm serve` judge as the voter (random weights: the votes mean
nothing, the pipeline is real): every pair is scored in both orders, the noise columns are published,
counts add up, and a rerun answers everything from the request cache."""

from __future__ import annotations

import pytest

from flows.noise import flag_noise
from judges.judge_step import VERDICT_COLUMNS
from tests.judges.fixtures import make_pairs_dataset
from warehouse import Warehouse

pytestmark = pytest.mark.vllm

ENGINE = {"timeout_s": 300}


def test_a_real_judge_votes_and_a_rerun_comes_from_the_cache(vllm_server, tmp_path):
    wh = Warehouse(tmp_path / "wh")
    make_pairs_dataset(wh, "prefs", 4, tie_every=4)
    first = flag_noise(wh, "prefs", [(vllm_server.url, vllm_server.model)], concurrency=4, engine_options=ENGINE)
    out = wh.read("prefs", "pairwise")
    assert out.num_rows == 4 and not set(VERDICT_COLUMNS) & set(out.column_names)
    voters = out.column("noise_voters").to_pylist()
    votes = out.column("noise_votes").to_pylist()
    assert set(voters) <= {0, 1} and votes[0] is None  # row 0 is a tie: nothing to vote against
    assert out.column("noise_flag").to_pylist()[0] is False
    assert all((v == 1) == f for v, f in zip(votes[1:], out.column("noise_flag").to_pylist()[1:]))  # k = 1: m = 1
    r = first.report
    assert r["k"] == 1 and r["m"] == 1 and r["voters"][0]["voter"] == f"judge:{vllm_server.model}"
    assert r["voters"][0]["scored"] + r["voters"][0]["abstained"] == 3
    run = wh.query(f"SELECT * FROM runs WHERE run_id = '{first.run_id}'").to_pylist()[0]
    assert run["rows_read"] == 4 == run["rows_kept"] + run["rows_rejected"] + run["rows_duplicate"]
    for s in wh.query(f"SELECT * FROM run_steps WHERE run_id = '{first.run_id}'").to_pylist():
        assert s["rows_in"] == 4 == s["rows_kept"] + s["rows_rejected"] + s["rows_duplicate"], s
    judged = first.metrics["judges"][0]
    assert judged["requests_sent"] >= 8 and judged["revision"]  # both orders of every pair, a probed revision

    second = flag_noise(wh, "prefs", [(vllm_server.url, vllm_server.model)], concurrency=4, engine_options=ENGINE)
    again = second.metrics["judges"][0]
    assert again["requests_sent"] == 0 and again["cache_hits"] == judged["cache_misses"]
    assert second.commit.status == "no_change"
