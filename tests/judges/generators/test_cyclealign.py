import itertools
import random

import orjson
import pytest

from judges.generators.common import GeneratorError
from judges.generators.cyclealign import (
    CycleAlignConfig,
    Demo,
    DemoPool,
    kendall_tau,
    lcs_order,
    parse_ranking,
    run_cyclealign,
    whitebox_order,
)
from tests.judges.generators.scripted import ScriptedEngine, assert_fits, bag_of_words_embed, fenced


def _is_subsequence(sub, seq):
    it = iter(seq)
    return all(x in it for x in sub)


def _lcs_len_brute(a, b):
    for k in range(len(a), -1, -1):
        for combo in itertools.combinations(a, k):
            if _is_subsequence(combo, b):
                return k
    return 0


def test_lcs_is_a_longest_common_subsequence():
    rng = random.Random(1)
    for _ in range(200):
        n = rng.randint(1, 6)
        a, b = list(range(n)), list(range(n))
        rng.shuffle(a)
        rng.shuffle(b)
        got = lcs_order(a, b)
        assert _is_subsequence(got, a) and _is_subsequence(got, b)
        assert len(got) == _lcs_len_brute(a, b)


def test_lcs_known_cases():
    assert lcs_order([0, 1, 2, 3], [0, 1, 2, 3]) == [0, 1, 2, 3]
    assert lcs_order([0, 1, 2, 3], [1, 0, 2, 3]) in ([0, 2, 3], [1, 2, 3])
    assert len(lcs_order([0, 1, 2, 3], [3, 2, 1, 0])) == 1


def test_kendall_tau():
    assert kendall_tau([0, 1, 2, 3], [0, 1, 2, 3]) == 1.0
    assert kendall_tau([0, 1, 2, 3], [3, 2, 1, 0]) == -1.0
    assert kendall_tau([0, 1, 2], [1, 0, 2]) == pytest.approx(1 / 3)  # 2 concordant, 1 discordant
    assert kendall_tau([0], [0]) is None
    with pytest.raises(ValueError):
        kendall_tau([0, 1], [0, 2])


def test_whitebox_order_uses_mean_then_sum():
    # candidates 0 and 2 tie on mean; 2 has the larger (less negative) sum → ranks first
    assert whitebox_order([-1.0, -3.0, -1.0], [-10.0, -3.0, -5.0]) == [2, 0, 1]


def test_parse_ranking_requires_a_permutation():
    assert parse_ranking("[2] > [1] > [3]", 3) == ([1, 0, 2], None)
    order, reason = parse_ranking("[2] > [2] > [3]", 3)
    assert order is None and reason == "not_a_permutation"
    assert parse_ranking("", 3)[1] == "empty_output"


def test_demo_pool_is_fifo_and_retrieves_by_similarity():
    pool = DemoPool(capacity=2, embed=bag_of_words_embed)
    d = [
        Demo(q, ("x", "y"), (0, 1), "dynamic")
        for q in ("how to bake bread at home", "best way to learn python programming", "how to bake a chocolate cake")
    ]
    pool.add(d[:2])
    pool.add(d[2:])
    assert len(pool) == 2 and d[0] not in pool.demos  # the oldest was evicted
    top = pool.retrieve(["bake a cake at home"], k=1)[0]
    assert top == [d[2]]
    assert pool.retrieve(["python programming course"], k=1)[0] == [d[1]]
    # a query never gets its own demo back (unless asked to)
    assert pool.retrieve([d[2].query], k=1)[0] == [d[1]]
    assert pool.retrieve([d[2].query], k=1, exclude_same_query=False)[0] == [d[2]]
    assert pool.retrieve(["unrelated words"], k=5)[0] == [d[2], d[1]]  # no similarity: newest first


# ---------------------------------------------------------------------------------------------
# The whole method with scripted engines

CANDS = ["Answer alpha is excellent.", "Answer bravo is good.", "Answer charlie is fair.", "Answer delta is poor."]
# White-box total logprobs: mean = total / len; picks the order alpha > bravo > delta > charlie
LOGP = {
    CANDS[0]: -1.0 * len(CANDS[0]),
    CANDS[1]: -2.0 * len(CANDS[1]),
    CANDS[2]: -9.0 * len(CANDS[2]),
    CANDS[3]: -4.0 * len(CANDS[3]),
}
BLACKBOX_PREF = [CANDS[0], CANDS[1], CANDS[2], CANDS[3]]  # alpha > bravo > charlie > delta


def policy_engine(cands=CANDS):
    def answer(req, text):
        return list(cands)

    return ScriptedEngine(answer, logprob=LOGP, model="policy")


def judge_engine(pref=BLACKBOX_PREF, bad=False):
    def answer(req, text):
        if bad:
            return "I think they are all fine."
        shown = fenced(text.split("Now the request to judge.")[-1], "CANDIDATE")
        order = sorted(range(len(shown)), key=lambda i: pref.index(shown[i]))
        return " > ".join(f"[{i + 1}]" for i in order)

    return ScriptedEngine(answer, model="judge")


def test_agreement_ranking_pairs_listwise_and_pool():
    pool = DemoPool(64, embed=bag_of_words_embed)
    judge = judge_engine()
    prompts = ["How good are these answers?", "Which reply would you pick?"]
    res = run_cyclealign(
        policy_engine(), judge, prompts, CycleAlignConfig(rounds=2), pool=pool, embed=bag_of_words_embed
    )
    # R_b = alpha, bravo, charlie, delta; R_w = alpha, bravo, delta, charlie → R_a has 3 items → 3 pairs
    # per prompt and round
    assert len(res.listwise) == 4 and len(res.pairs) == 12
    assert_fits(res.listwise, "listwise")
    assert_fits(res.pairs, "pairwise")
    meta = orjson.loads(res.listwise[0]["meta"])
    idx = {c: i for i, c in enumerate(CANDS)}
    assert meta["blackbox_ranking"] == [idx[c] for c in BLACKBOX_PREF]
    assert meta["whitebox_ranking"] == [0, 1, 3, 2]
    assert len(meta["agreement_ranking"]) == 3
    assert meta["kendall_tau"] == pytest.approx(kendall_tau(meta["blackbox_ranking"], meta["whitebox_ranking"]))
    # listwise ranks follow the black-box order
    ranks = res.listwise[0]["ranks"]
    assert [
        res.listwise[0]["completions"][i][0]["content"] for i in sorted(range(4), key=ranks.__getitem__)
    ] == BLACKBOX_PREF
    # every pair follows the agreement order: chosen earlier than rejected in both rankings
    for p in res.pairs:
        c, r = p["chosen"][0]["content"], p["rejected"][0]["content"]
        assert BLACKBOX_PREF.index(c) < BLACKBOX_PREF.index(r)
        assert meta["whitebox_ranking"].index(idx[c]) < meta["whitebox_ranking"].index(idx[r])
        prov = orjson.loads(p["meta"])["provenance"]
        assert prov["method"] == "cyclealign" and prov["models"]["blackbox"] == "judge"
        assert prov["template_ids"]["rank"].startswith("cyclealign_rank@")
    # |R_a| = 3 ≥ N − 1 → both agreed rankings entered the pool after round 1 (and again after round 2)
    assert len(pool) == 4 and res.stats["rounds"][0]["pool_added"] == 2
    # round 1 had only the static demos; in round 2 each prompt got the *other* prompt's round-1 demo
    round1 = [r.messages[-1][1] for r in judge.requests[:2]]
    round2 = [r.messages[-1][1] for r in judge.requests[2:]]
    assert all(t.count("Example") == 2 for t in round1)
    for text, own, other in zip(round2, prompts, prompts[::-1]):
        assert text.count("Example") == 3 and text.count(own) == 1 and text.count(other) == 1
    dyn_demo = pool.demos[0]  # partial agreement: only the 3 agreed candidates, in agreed order
    # (LCS ties are broken towards the black-box order: alpha > bravo > charlie)
    assert len(dyn_demo.candidates) == 3 and [dyn_demo.candidates[i] for i in dyn_demo.order] == CANDS[:3]
    assert res.stats["cost"]["engines"]["judge"]["requests"] == 4


def test_low_agreement_stays_out_of_the_pool():
    # the judge prefers the exact reverse of the white-box order → LCS of length 1: no pairs, no demo
    wb = [CANDS[0], CANDS[1], CANDS[3], CANDS[2]]
    pool = DemoPool(64, embed=bag_of_words_embed)
    res = run_cyclealign(
        policy_engine(),
        judge_engine(pref=wb[::-1]),
        ["q?"],
        CycleAlignConfig(rounds=1),
        pool=pool,
        embed=bag_of_words_embed,
    )
    assert res.pairs == [] and len(res.listwise) == 1 and len(pool) == 0
    assert res.dropped["prompt_no_agreement"] == 1
    assert orjson.loads(res.listwise[0]["meta"])["kendall_tau"] == -1.0


def test_candidates_are_shown_shuffled_but_mapped_back():
    judge = judge_engine()
    res = run_cyclealign(
        policy_engine(),
        judge,
        [f"question {i}" for i in range(6)],
        CycleAlignConfig(rounds=1),
        embed=bag_of_words_embed,
    )
    shown_orders = {
        tuple(fenced(r.messages[-1][1].split("Now the request to judge.")[-1], "CANDIDATE")) for r in judge.requests
    }
    assert len(shown_orders) > 1  # not always the sampling order
    for row in res.listwise:  # yet every row's black-box ranking is the judge's preference
        meta = orjson.loads(row["meta"])
        assert [row["completions"][i][0]["content"] for i in meta["blackbox_ranking"]] == BLACKBOX_PREF


def test_unparseable_judge_everywhere_is_counted_not_raised():
    res = run_cyclealign(
        policy_engine(), judge_engine(bad=True), ["a?", "b?"], CycleAlignConfig(rounds=2), embed=bag_of_words_embed
    )
    assert res.pairs == [] and res.listwise == []
    assert res.dropped["prompt_blackbox_judge_unparseable"] == 4
    assert len(res.diagnostics) == 4


def test_model_returning_nothing_is_counted():
    dead = ScriptedEngine(lambda req, text: None, model="dead")
    res = run_cyclealign(dead, dead, ["a?", "b?", "c?"], CycleAlignConfig(rounds=1), embed=bag_of_words_embed)
    assert res.pairs == [] and res.listwise == []
    assert res.dropped["sample_scripted_failure"] == 3 * 4


def test_duplicate_and_empty_candidates_are_dropped_with_reasons():
    pol = policy_engine(cands=[CANDS[0], CANDS[0], "  ", CANDS[1]])
    res = run_cyclealign(pol, judge_engine(), ["q?"], CycleAlignConfig(rounds=1), embed=bag_of_words_embed)
    assert res.dropped["candidate_duplicate"] == 1 and res.dropped["candidate_empty"] == 1
    assert len(res.pairs) == 1  # two distinct candidates, both orderings agree (alpha > bravo)
    pol = policy_engine(cands=[CANDS[0], CANDS[0], CANDS[0], CANDS[0]])
    res = run_cyclealign(pol, judge_engine(), ["q?"], CycleAlignConfig(rounds=1), embed=bag_of_words_embed)
    assert res.dropped["prompt_too_few_candidates"] == 1 and res.listwise == []


def test_empty_prompt_set_is_a_clear_error():
    with pytest.raises(GeneratorError, match="no prompts"):
        run_cyclealign(policy_engine(), judge_engine(), [], embed=bag_of_words_embed)
