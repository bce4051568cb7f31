"""`prefmill judge audit` and the gate against the real tiny-model `vllm serve`.

The model's weights are random, so its agreement with the PandaLM annotators means nothing; what is
checked is the pipeline: the audit runs the judge step (both orders, probabilities, the request
cache), stores a `judge_audits` row keyed by the served revision, and the gate of `judge` and
`synthesize` reads it (the policy judges itself in SCIR, so the same audit stands for it).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from flows.audit import GateRefused, audit_judge
from flows.jobs import ingest
from flows.judge import judge_dataset
from flows.synthesize import synthesize
from tests.conftest import DATA
from tests.judges.fixtures import make_pairs_dataset
from warehouse import Warehouse

pytestmark = pytest.mark.vllm

ENGINE = {"timeout_s": 300}
GOLD_RECORDS = 30  # PandaLM items; kept short enough for the tiny model's context (see ``_short``)


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("audit")
    wh = Warehouse(tmp / "wh")
    items = json.loads((DATA / "pandalm_testset/testset-v1.json").read_text())
    short = [r for r in items if all(isinstance(r.get(k), str) for k in ("response1", "response2"))]
    short = [r for r in short if len(r["instruction"] + r["input"] + r["response1"] + r["response2"]) < 900]
    gold = tmp / "panda.json"
    gold.write_text(json.dumps(short[:GOLD_RECORDS]))
    ingest(wh, [str(gold)], "pandalm", "panda")
    return wh


def test_audit_the_tiny_judge_then_the_gate_reads_it(vllm_server, wh):
    rep = audit_judge(wh, "panda", vllm_server.url, vllm_server.model, concurrency=8, engine_options=ENGINE)
    m = rep.metrics
    assert GOLD_RECORDS - 3 <= m["n_items"] <= GOLD_RECORDS and m["n_rows"] >= 2 * m["n_items"]
    assert rep.judge.revision and rep.judge.revision != vllm_server.model  # the served weights path
    assert m["judge"]["rows_attempted"] == m["n_rows"]
    assert m["coverage"] + m["judge"]["unjudged_share"] == pytest.approx(1.0)
    if m["n_judged_rows"]:
        assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["swap_consistency"] <= 1.0
        assert 0.0 <= m["position_bias_p_first"] <= 1.0 and m["calibration"]["ece"] is not None
    assert m["human_human"]["annotators"] == 3
    row = wh.query(f"SELECT judge, passed, revision FROM judge_audits WHERE audit_id = '{rep.audit_id}'").to_pylist()
    assert row == [{"judge": rep.judge.key, "passed": rep.passed, "revision": rep.judge.revision}]
    print(
        "tiny vllm judge audit:",
        json.dumps(
            {k: m[k] for k in ("accuracy", "kappa_majority", "swap_consistency", "position_bias_p_first", "coverage")}
        ),
        m["judge"]["reasons"],
        m["judge"]["modes"],
    )

    again = audit_judge(wh, "panda", vllm_server.url, vllm_server.model, concurrency=8, engine_options=ENGINE)
    assert again.metrics["accuracy"] == m["accuracy"]
    run = json.loads(wh.query(f"SELECT metrics FROM runs WHERE run_id = '{again.run_id}'")[0][0].as_py())
    assert run["judge"]["requests_sent"] == 0  # every verdict from the request cache

    make_pairs_dataset(wh, "prefs", 4)
    kw: dict[str, Any] = {"concurrency": 4, "engine_options": ENGINE}
    if not rep.passed:
        with pytest.raises(GateRefused, match=again.audit_id):
            judge_dataset(wh, "prefs", vllm_server.url, vllm_server.model, **kw)
        over = judge_dataset(wh, "prefs", vllm_server.url, vllm_server.model, no_gate=True, **kw)
        assert over.metrics["gate"]["status"] == "overridden" and again.audit_id in over.metrics["gate"]["reason"]
    defined = m["kappa_majority"] is not None and m["swap_consistency"] is not None
    if defined:  # the loosest gate lets the audited judge through, and SCIR's policy is that judge
        lax: dict[str, Any] = {"min_kappa": -1.0, "min_swap_consistency": -1.0}
        ok = judge_dataset(wh, "prefs", vllm_server.url, vllm_server.model, **lax, **kw)
        assert ok.metrics["gate"]["status"] == "passed" and ok.metrics["gate"]["audit"]["audit_id"] == again.audit_id
        syn = synthesize(
            wh,
            "scir",
            "synth",
            url=vllm_server.url,
            model=vllm_server.model,
            prompts_from="prefs",
            config={"n_samples": 2, "max_tokens": 8, "min_confidence": 0.5},
            limit=2,
            **lax,
            **kw,
        )
        assert syn.metrics["gate"]["status"] == "passed" and syn.metrics["gate"]["role"] == "policy"
