"""Logic of the primitives against a scripted engine (real-model runs: tests/integration)."""

import json
import math

import pytest

from judges import primitives as P
from judges.templates import PAIRWISE
from judges.types import Request, Response
from tests.judges.scripted_engine import (
    CharTokenizer,
    ScriptedEngine,
    blocks,
    chat_body,
    echo_handler,
    letter_top,
    token_logprob,
)

# ---------------------------------------------------------------- pairwise


def quality_judge(p_good: float = 0.8, bias_a: float = 0.0):
    """Prefers the response containing GOOD with probability p_good, plus a pull towards slot A."""

    def handle(req: Request) -> dict:
        b = blocks(req)
        p_a = p_good if "GOOD" in b["RESPONSE A"] else 1 - p_good
        p_a = min(max(p_a + bias_a, 0.01), 0.99)
        return chat_body("A" if p_a >= 0.5 else "B", "length", letter_top(p_a, {" the": -4.0}))

    return handle


def test_verdict_averages_both_orders():
    eng = ScriptedEngine(quality_judge(0.8))
    v_good_first, v_good_second = P.pairwise_verdict(eng, [("q", "GOOD one", "bad one"), ("q", "bad", "GOOD")])
    assert v_good_first.ok and v_good_first.p_ab == pytest.approx(0.8) and v_good_first.p_ba == pytest.approx(0.8)
    assert v_good_first.prob_a == pytest.approx(0.8) and v_good_first.winner == "a"
    assert v_good_second.prob_a == pytest.approx(0.2) and v_good_second.winner == "b"
    assert v_good_first.template_id == PAIRWISE.id and v_good_first.mode == "logprobs"
    assert v_good_first.prompt_tokens == 20 and v_good_first.completion_tokens == 2
    # four requests: both orders of both items, a single-token logprob read each
    assert len(eng.seen) == 4
    for req in eng.seen:
        assert req.param_dict == {"max_tokens": 1, "temperature": 0, "logprobs": True, "top_logprobs": 20}
        assert req.template_id == PAIRWISE.id
    assert blocks(eng.seen[0])["RESPONSE A"] == "GOOD one" and blocks(eng.seen[1])["RESPONSE A"] == "bad one"


def test_position_swap_cancels_position_bias():
    v = P.pairwise_verdict(ScriptedEngine(quality_judge(0.7, bias_a=0.2)), [("q", "GOOD", "bad")])[0]
    assert v.p_ab == pytest.approx(0.9) and v.p_ba == pytest.approx(0.5)
    assert v.prob_a == pytest.approx(0.7)  # ½(0.9 + 0.5): the +0.2 for slot A cancels out


def test_letter_variants_with_spaces_are_summed():
    top = {"A": math.log(0.3), " A": math.log(0.3), "B": math.log(0.2), " the": math.log(0.2)}
    p, detail = P.first_token_letter_prob(chat_body("A", top=top)["choices"][0])
    assert p == pytest.approx(0.6 / 0.8) and detail == ""


def test_missing_letter_is_bounded_by_the_smallest_listed_logprob():
    top = {"A": -0.1, "x": -2.0, "y": -3.0}
    p, detail = P.first_token_letter_prob(chat_body("A", top=top)["choices"][0])
    assert p == pytest.approx(1 / (1 + math.exp(-3.0 + 0.1))) and detail == "B_not_in_top_k"


def test_completions_schema_logprobs_are_read_too():
    choice = {"text": "B", "logprobs": {"top_logprobs": [{" B": math.log(0.6), " A": math.log(0.2)}]}}
    assert P.first_token_letter_prob(choice)[0] == pytest.approx(0.25)


def test_unusable_logprob_answers_fall_back_to_guided_choice():
    def handle(req: Request) -> dict:
        so = req.param_dict.get("structured_outputs")
        if so:
            assert so == {"choice": ["A", "B"]}
            p_a = 0.75 if "GOOD" in blocks(req)["RESPONSE A"] else 0.25
            return chat_body("A" if p_a > 0.5 else "B", "stop", letter_top(p_a))
        return chat_body("Hmm", "length", {"Hmm": -1.0, " the": -2.0})  # no letter anywhere

    eng = ScriptedEngine(handle)
    v = P.pairwise_verdict(eng, [("q", "GOOD", "bad")])[0]
    assert v.ok and v.mode == "guided" and v.prob_a == pytest.approx(0.75)
    assert len(eng.seen) == 4 and v.prompt_tokens == 40  # both passes are counted
    eng2 = ScriptedEngine(handle)
    v2 = P.pairwise_verdict(eng2, [("q", "GOOD", "bad")], guided_fallback=False)[0]
    assert not v2.ok and v2.reason == "judge_unparseable" and v2.prob_a is None and len(eng2.seen) == 2


def test_failed_request_rejects_the_item_without_retrying_it():
    def handle(req):
        if "BROKEN" in blocks(req)["USER REQUEST"]:
            return Response(False, None, "http_500", "boom")
        return quality_judge()(req)

    eng = ScriptedEngine(handle)
    good, broken = P.pairwise_verdict(eng, [("q", "GOOD", "bad"), ("BROKEN", "GOOD", "bad")])
    assert good.ok and not broken.ok and broken.reason == "http_500"
    assert len(eng.seen) == 4  # no guided retry for a transport failure


def test_one_refusing_order_rejects_the_item():
    def handle(req):
        if blocks(req)["RESPONSE A"] == "bad":
            return chat_body("I'm sorry, I can't judge this.", "stop", {"I": -0.1, "Sorry": -2.0})
        return quality_judge()(req)

    good, refused = P.pairwise_verdict(
        ScriptedEngine(handle), [("q", "x", "y"), ("q", "GOOD", "bad")], guided_fallback=False
    )
    assert not refused.ok and refused.reason == "refused" and refused.p_ab == pytest.approx(0.8)


def test_text_mode_gives_hard_probabilities():
    answers = iter(["**A**", "Response B"])  # a=GOOD shown first then second: both say "GOOD wins"
    eng = ScriptedEngine(lambda req: chat_body(next(answers)))
    v = P.pairwise_verdict(eng, [("q", "GOOD", "bad")], use_logprobs=False)[0]
    assert v.ok and v.mode == "text" and (v.p_ab, v.p_ba, v.prob_a) == (1.0, 1.0, 1.0)
    assert "logprobs" not in eng.seen[0].param_dict


def test_guided_mode_request_shape():
    eng = ScriptedEngine(lambda req: chat_body("A", "stop", letter_top(0.6)))
    v = P.pairwise_verdict(eng, [("q", "x", "y")], guided=True)[0]
    assert v.mode == "guided" and v.p_ab == pytest.approx(0.6) and v.p_ba == pytest.approx(0.4)
    assert eng.seen[0].param_dict["structured_outputs"] == {"choice": ["A", "B"]}


# ---------------------------------------------------------------- sequence log-likelihood


def expected(completion: str) -> float:
    return sum(token_logprob(ord(c)) for c in completion)


def test_logprob_sums_only_completion_tokens_plain_text():
    tok = CharTokenizer()
    eng = ScriptedEngine(echo_handler(tok))
    lp = P.sequence_logprob(eng, "Question: hi\nAnswer:", " yes", tokenizer=tok)
    assert lp.ok and lp.n_tokens == 4 and lp.n_prompt_tokens == len("Question: hi\nAnswer:")
    assert lp.sum == pytest.approx(expected(" yes")) and lp.sum == pytest.approx(sum(lp.token_logprobs))
    assert lp.mean == pytest.approx(lp.sum / 4)
    req = eng.seen[0]
    assert req.kind == "completion" and req.prompt == "Question: hi\nAnswer: yes"
    assert {
        "echo": True,
        "logprobs": 1,
        "max_tokens": 1,
        "return_tokens_as_token_ids": True,
    }.items() <= req.param_dict.items()


def test_logprob_with_chat_template_scores_after_the_generation_prompt():
    tok = CharTokenizer()
    eng = ScriptedEngine(echo_handler(tok))
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    lp = P.sequence_logprob(eng, msgs, "Hello!", tokenizer=tok)
    rendered = tok.render_chat(msgs)
    assert eng.seen[0].prompt == rendered + "Hello!" and eng.seen[0].param_dict["add_special_tokens"] is False
    assert lp.ok and lp.n_tokens == 6 and lp.n_prompt_tokens == len(rendered)
    assert lp.sum == pytest.approx(expected("Hello!"))
    # the same completion after a different prompt is scored on the same tokens
    assert P.sequence_logprob(eng, "other", "Hello!", tokenizer=tok).sum == pytest.approx(lp.sum)


def test_logprob_token_straddling_the_boundary_is_rejected():
    tok = CharTokenizer(merges={"ab": 1000})
    eng = ScriptedEngine(echo_handler(tok))
    bad, good = P.sequence_logprobs(eng, [("xxa", "bc"), ("xxa", " bc")], chat_template=False, tokenizer=tok)
    assert not bad.ok and bad.reason == "boundary_mismatch" and bad.sum is None
    assert good.ok and good.sum == pytest.approx(expected(" bc"))


def test_logprob_failures_are_per_item():
    tok = CharTokenizer()

    class FlakyTok(CharTokenizer):
        def tokenize(self, text, add_special_tokens=True):
            if "FAIL" in text:
                raise ConnectionError("tokenizer down")
            return super().tokenize(text, add_special_tokens)

    def handle(req):
        if req.prompt.startswith("500"):
            return Response(False, None, "http_500", "")
        return echo_handler(tok)(req)

    eng = ScriptedEngine(handle)
    got = P.sequence_logprobs(
        eng, [("FAIL", "x"), ("500", "x"), ("ok", ""), ("", "x"), ("ok", "yz")], tokenizer=FlakyTok()
    )
    assert [(g.ok, g.reason) for g in got] == [
        (False, "tokenize_failed"),
        (False, "http_500"),
        (False, "empty_output"),
        (False, "no_context"),
        (True, None),
    ]
    assert len(eng.seen) == 4  # the item whose tokenization failed was never sent


def test_logprob_needs_token_ids_in_the_echo():
    tok = CharTokenizer()
    body = {
        "choices": [{"text": "", "logprobs": {"tokens": ["a", "b"], "token_logprobs": [None, -1.0]}}],
        "usage": {"prompt_tokens": 2},
    }
    lp = P.sequence_logprob(ScriptedEngine(lambda req: body), "a", "b", tokenizer=tok)
    assert not lp.ok and lp.reason == "no_logprobs"


def test_server_tokenizer_needs_a_base_url():
    with pytest.raises(TypeError, match="tokenizer="):
        P.sequence_logprob(ScriptedEngine(echo_handler(CharTokenizer())), "a", "b")


# ---------------------------------------------------------------- sampling


def test_sample_passes_n_and_seed_and_flags_bad_completions():
    def handle(req):
        n = req.param_dict["n"]
        return {
            "choices": [
                {"index": 0, "message": {"content": "fine"}, "finish_reason": "stop"},
                {"index": 1, "message": {"content": "cut of"}, "finish_reason": "length"},
                {"index": 2, "message": {"content": " "}, "finish_reason": "stop"},
            ][:n],
            "usage": {"prompt_tokens": 5, "completion_tokens": 9},
        }

    eng = ScriptedEngine(handle)
    res = P.sample(eng, ["hi", [{"role": "user", "content": "yo"}]], n=3, seed=11, temperature=0.7)
    assert [c.reason for c in res[0].completions] == [None, "truncated", "empty_output"]
    assert res[0].texts == ["fine", "cut of", " "] and res[0].completion_tokens == 9 and res[0].seed == 11
    assert all(r.param_dict == {"n": 3, "seed": 11, "temperature": 0.7} for r in eng.seen)
    assert eng.seen[0].messages == (("user", "hi"),)
    raw = P.sample(eng, ["base model text"], n=1, seed=1, chat=False)
    assert eng.seen[-1].kind == "completion" and raw[0].completions[0].text == "fine"


def test_sample_failed_request():
    res = P.sample(ScriptedEngine(lambda req: Response(False, None, "timeout", "60s")), ["x"], n=2, seed=0)
    assert not res[0].ok and res[0].reason == "timeout" and res[0].completions == []


# ---------------------------------------------------------------- JSON


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "score": {"type": "integer", "minimum": 1}},
    "required": ["name", "score"],
    "additionalProperties": False,
}


def test_generate_json_validates_on_return():
    answers = iter(
        [
            ('{"name": "x", "score": 3}', "stop"),
            ('{"name": "x", "score": 0}', "stop"),
            ('{"name": "x", "sc', "length"),
            ("not json", "stop"),
            ("", "stop"),
            ('{"name": "x", "score": 2, "extra": 1}', "stop"),
        ]
    )
    eng = ScriptedEngine(lambda req: chat_body(*next(answers)))
    got = P.generate_json_many(eng, ["a", "b", "c", "d", "e", "f"], SCHEMA)
    assert [(g.ok, g.reason) for g in got] == [
        (True, None),
        (False, "schema_violation"),
        (False, "truncated"),
        (False, "invalid_json"),
        (False, "empty_output"),
        (False, "schema_violation"),
    ]
    assert got[0].value == {"name": "x", "score": 3}
    assert eng.seen[0].param_dict["structured_outputs"] == {"json": SCHEMA}


def test_generate_json_openai_response_format():
    eng = ScriptedEngine(lambda req: chat_body(json.dumps({"name": "n", "score": 5})))
    res = P.generate_json(eng, [{"role": "user", "content": "go"}], SCHEMA, response_format=True)
    assert res.ok and res.value["score"] == 5
    rf = eng.seen[0].param_dict["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["schema"] == SCHEMA
    assert "structured_outputs" not in eng.seen[0].param_dict
