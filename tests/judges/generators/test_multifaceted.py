import json
from collections import defaultdict

import orjson
import pytest

from judges.generators.common import GeneratorError
from judges.generators.multifaceted import (
    MultifacetedConfig,
    load_taxonomy,
    preference_set_schema,
    run_multifaceted,
    sets_distinct,
    validate_preference_set,
)
from tests.judges.generators.scripted import ScriptedEngine, assert_fits, fenced

TAX = load_taxonomy()


def test_bundled_taxonomy_is_four_by_five():
    assert sorted(TAX.dimensions) == ["Background knowledge", "Harmlessness", "Informativeness", "Style"]
    assert all(len(s) == 5 for s in TAX.dimensions.values())
    assert "Tone" in TAX.dimensions["Style"] and "Expert" in TAX.dimensions["Background knowledge"]
    assert TAX.check("Harmlessness", "Safety") and not TAX.check("Style", "Safety")
    assert "Application-ready" in TAX.examples[("Informativeness", "Practicality")]


def test_malformed_taxonomy_files(tmp_path):
    bad = tmp_path / "t.json"
    bad.write_text("{nope")
    with pytest.raises(GeneratorError, match="not JSON"):
        load_taxonomy(bad)
    bad.write_text(json.dumps({"ids": ["a"], "labels": ["a"]}))
    with pytest.raises(GeneratorError, match="arrays"):
        load_taxonomy(bad)
    bad.write_text(json.dumps({"ids": ["a"], "labels": ["a"], "parents": [""]}))
    with pytest.raises(GeneratorError, match="no dimension"):
        load_taxonomy(bad)
    with pytest.raises(GeneratorError, match="not found"):
        load_taxonomy(tmp_path / "missing.json")


def pset(style="Clarity", bk="Novice", inf="Depth", harm="Safety", tag=""):
    picks = {"Style": style, "Background knowledge": bk, "Informativeness": inf, "Harmlessness": harm}
    return {
        "preferences": [
            {
                "dimension": d,
                "subdimension": s,
                "preference": f"{s} first{tag}",
                "description": f"The reply favours {s.lower()} ({d}){tag}.",
            }
            for d, s in picks.items()
        ]
    }


def test_distinct_rule_counts_dimensions():
    a = validate_preference_set(pset(), TAX)[0]
    assert not sets_distinct(a, validate_preference_set(pset(tag=" v2"), TAX)[0])  # same subdims, other words
    assert not sets_distinct(a, validate_preference_set(pset(style="Tone"), TAX)[0])  # 1 dimension differs
    assert sets_distinct(a, validate_preference_set(pset(style="Tone", bk="Expert"), TAX)[0])
    assert sets_distinct(a, validate_preference_set(pset(style="Tone"), TAX)[0], min_dims=1)


def test_validation_reasons():
    assert validate_preference_set(pset(), TAX)[1] is None
    wrong_sub = pset(style="Safety")  # a real subdimension, but of another dimension
    assert validate_preference_set(wrong_sub, TAX) == (None, "prefset_unknown_subdimension")
    twice = pset()
    twice["preferences"][3] = dict(twice["preferences"][0])  # Style twice, no Harmlessness
    assert validate_preference_set(twice, TAX) == (None, "prefset_wrong_dimensions")
    empty = pset()
    empty["preferences"][1]["description"] = "  "
    assert validate_preference_set(empty, TAX) == (None, "prefset_schema")
    assert validate_preference_set({"preferences": "x"}, TAX) == (None, "prefset_schema")
    schema = preference_set_schema(TAX)
    assert schema["properties"]["preferences"]["minItems"] == 4


# ---------------------------------------------------------------------------------------------
# The whole method with a scripted model


def make_engine(script):
    """script: instruction → list of preference-set answers (strings/dicts) handed out in order."""
    calls = defaultdict(int)

    def answer(req, text):
        if "Answer with JSON only" in text:
            ins = fenced(text, "USER REQUEST")[0]
            seq = script[ins]
            got = seq[min(calls[ins], len(seq) - 1)]
            calls[ins] += 1
            return got if isinstance(got, str) else json.dumps(got)
        if "<<<BEGIN PREFERENCES>>>" in text:
            return "You are a guide. " + " ".join(fenced(text, "PREFERENCES")[0].split("\n"))
        system = req.messages[0][1]
        return f"Reply to [{text}] under [{system}]"

    return ScriptedEngine(answer, model="gen")


A, B, C = pset(), pset(style="Tone", bk="Expert"), pset(inf="Creativity", harm="Morality")
DUP = pset(tag=" again")  # same subdimensions as A


def test_three_distinct_sets_system_messages_and_sibling_pairs():
    script = {"Plan a picnic.": [A, DUP, "{broken", B, C], "Explain recursion.": [C, pset(style="Safety"), A, B]}
    eng = make_engine(script)
    res = run_multifaceted(eng, ["Plan a picnic.", "Explain recursion."])
    assert res.dropped["prefset_duplicate"] == 1
    assert res.dropped["prefset_invalid_json"] == 1
    # "Safety" is a subdimension, but of Harmlessness: the schema's enum lets it through, our check does not
    assert res.dropped["prefset_unknown_subdimension"] == 1
    assert res.stats["preference_sets"] == 6 and len(res.sft) == 6
    # every instruction got 3 pairwise-distinct sets
    by_ins = defaultdict(list)
    for r in res.sft:
        by_ins[r["prompt"][1]["content"]].append(orjson.loads(r["meta"])["preference_set"])
    for sets in by_ins.values():
        assert len(sets) == 3 and all(sets_distinct(a, b) for i, a in enumerate(sets) for b in sets[i + 1 :])
    # one pair per instruction: prompt = [its system message, instruction]; chosen written for it; rejected for a sibling
    assert len(res.pairs) == 2
    assert_fits(res.pairs, "pairwise")
    assert_fits(res.sft, "binary")
    for p in res.pairs:
        system, ins = p["prompt"][0]["content"], p["prompt"][1]["content"]
        meta = orjson.loads(p["meta"])
        assert p["prompt"][0]["role"] == "system" and meta["system"] == system
        assert p["chosen"][0]["content"] == f"Reply to [{ins}] under [{system}]"
        assert p["rejected"][0]["content"] == f"Reply to [{ins}] under [{meta['rejected_system']}]"
        assert meta["rejected_system"] != system and meta["rejected_set_index"] != meta["set_index"]
        assert meta["provenance"]["template_ids"]["preference_set"].startswith("multifaceted_preference_set@")
    # the sets already accepted are shown to the model on retries (so it can steer away)
    retry = [r for r in eng.requests if "Profiles already written" in r.messages[-1][1]]
    assert retry and "Style=Clarity" in retry[0].messages[-1][1]
    all_pairs = run_multifaceted(
        make_engine(script), ["Plan a picnic.", "Explain recursion."], MultifacetedConfig(pairs_per_instruction="all")
    )
    assert len(all_pairs.pairs) == 6


def test_retries_are_bounded_and_short_instructions_give_no_pairs():
    eng = make_engine({"Plan a picnic.": [A, DUP]})  # after A, only duplicates
    res = run_multifaceted(eng, ["Plan a picnic."], MultifacetedConfig(sets_per_instruction=3))
    assert res.dropped["prefset_duplicate"] == 5  # 2·K = 6 calls, 1 accepted
    assert res.dropped["instruction_short_of_sets"] == 1 and res.dropped["instruction_no_sibling"] == 1
    assert len(res.sft) == 1 and res.pairs == []
    assert sum("Answer with JSON only" in r.messages[-1][1] for r in eng.requests) == 6


def test_nothing_parseable_is_all_counted():
    eng = ScriptedEngine(lambda req, text: "no idea")
    res = run_multifaceted(eng, ["Plan a picnic.", "Explain recursion."])
    assert res.pairs == [] and res.sft == []
    assert res.dropped["prefset_invalid_json"] == 12  # 2 instructions × 2·K calls
    dead = ScriptedEngine(lambda req, text: None)
    res = run_multifaceted(dead, ["Plan a picnic."])
    assert res.dropped["prefset_scripted_failure"] == 6


def test_bad_instructions():
    with pytest.raises(GeneratorError, match="no instructions"):
        run_multifaceted(make_engine({}), [])
    eng = make_engine({"Plan a picnic.": [A, B, C]})
    res = run_multifaceted(
        eng,
        [
            [{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}],
            [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
            "  ",
            "Plan a picnic.",
        ],
    )
    assert res.dropped["instruction_has_system"] == 1 and res.dropped["instruction_multi_turn"] == 1
    assert res.dropped["instruction_empty"] == 1 and len(res.sft) == 3
