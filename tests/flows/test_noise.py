"""`flag_noise` end to end on real hh-rlhf pairs: a BT reward model trained on them and a scripted judge vote on a
copy whose labels were flipped for a known subset; the flips are found, counts add up, shares are reported."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from curation.noise import REASON, NoiseError
from curation.noise_step import DROP_STEP, DropNoisyStep
from flows.jobs import ingest
from flows.noise import flag_noise, summary
from flows.reward import train_reward
from judges.errors import EngineUnreachable
from judges.judge_step import VERDICT_COLUMNS
from pipelines.executor import Executor
from schemas.errors import PrefmillError
from schemas.records import conversation_text
from tests.conftest import DATA
from tests.judges import fixtures
from tests.judges.fixtures import FAST, make_pairs_dataset
from warehouse import Warehouse, WarehouseError

N_TRAIN = 300  # hh-rlhf pairs the reward model learns from (the noise dataset's pairs are among them)
CLEAN, MIXED = range(0, 60), range(60, 120)  # source lines of the two files of the noise dataset
PLANTED = set(range(60, 120, 3))  # lines whose chosen and rejected are swapped (20 of the 60)
CONFIDENCE = 0.55  # the small reward model is calibrated to be unsure (held-out accuracy ~0.5): ask less of it


@pytest.fixture(scope="module")
def hh(tmp_path_factory):
    """A warehouse with dataset ``hh`` (real pairs, real labels), a reward model trained on it, and dataset
    ``mixed``: two files of the same pairs, the second with the labels of ``PLANTED`` flipped."""
    tmp = tmp_path_factory.mktemp("noise")
    lines = gzip.open(DATA / "hh_rlhf_harmless_base/test.jsonl.gz", "rt").read().splitlines()[:N_TRAIN]
    (tmp / "train.jsonl").write_text("\n".join(lines) + "\n")
    swapped = []
    for i in MIXED:
        r = json.loads(lines[i])
        swapped.append(json.dumps({"chosen": r["rejected"], "rejected": r["chosen"]}) if i in PLANTED else lines[i])
    (tmp / "clean.jsonl").write_text("\n".join(lines[i] for i in CLEAN) + "\n")
    (tmp / "mixed.jsonl").write_text("\n".join(swapped) + "\n")
    wh = Warehouse(tmp / "wh")
    ingest(wh, [str(tmp / "train.jsonl")], "hh-rlhf", "hh")
    model_id = train_reward(wh, "hh", seed=0)["model_id"]
    ingest(wh, [str(tmp / "clean.jsonl"), str(tmp / "mixed.jsonl")], "hh-rlhf", "mixed")
    orig = wh.read("hh", "pairwise")
    return wh, model_id, orig


@pytest.fixture
def original_judge(judge_server, monkeypatch, hh):
    """The fake judge, rating each response by whether it was the chosen one in the original data."""
    _, _, orig = hh
    chosen = {conversation_text(c) for c in orig.column("chosen").to_pylist()}
    rejected = {conversation_text(c) for c in orig.column("rejected").to_pylist()}
    monkeypatch.setattr(fixtures, "_quality", lambda text: float((text in chosen) - (text in rejected)))
    return judge_server()


def _planted(table: pa.Table, orig: pa.Table) -> list[bool]:
    """Per row: are its sides the original pair's swapped?"""
    pairs = set(zip(orig.column("chosen_id").to_pylist(), orig.column("rejected_id").to_pylist()))
    return [
        (r, c) in pairs for c, r in zip(table.column("chosen_id").to_pylist(), table.column("rejected_id").to_pylist())
    ]


def _run(wh: Warehouse, run_id: str) -> dict:
    row = wh.query(f"SELECT * FROM runs WHERE run_id = '{run_id}'").to_pylist()[0]
    row["metrics"] = json.loads(row["metrics"] or "{}")
    return row


def test_planted_flips_are_flagged_far_above_the_base_rate(hh, original_judge):
    wh, model_id, orig = hh
    parent = wh.read("mixed", "pairwise")
    planted = _planted(parent, orig)
    assert sum(planted) == len(PLANTED)  # every flipped line was ingested
    rep = flag_noise(
        wh, "mixed", [(original_judge.url, "fake-judge")], [model_id], confidence=CONFIDENCE, engine_options=FAST
    )
    out = wh.read("mixed", "pairwise")
    assert rep.commit.status == "committed" and rep.commit.parent_version == rep.parent_version
    assert out.column("record_id").to_pylist() == parent.column("record_id").to_pylist()  # nothing removed
    assert {"noise_votes", "noise_voters", "noise_flag"} <= set(out.column_names)
    assert not set(VERDICT_COLUMNS) & set(out.column_names)  # the judge scored, it published no verdicts
    assert not [c for c in out.column_names if c.startswith("_")]
    flags = out.column("noise_flag").to_pylist()
    assert out.column("noise_voters").to_pylist() == [2] * out.num_rows

    hit = sum(f for f, p in zip(flags, planted) if p) / sum(planted)
    base = sum(f for f, p in zip(flags, planted) if not p) / (len(planted) - sum(planted))
    print(f"flagged: planted {hit:.2f}, others {base:.2f}; voters {rep.report['voters']}")
    assert hit >= 0.25 and base == 0.0  # m = 2: the judge never votes against a true label

    # The report: overall, per source file (the flips are all in mixed.jsonl), per annotator (none in hh-rlhf).
    r = rep.report
    assert r["k"] == 2 and r["m"] == 2 and r["pairs"] == out.num_rows and r["flagged"] == sum(flags)
    by_file = {k.rsplit("/", 1)[-1]: v for k, v in r["by"]["source_file"].items()}
    assert by_file["clean.jsonl"]["pairs"] + by_file["mixed.jsonl"]["pairs"] == out.num_rows - r["ties"]
    assert by_file["mixed.jsonl"]["share"] > by_file["clean.jsonl"]["share"]
    assert by_file["mixed.jsonl"]["flagged"] + by_file["clean.jsonl"]["flagged"] == r["flagged"]
    assert list(r["by"]["annotator_id"]) == ["(none)"] and r["by"]["origin"]["human"]["flagged"] == r["flagged"]
    judge, rm = r["voters"]
    assert judge["voter"] == "judge:fake-judge" and rm["voter"] == f"rm:{model_id[:12]}"
    assert judge["against"] == len(PLANTED)  # the scripted judge knows the original labels
    # The reward model on its own: far more of its votes fall on the flips (every flagged pair is one of
    # its votes on a flip) than on the other pairs.
    rm_others = (rm["against"] - r["flagged"]) / (rm["scored"] - len(PLANTED))
    assert hit >= 4 * rm_others

    run = _run(wh, rep.run_id)
    assert run["status"] == "committed" and run["metrics"]["noise"] == json.loads(json.dumps(r))
    assert run["rows_read"] == out.num_rows == run["rows_kept"] + run["rows_rejected"] + run["rows_duplicate"]
    steps = wh.query(f"SELECT * FROM run_steps WHERE run_id = '{rep.run_id}'").to_pylist()
    assert {s["step"] for s in steps} == {"judge:fake-judge", f"rm:{model_id[:12]}", "noise_flags"}
    for s in steps:
        assert s["rows_in"] == out.num_rows == s["rows_kept"] + s["rows_rejected"] + s["rows_duplicate"]
    assert summary(rep)["version_id"] == rep.commit.version_id

    # Again on the child: every verdict from the cache, the same columns → nothing new to publish.
    again = flag_noise(
        wh, "mixed", [(original_judge.url, "fake-judge")], [model_id], confidence=CONFIDENCE, engine_options=FAST
    )
    assert again.commit.status == "no_change" and again.metrics["judges"][0]["requests_sent"] == 0

    # curate --drop-noisy's step: the flagged pairs leave with reason label_noise and their votes.
    res = Executor(wh.root / "drop-scratch").run_table(out, [DropNoisyStep()], "pairwise")
    rejected = res.rejected()
    assert rejected.num_rows == sum(flags) and set(rejected.column("reason").to_pylist()) == {REASON}
    assert set(rejected.column("step").to_pylist()) == {DROP_STEP}
    assert all(json.loads(d)["noise_votes"] == 2 for d in rejected.column("detail").to_pylist())
    assert res.table("pairwise").num_rows == out.num_rows - sum(flags)


def test_a_judge_that_cannot_answer_abstains(judge_server, tmp_path):
    wh = Warehouse(tmp_path / "wh")
    make_pairs_dataset(wh, "prefs", 30, tie_every=10)
    srv = judge_server(fault_rate=0.3, faults=("garbage",))
    rep = flag_noise(wh, "prefs", [(srv.url, "fake-judge")], engine_options={**FAST, "max_retries": 0})
    out = wh.read("prefs", "pairwise")
    voters = out.column("noise_voters").to_pylist()
    assert 0 < voters.count(0) < 30 and set(voters) == {0, 1}
    assert not any(out.column("noise_flag").to_pylist())  # the judge agrees with every label it judged
    ties = pc.equal(out.column("label"), "tie")
    assert out.filter(ties).column("noise_votes").null_count == 3  # ties: nothing to vote against
    q = wh.query(f"SELECT step, reason FROM quarantine WHERE run_id = '{rep.run_id}'").to_pylist()
    assert len(q) == voters.count(0) and {x["step"] for x in q} == {"judge:fake-judge"}
    assert rep.report["voters"][0]["abstained"] == sum(1 for v, t in zip(voters, ties.to_pylist()) if v == 0 and not t)


def test_bad_input_is_one_line_and_starts_nothing(hh, tmp_path):
    wh, model_id, _ = hh
    ties = Warehouse(tmp_path / "ties")
    make_pairs_dataset(ties, "ties", 4, tie_every=1)
    binary = Warehouse(tmp_path / "binary")
    ingest(binary, [str(DATA / "llamafactory_kto_en_demo/kto_en_demo.json")], "sharegpt", "kto")
    down = {"judges": [("http://127.0.0.1:9", "x")], "engine_options": FAST}
    cases: list[tuple[Warehouse, str, dict[str, Any], type[Exception]]] = [
        (wh, "mixed", {"reward_models": ["nosuchmodel"]}, WarehouseError),
        (wh, "mixed", down, EngineUnreachable),  # probed before the run
        (wh, "mixed", {}, NoiseError),  # k = 0
        (wh, "mixed", {"reward_models": [model_id], "m": 2}, NoiseError),  # m > k
        (wh, "mixed", {"reward_models": [model_id], "confidence": 0.5}, NoiseError),
        (wh, "mixed", {"reward_models": [model_id], "confidence": 1.01}, NoiseError),
        (wh, "mixed", {"reward_models": [model_id, model_id[:12]]}, NoiseError),  # one voter twice
        (ties, "ties", down, NoiseError),  # only ties (found before the judge is probed)
        (binary, "kto", down, NoiseError),  # no pairwise rows
    ]
    for w, dataset, kwargs, error in cases:
        before = w.runs().num_rows
        with pytest.raises(error) as e:
            flag_noise(w, dataset, **kwargs)
        assert isinstance(e.value, PrefmillError) and "\n" not in str(e.value), (kwargs, e.value)
        assert w.runs().num_rows == before, kwargs
