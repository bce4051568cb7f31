import pytest

from judges.parsing import is_refusal, parse_ranking, parse_score, parse_verdict


@pytest.mark.parametrize(
    "text,letter",
    [
        ("A", "A"),
        ("B", "B"),
        ("**A**", "A"),
        ("Response A", "A"),
        ("A.", "A"),
        (" B\n", "B"),
        ("(B)", "B"),
        ("[A]", "A"),
        ("Answer: b", "B"),
        ("The answer is B", "B"),
        ("Verdict: **Response B**", "B"),
        ("I think Response B is better.", "B"),
        ("Response A is better than Response B", "A"),
        ("B, because A is verbose", "B"),
        ("A: it is correct", "A"),
        ("Final answer: A", "A"),
    ],
)
def test_verdict_letters(text, letter):
    got = parse_verdict(text)
    assert got.ok and got.value == letter, got


@pytest.mark.parametrize(
    "text,reason",
    [
        ("A or B", "judge_unparseable"),
        ("A/B", "judge_unparseable"),
        ("A and B are equally good", "judge_unparseable"),
        ("Both are fine", "judge_unparseable"),
        ("Tie", "judge_unparseable"),
        ("AB", "judge_unparseable"),
        ("a good answer would mention Paris", "judge_unparseable"),
        ("Apples are red", "judge_unparseable"),
        ("Response A is better. Actually Response B is better.", "A"),  # first decisive statement wins
        ("", "empty_output"),
        ("  \n", "empty_output"),
        ("I'm sorry, I can't compare these.", "refused"),
        ("I cannot help with that", "refused"),
        ("As an AI, I must remain neutral", "refused"),
    ],
)
def test_verdict_rejections(text, reason):
    got = parse_verdict(text)
    if reason in ("A", "B"):
        assert got.ok and got.value == reason
    else:
        assert not got.ok and got.reason == reason and got.value is None, got


def test_verdict_explicit_statement_with_both_letters_is_ambiguous():
    got = parse_verdict("I prefer Response A. The winner is Response B.")
    assert not got.ok and got.reason == "judge_unparseable" and "ambiguous" in got.detail


def test_verdict_truncated_only_without_a_letter():
    assert parse_verdict("A", finish_reason="length").value == "A"  # max_tokens=1 always ends on length
    got = parse_verdict("Looking at both responses caref", finish_reason="length")
    assert got.reason == "truncated"


@pytest.mark.parametrize(
    "text,value",
    [
        ("8", 8),
        ("8/10", 8),
        ("Score: 8", 8),
        ("score = 3", 3),
        ("Rating: **9**", 9),
        ("eight", 8),
        ("Score: eight", 8),
        ("Score: 8/10", 8),
        ("8 out of 10", 8),
        ("7 - good answer", 7),
        ("8 || concise", 8),
        ("I would rate it 6 overall", 6),
        ("The response deserves a 7.", 7),
        ("7.5", 8),
        ("10", 10),
        ("1", 1),
        ("  **9**||clear", 9),
        ("Explanation first.\n6\n", 6),
    ],
)
def test_score_values(text, value):
    got = parse_score(text, (1, 10))
    assert got.ok and got.value == value, got


@pytest.mark.parametrize(
    "text,reason",
    [
        ("11", "score_out_of_scale"),
        ("0", "score_out_of_scale"),
        ("-3", "score_out_of_scale"),
        ("4/5", "score_out_of_scale"),
        ("Score: 42", "score_out_of_scale"),
        ("twelve", "score_out_of_scale"),
        ("7-8", "judge_unparseable"),
        ("7 to 8", "judge_unparseable"),
        ("good", "judge_unparseable"),
        ("", "empty_output"),
        ("I'm sorry, I cannot rate this.", "refused"),
    ],
)
def test_score_rejections(text, reason):
    got = parse_score(text, (1, 10))
    assert not got.ok and got.reason == reason and got.value is None, got


def test_score_other_scales_and_words_switch():
    assert parse_score("4/5", (1, 5)).value == 4
    assert parse_score("6", (1, 5)).reason == "score_out_of_scale"
    assert parse_score("eight", (1, 10), words=False).reason == "judge_unparseable"
    assert parse_score("7.5", (1, 10), round_to_int=False).value == 7.5


def test_score_cut_mid_number_is_truncated():
    # "Score: 1" may be the first token of "Score: 10": with finish_reason=length it is not trusted.
    assert parse_score("Score: 1", (1, 10), finish_reason="length").reason == "truncated"
    assert parse_score("Score: 1 || short", (1, 10), finish_reason="length").value == 1
    assert parse_score("Score: 1", (1, 10), finish_reason="stop").value == 1


@pytest.mark.parametrize(
    "text,order",
    [
        ("[2] > [1] > [3]", [2, 1, 3]),
        ("2,1,3", [2, 1, 3]),
        ("2 > 1 > 3", [2, 1, 3]),
        ("2, 1, 3", [2, 1, 3]),
        ("Ranking: [3] > [1] > [2] since 3 is best", [3, 1, 2]),
        ("**[1]** > **[3]** > **[2]**", [1, 3, 2]),
        ("[1]>[2]>[3]", [1, 2, 3]),
        ("3 → 2 → 1", [3, 2, 1]),
    ],
)
def test_ranking_permutations(text, order):
    got = parse_ranking(text, 3)
    assert got.ok and got.value == order, got


@pytest.mark.parametrize(
    "text,reason,detail",
    [
        ("[2] > [2] > [3]", "not_a_permutation", "duplicates=[2]"),
        ("[2] > [1]", "not_a_permutation", "missing=[3]"),
        ("[4] > [1] > [2]", "not_a_permutation", "unknown=[4]"),
        ("[2] > [1] > [3] > [1]", "not_a_permutation", "duplicates=[1]"),
        ("no idea", "judge_unparseable", ""),
        ("", "empty_output", ""),
        ("I'm sorry, but I won't rank these.", "refused", ""),
    ],
)
def test_ranking_rejections(text, reason, detail):
    got = parse_ranking(text, 3)
    assert not got.ok and got.reason == reason and detail in got.detail, got


def test_ranking_cut_short_is_truncated():
    assert parse_ranking("[2] > [1] >", 3, finish_reason="length").reason == "truncated"
    assert parse_ranking("[2] > [1]", 3, finish_reason="length").reason == "truncated"
    assert parse_ranking("[2] > [1] > [3] and then", 3, finish_reason="length").value == [2, 1, 3]


def test_refusal_only_at_the_start():
    assert is_refusal("I'm sorry, but no.")
    assert not is_refusal("A. Response B says 'I cannot help', which is unhelpful.")
    assert parse_verdict("A. Response B says 'I cannot help'").value == "A"
