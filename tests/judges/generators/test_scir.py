import math

import numpy as np
import orjson
import pytest

from judges.generators.common import GeneratorError
from judges.generators.scir import SCIRConfig, decide, implicit_prob, run_scir
from pipelines.synthesize import bt_rm
from tests.judges.generators.scripted import Letter, ScriptedEngine, assert_fits, fenced

# Judge's view: P(first shown ≻ second shown) by a quality score per response.
QUALITY = {"good answer": 3.0, "fine answer": 0.0, "bad answer": -3.0, "meh one": 0.1, "meh two": -0.1}


def judge_engine(quality=QUALITY, model="policy", broken=False):
    def answer(req, text):
        if broken:
            return "Hard to say, both have merits."
        a, b = fenced(text, "RESPONSE A")[0], fenced(text, "RESPONSE B")[0]
        return Letter(1 / (1 + math.exp(-(quality[a] - quality[b]))))

    return ScriptedEngine(answer, model=model)


def test_decide_rule():
    assert decide({"g": 0.9, "i": 0.8}).status == "consistent"
    d = decide({"g": 0.2, "i": 0.3})
    assert d.status == "consistent" and d.first_wins is False
    assert d.confidence == pytest.approx(0.7) and d.weight == pytest.approx(0.75)
    assert decide({"g": 0.9, "i": 0.3}).status == "disagree"
    assert decide({"g": 0.9, "i": 0.55}).status == "low_confidence"  # same side, |P − ½| < 0.1
    assert decide({"g": 0.9, "i": 0.6}).status == "consistent"  # δ = 0.6 is inclusive
    assert decide({"g": 0.9, "i": None}).status == "consistent"  # an abstaining RM does not vote
    assert decide({"g": 0.9, "i": 0.5}).status == "low_confidence"  # exactly ½: no direction, not confident
    assert decide({"g": None, "i": None}).status == "no_vote"
    assert decide({"g": 0.65, "i": 0.7}, min_confidence=0.75).status == "low_confidence"


def test_implicit_reward_formula():
    r1, r2, p = implicit_prob(0.1, pol1=-10.0, ref1=-20.0, pol2=-15.0, ref2=-12.0)
    assert r1 == pytest.approx(1.0) and r2 == pytest.approx(-0.3)
    assert p == pytest.approx(1 / (1 + math.exp(-1.3)))


def _engines(policy_lp, ref_lp, **judge_kw):
    policy = judge_engine(**judge_kw)
    policy.logprob = policy_lp
    return policy, ScriptedEngine(logprob=ref_lp, model="reference")


def test_keeps_only_consistent_confident_pairs():
    # implicit rewards (β = 0.1): good +2.0, fine 0.0, bad −2.0 → P_I(good ≻ bad) ≈ 0.98
    policy, ref = _engines(
        {"good answer": -10.0, "fine answer": -20.0, "bad answer": -40.0, "meh one": -20, "meh two": -20},
        {"good answer": -30.0, "fine answer": -20.0, "bad answer": -20.0, "meh one": -20, "meh two": -20},
    )
    pairs = [
        ("Q1", "good answer", "bad answer"),  # both RMs: good ≻ bad → kept
        ("Q2", "bad answer", "good answer"),  # same, given in the other order → kept, chosen = good
        ("Q3", "fine answer", "bad answer"),  # judge ≈0.95 for fine; implicit ≈0.86 for fine → kept
        ("Q4", "meh one", "meh two"),
    ]  # judge ≈0.55 → low confidence
    policy.logprob["fine answer"] = -22.0  # implicit r(fine) = −0.2; r(bad) = −2.0 → P_I ≈ 0.86
    res = run_scir(policy, ref, pairs=pairs, iteration=1)
    chosen = [p["chosen"][0]["content"] for p in res.pairs]
    assert chosen == ["good answer", "good answer", "fine answer"]
    assert_fits(res.pairs, "pairwise")
    assert all(p["rejected"][0]["content"] == "bad answer" for p in res.pairs)
    m = orjson.loads(res.pairs[1]["meta"])
    assert m["first_is_chosen"] is False and m["scir_status"] == "consistent"
    assert m["p_implicit"] == pytest.approx(1 - 1 / (1 + math.exp(-4.0)))
    assert res.pairs[1]["margin"] == pytest.approx(((1 - m["p_generative"]) + (1 - m["p_implicit"])) / 2)
    assert res.dropped["scir_low_confidence"] == 1
    assert [d["scir_status"] for d in res.diagnostics] == ["low_confidence"]
    assert res.stats["status"] == {"consistent": 3, "low_confidence": 1}


def test_disagreeing_pairs_go_to_diagnostics_not_pairs():
    # the policy moved *towards* the bad answer → implicit RM prefers bad, judge prefers good
    policy, ref = _engines({"good answer": -30.0, "bad answer": -10.0}, {"good answer": -20.0, "bad answer": -20.0})
    res = run_scir(policy, ref, pairs=[("Q", "good answer", "bad answer")], iteration=2)
    assert res.pairs == []
    assert res.dropped["scir_disagree"] == 1
    d = res.diagnostics[0]
    assert d["scir_status"] == "disagree" and d["origin"] == "ai_judge"
    assert d["p_generative"] > 0.9 and d["p_implicit"] < 0.2 and d["iteration"] == 2


def test_iteration_zero_judge_decides_alone():
    policy = judge_engine()
    pairs = [("Q1", "good answer", "bad answer"), ("Q2", "meh one", "meh two")]
    res = run_scir(policy, policy, pairs=pairs, iteration=0)
    assert [p["chosen"][0]["content"] for p in res.pairs] == ["good answer"]
    assert res.dropped["scir_low_confidence"] == 1
    assert res.stats["implicit_abstains"] is True
    assert not any(r.param_dict.get("echo") for r in policy.requests)  # no logprobs were even requested
    assert orjson.loads(res.pairs[0]["meta"])["p_implicit"] is None


def test_without_abstention_iteration_zero_would_keep_nothing():
    # a distinct reference engine with the policy's exact likelihoods: r ≡ 0 → P_I = ½ → nothing confident
    lp = {"good answer": -10.0, "bad answer": -30.0}
    policy, ref = _engines(lp, dict(lp))
    res = run_scir(policy, ref, pairs=[("Q1", "good answer", "bad answer")], iteration=1)
    assert res.pairs == [] and res.diagnostics[0]["p_implicit"] == pytest.approx(0.5)
    # the same setup as iteration 0 keeps the pair
    assert len(run_scir(policy, ref, pairs=[("Q1", "good answer", "bad answer")], iteration=0).pairs) == 1


def test_extra_reward_model_votes():
    policy = judge_engine()
    against = lambda prompts, a, b: [0.1] * len(a)  # noqa: E731  (prefers the second response)
    res = run_scir(policy, None, pairs=[("Q", "good answer", "bad answer")], iteration=0, extra_rm=against)
    assert res.pairs == [] and res.dropped["scir_disagree"] == 1
    agree = lambda prompts, a, b: [0.8] * len(a)  # noqa: E731
    res = run_scir(policy, None, pairs=[("Q", "good answer", "bad answer")], iteration=0, extra_rm=agree)
    assert len(res.pairs) == 1 and orjson.loads(res.pairs[0]["meta"])["p_embedding_bt"] == 0.8
    broken = lambda prompts, a, b: [float("nan")] * len(a)  # noqa: E731
    res = run_scir(policy, None, pairs=[("Q", "good answer", "bad answer")], iteration=0, extra_rm=broken)
    assert res.pairs == [] and res.dropped["pair_extra_rm_failed"] == 1


def test_bt_reward_model_adapter():
    from curation.reward import BTRewardModel

    model = BTRewardModel(weights=np.array([1.0, -1.0]))
    embed = lambda texts: np.array([[t.count("good"), t.count("bad")] for t in texts], float)  # noqa: E731
    rm = bt_rm(model, embed)
    p = rm(["Q"], ["good answer"], ["bad answer"])
    assert p[0] == pytest.approx(1 / (1 + math.exp(-2.0)))


def test_sampling_pairs_from_prompts():
    samples = ["good answer", "fine answer", "bad answer", "good answer"]  # one duplicate
    policy = judge_engine()
    inner = policy.answer
    policy.answer = lambda req, text: samples if "RESPONSE A" not in text else inner(req, text)
    res = run_scir(policy, None, ["Q?"], iteration=0)
    assert res.stats["candidate_pairs"] == 3 and res.dropped["sample_duplicate"] == 1
    assert {(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in res.pairs} == {
        ("good answer", "fine answer"),
        ("good answer", "bad answer"),
        ("fine answer", "bad answer"),
    }
    res = run_scir(policy, None, ["Q?"], SCIRConfig(pairing="random_one"), iteration=0)
    assert res.stats["candidate_pairs"] == 1


def test_unparseable_judge_and_dead_model_are_counted():
    policy = judge_engine(broken=True)
    res = run_scir(
        policy, None, pairs=[("Q", "good answer", "bad answer"), ("Q", "fine answer", "bad answer")], iteration=0
    )
    assert res.pairs == [] and res.dropped["pair_judge_unparseable"] == 2
    dead = ScriptedEngine(lambda req, text: None)
    res = run_scir(dead, dead, ["a", "b"], iteration=1)
    assert res.pairs == [] and res.dropped["sample_scripted_failure"] == 8
    res = run_scir(dead, ScriptedEngine(model="ref"), pairs=[("Q", "good answer", "bad answer")], iteration=1)
    assert res.pairs == [] and res.dropped["pair_judge_scripted_failure"] == 1


def test_empty_inputs_are_clear_errors():
    with pytest.raises(GeneratorError, match="no prompts"):
        run_scir(judge_engine(), None, [])
    with pytest.raises(GeneratorError, match="no pairs"):
        run_scir(judge_engine(), None, pairs=[])
    res = run_scir(judge_engine(), None, pairs=[("Q", "same", "same"), ("Q", None, "x"), ("Q", "  ", "x")], iteration=0)
    assert res.dropped == {"pair_chosen_equals_rejected": 1, "pair_empty_response": 2}
