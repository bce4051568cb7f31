import itertools
import random

import orjson
import pytest

from judges.generators.common import GeneratorError
from judges.generators.isheep import (
    DEFAULT_SEEDS,
    ISheepConfig,
    SeedTask,
    instruction_problem,
    load_seeds,
    output_problem,
    parse_generated,
    parse_score,
    passes,
    render_generation_prompt,
    run_isheep,
)
from judges.generators.rouge import RougeIndex, lcs_length, rouge_l_f, rouge_tokens
from tests.judges.generators.scripted import ScriptedEngine, assert_fits

# ---------------------------------------------------------------------------------------------
# Seeds


def test_bundled_seed_file_loads():
    seeds, rejects = load_seeds(DEFAULT_SEEDS)
    assert len(seeds) == 175 and not rejects
    assert all(s.instruction for s in seeds)


def test_seed_file_with_bad_rows_counts_them(tmp_path):
    good = {"instruction": "Name three primary colours.", "instances": [{"input": "", "output": "Red, blue, yellow."}]}
    lines = [
        orjson.dumps(good).decode(),
        "{not json",
        orjson.dumps({"instances": [{}]}).decode(),
        orjson.dumps({"instruction": "x y z w"}).decode(),
        orjson.dumps({"instruction": "  ", "instances": [{}]}).decode(),
        orjson.dumps([1, 2]).decode(),
        orjson.dumps({"instruction": 5, "instances": []}).decode(),
        orjson.dumps({"instruction": "Fine task here now", "instances": []}).decode(),
        "",
    ]
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join(lines))
    seeds, rejects = load_seeds(path)
    assert seeds == [SeedTask("Name three primary colours.", "", "Red, blue, yellow.")]
    assert rejects == {
        "seed_invalid_json": 1,
        "seed_missing_field": 3,
        "seed_empty_instruction": 1,
        "seed_not_object": 1,
        "seed_bad_type": 1,
    }
    # a run reports the rejected seeds with its other drops
    res = run_isheep(ScriptedEngine(lambda req, text: None), path, ISheepConfig(num_instructions=1, max_batches=1))
    assert {k: v for k, v in res.dropped.items() if k.startswith("seed_")} == rejects
    assert res.stats["seeds"] == 1
    # parsed rows work too
    seeds, rejects = load_seeds([good, {"instances": []}, SeedTask("Already a seed task", "")])
    assert len(seeds) == 2 and rejects == {"seed_missing_field": 1}


def test_seed_file_with_nothing_usable_is_a_clear_error(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text('{"name": "no instruction"}\n')
    with pytest.raises(GeneratorError, match="no usable seed"):
        run_isheep(ScriptedEngine(), path)
    with pytest.raises(GeneratorError, match="not found"):
        run_isheep(ScriptedEngine(), tmp_path / "missing.jsonl")


# ---------------------------------------------------------------------------------------------
# Parsing and rules


def test_generation_prompt_and_parser_round_trip():
    prompt = render_generation_prompt(
        [SeedTask("Say hi to the user politely.", ""), SeedTask("Sort the list.", "3, 1, 2")]
    )
    assert prompt.endswith("###\n3. Instruction:")
    assert "2. Input:\n3, 1, 2\n" in prompt and "1. Input:\n<noinput>\n" in prompt
    text = (
        " Write a haiku about the sea at night.\n3. Input:\n<noinput>\n###\n"
        "4. Instruction: Classify the sentiment of this review.\n4. Input:\nThe food was cold.\n###\n"
        "5. Input: orphan input without instruction\n###\n"
        "6. Instruction: Explain how tides wo"
    )
    got, drops = parse_generated(text, 3)
    assert got == [
        ("Write a haiku about the sea at night.", ""),
        ("Classify the sentiment of this review.", "The food was cold."),
    ]
    assert drops == {"instruction_last_chunk": 1, "instruction_unparseable": 1}
    got, _ = parse_generated(text, 3, drop_last_chunk=False)
    assert got[-1] == ("Explain how tides wo", "")


@pytest.mark.parametrize(
    "inst,inp,reason",
    [
        ("Too short here", "", "instruction_too_short"),
        ("word " * 151, "", "instruction_too_long"),
        ("Describe the image shown below in detail.", "", "instruction_blacklisted_word"),
        ("Summarise the following text for me.", "Go to the store and buy milk.", "instruction_blacklisted_word"),
        ("- Write a list of fruits that are red.", "", "instruction_starts_with_punctuation"),
        ("Écris un poème sur la mer du nord.", "", "instruction_starts_with_non_ascii"),
        ("Write a story. Output: a long story please", "", "instruction_leftover_field_marker"),
        ("Summarise the article at https://example.com today.", "", "instruction_contains_url"),
        ("Translate the sentence into French please.", "no input", "instruction_input_noinput"),
        ("Translate the sentence into French please.", "I like apples.", None),
        ("Plotting a course: list three famous sailors.", "", None),  # "plot" is whole-word only
    ],
)
def test_instruction_rules(inst, inp, reason):
    assert instruction_problem(inst, inp) == reason


@pytest.mark.parametrize(
    "inst,inp,out,reason",
    [
        ("Write a poem.", "", "", "output_empty"),
        ("Answer the question.", "<noinput>", "Sure thing.", "instruction_placeholder"),
        ("Fix the grammar in: he go home", "he go home", "He goes home.", "input_in_instruction"),
        ("Write a poem.", "", "A poem.\nUser: write another", "output_role_marker"),
        ("Pick one.", "", "Answer Choices: yes", "output_answer_choices"),
        ("Explain it.", "", "It works.\n\ncan you tell me more", "output_can_you"),
        ("Explain it.", "", "Do you mean the blue one? It depends", None),  # capital "Do": the rule is lower-case
        ("Explain it.", "", "Tell me, do you like jazz?", "output_do_you_question"),
        ("Explain it.", "", "It works.\n\nWhat else would you like?", "output_trailing_question"),
        ("Pick one.", "", "The answer is (B) the second", "output_multiple_choice"),
        ("Translate it.", "", "这是答案", "output_cjk"),
        ("Explain it.", "", "It works because the gears mesh together", None),
    ],
)
def test_output_rules(inst, inp, out, reason):
    assert output_problem(inst, inp, out) == reason


def test_output_rules_can_be_switched_off():
    assert output_problem("Translate it.", "", "这是答案", reject_cjk=False) is None
    assert output_problem("Pick one.", "", "The answer is (B) the second", skip=["output_multiple_choice"]) is None


@pytest.mark.parametrize(
    "text,value,reason",
    [
        ("9||clear and correct", 9, None),
        ("  **10** || perfect", 10, None),
        ("Score: 7 because it is fine", 7, None),
        ("8/10", 8, None),
        ("11||too generous", None, "score_out_of_scale"),
        ("I would not rate this", None, "judge_unparseable"),
        ("", None, "empty_output"),
    ],
)
def test_score_parser(text, value, reason):
    assert parse_score(text) == (value, reason)


def test_threshold_is_strict_and_mode_aware():
    assert passes(9, 9, 8) and not passes(8, 10, 8) and not passes(10, 8, 8)
    assert passes(9, 3, 8, "quality") and passes(3, 9, 8, "following")


# ---------------------------------------------------------------------------------------------
# ROUGE-L


def _lcs_dp(a, b):
    L = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, j in itertools.product(range(len(a)), range(len(b))):
        L[i + 1][j + 1] = L[i][j] + 1 if a[i] == b[j] else max(L[i][j + 1], L[i + 1][j])
    return L[-1][-1]


def test_bit_parallel_lcs_matches_dynamic_programming():
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 70))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 70))]
        assert lcs_length(a, b) == _lcs_dp(a, b)


def test_rouge_l_values():
    a, b = rouge_tokens("The cat sat on the mat."), rouge_tokens("the cat is on the MAT")
    assert a == ["the", "cat", "sat", "on", "the", "mat"]
    assert rouge_l_f(a, b) == pytest.approx(5 / 6)
    assert rouge_l_f(a, a) == 1.0 and rouge_l_f(a, ["dog"]) == 0.0 and rouge_l_f([], a) == 0.0
    # unequal lengths: LCS 2, P = 2/2, R = 2/4 → F = 2/3
    assert rouge_l_f(rouge_tokens("red apple"), rouge_tokens("a red big apple")) == pytest.approx(2 / 3)
    idx = RougeIndex(["write a poem about the sea", "list three colours"])
    score, which = idx.max_score("write a poem about the ocean")
    assert which == 0 and score == pytest.approx(
        rouge_l_f(rouge_tokens("write a poem about the sea"), rouge_tokens("write a poem about the ocean"))
    )
    assert idx.max_score("quantum chromodynamics") == (0.0, None)


# ---------------------------------------------------------------------------------------------
# The whole iteration with a scripted model

GOOD, BAD = "Here is a clear and correct answer", "Some rambling text that misses the point"
SEEDS = [SeedTask(f"Seed task number {i} asks something useful", "") for i in range(6)]


def make_generator(batches, quality=None, following=None, model="gen-0"):
    """batches: continuation texts handed out one per generation request, in order (last one repeats)."""
    state = {"i": 0}
    quality = quality or {GOOD: "9||fine", BAD: "4||weak"}
    following = following or {GOOD: "10||fine", BAD: "9||fine"}

    def answer(req, text):
        if "List of tasks:" in text:
            out = batches[min(state["i"], len(batches) - 1)]
            state["i"] += 1
            return out
        if "Rate the response's quality" in text:
            return next(v for k, v in quality.items() if f"Response: {k}" in text)
        if "how well the response follows" in text:
            return next(v for k, v in following.items() if f"Response: {k}" in text)
        return [GOOD, BAD]

    return ScriptedEngine(answer, model=model)


BATCH1 = (
    " Write a limerick about a forgetful robot.\n6. Input:\n<noinput>\n###\n"
    "7. Instruction: Draw a picture of a sunset over the hills.\n7. Input:\n<noinput>\n###\n"
    "8. Instruction: Classify the tone of this email as formal or casual.\n8. Input:\nHey, see you at 5!\n###\n"
    "9. Instruction: Write a limerick about a forgetful robot today.\n9. Input:\n<noinput>\n###\n"
    "10. Instruction: Explain why the sky"
)
BATCH2 = (
    " Give three tips for saving money on groceries.\n6. Input:\n<noinput>\n###\n"
    "7. Instruction: Classify the tone of this email as formal or casual.\n7. Input:\nDear Sir,\n###\n"
    "8. Instruction: Name"
)


def test_one_iteration_end_to_end():
    gen = make_generator([BATCH1, BATCH2])
    cfg = ISheepConfig(num_instructions=3, batch_size=1, max_batches=2)
    res = run_isheep(gen, SEEDS, cfg, iteration=0)
    kept_prompts = [r["prompt"][0]["content"] for r in res.sft]
    assert kept_prompts == [
        "Write a limerick about a forgetful robot.",
        "Classify the tone of this email as formal or casual.\nHey, see you at 5!",
        "Give three tips for saving money on groceries.",
    ]
    assert res.dropped["instruction_blacklisted_word"] == 1
    assert res.dropped["instruction_rouge_duplicate"] == 2  # near-copy in batch 1 and exact copy in batch 2
    assert res.dropped["instruction_last_chunk"] == 2
    # both responses scored; the bad one fails quality (4 ≤ 8) → one pair per prompt, 3 below threshold
    assert len(res.pairs) == 3 and res.dropped["below_threshold"] == 3
    assert_fits(res.pairs, "pairwise")
    assert_fits(res.sft, "binary")
    assert all(p["chosen"][0]["content"] == GOOD and p["rejected"][0]["content"] == BAD for p in res.pairs)
    assert res.pairs[0]["margin"] == (9 + 10) - (4 + 9)
    assert all(r["label"] is True and r["policy"] == "isheep:sft" for r in res.sft)
    meta = orjson.loads(res.sft[0]["meta"])
    assert meta["iteration"] == 0 and meta["quality_score"] == 9 and meta["following_score"] == 10
    assert meta["provenance"]["models"] == {"generator": "gen-0", "judge": "gen-0"}
    assert res.stats["generator_model"] == res.stats["judge_model"] == "gen-0"
    # iteration 0: the base model answers in raw-completion format
    assert all(r.kind == "completion" for r in gen.requests)


def test_dedup_spans_the_whole_iteration_and_previous_ones():
    gen = make_generator([BATCH2, BATCH2])
    res = run_isheep(
        gen,
        SEEDS,
        ISheepConfig(num_instructions=10, batch_size=1, max_batches=2),
        iteration=1,
        previous_instructions=["Give three tips for saving money on groceries."],
    )
    assert [r["prompt"][0]["content"] for r in res.sft] == [
        "Classify the tone of this email as formal or casual.\nDear Sir,"
    ]
    assert res.dropped["instruction_rouge_duplicate"] == 3


def test_judge_mode_base_uses_the_fixed_base_model_and_threshold_eight_fails():
    gen = make_generator([BATCH2], model="gen-2")
    base = make_generator(
        [BATCH2], quality={GOOD: "8||ok", BAD: "9||ok"}, following={GOOD: "9||", BAD: "9||"}, model="base"
    )
    res = run_isheep(
        gen,
        SEEDS,
        ISheepConfig(num_instructions=2, batch_size=1, max_batches=1),
        base=base,
        judge_mode="base",
        iteration=2,
    )
    # the base judge scores GOOD 8 (not > 8) and BAD 9/9 → BAD is the kept answer
    assert {r["completion"][0]["content"] for r in res.sft} == {BAD}
    assert len(res.pairs) == 2 and all(p["chosen"][0]["content"] == BAD for p in res.pairs)
    assert res.stats["judge_model"] == "base" and res.stats["judge_mode"] == "base"
    assert any("Rate the response" in (r.prompt or "") for r in base.requests)  # base model judges, completion format
    assert not any("Rate the response" in (r.messages or (("", ""),))[-1][1] for r in gen.requests if r.kind == "chat")
    # iteration ≥ 1: the current model answers in chat format
    assert any(r.kind == "chat" for r in gen.requests)


def test_unparseable_scores_and_garbage_generations_are_counted():
    gen = make_generator([BATCH2], quality={GOOD: "excellent", BAD: "4"})
    res = run_isheep(gen, SEEDS, ISheepConfig(num_instructions=2, batch_size=1, max_batches=1))
    assert res.sft == [] and res.dropped["quality_judge_unparseable"] == 2
    garbage = ScriptedEngine(lambda req, text: "lorem ipsum dolor")
    res = run_isheep(garbage, SEEDS, ISheepConfig(num_instructions=5, batch_size=3))
    assert res.sft == [] and res.pairs == []
    assert res.stats["instructions"] == 0
    # bounded: 4·ceil(5/3) = 8 batches of 3 prompts, each a single (dropped) last chunk
    assert res.dropped["instruction_last_chunk"] == 24
    dead = ScriptedEngine(lambda req, text: None)
    res = run_isheep(dead, SEEDS, ISheepConfig(num_instructions=2, batch_size=2, max_batches=3))
    assert res.sft == [] and res.dropped["generation_scripted_failure"] == 6


def test_bad_arguments():
    with pytest.raises(GeneratorError, match="base"):
        run_isheep(ScriptedEngine(), SEEDS, judge_mode="base")
    with pytest.raises(GeneratorError, match="no usable seed"):
        run_isheep(ScriptedEngine(), [])
