import pytest

from judges.generators.common import (
    CostMeter,
    GeneratorError,
    GeneratorResult,
    as_messages,
    provenance,
    same_model,
    template_id,
)
from judges.types import Request
from tests.judges.generators.scripted import ScriptedEngine


def test_provenance_names_models_and_templates():
    pol, judge = ScriptedEngine(model="pol", revision="r1"), ScriptedEngine(model="judge")
    p = provenance(
        "x",
        round=2,
        models={"policy": pol, "judge": judge, "ref": None},
        template_ids={"t": "a@12345678"},
        sampling={"temperature": 1.0},
        extra=1,
    )
    assert p["models"] == {"policy": "pol@r1", "judge": "judge", "ref": None}
    assert p["round"] == 2 and p["method"] == "x" and p["extra"] == 1 and p["sampling"]["temperature"] == 1.0
    assert same_model(pol, ScriptedEngine(model="pol", revision="r1")) and not same_model(pol, judge)


def test_template_id_changes_with_text():
    a, b = template_id("n", "hello"), template_id("n", "hello!")
    assert a.startswith("n@") and len(a.split("@")[1]) == 8 and a != b


def test_cost_meter_counts_deltas_once_per_engine():
    eng = ScriptedEngine(lambda req, text: "one two three")
    eng.run([Request.chat("m", [{"role": "user", "content": "before"}])])  # before the meter: not counted
    meter = CostMeter({"policy": eng, "judge": eng, "none": None})
    eng.run([Request.chat("m", [{"role": "user", "content": "a b"}])] * 2)
    cost = meter.finish(kept=4)
    assert list(cost["engines"]) == ["policy"]
    assert cost["total"]["requests"] == 2 and cost["total"]["completion_tokens"] == 6
    assert cost["tokens_per_kept"] == (2 * 2 + 6) / 4
    assert meter.finish(kept=0)["tokens_per_kept"] is None


def test_as_messages():
    assert as_messages("hi") == [{"role": "user", "content": "hi"}]
    assert as_messages([{"role": "user", "content": "x", "extra": 1}]) == [{"role": "user", "content": "x"}]
    with pytest.raises(GeneratorError):
        as_messages(42)


def test_drops_are_rejected_rows_and_diagnostics_ride_on_them():
    res = GeneratorResult("m")
    res.drop("a", 2)
    res.drop("b", diagnostic={"why": "scored low"})
    res.drop_counts({"c": 1, "a": 1})
    assert res.dropped == {"a": 3, "b": 1, "c": 1} and res.diagnostics == [{"why": "scored low"}]
    assert [r.step for r in res.rejects] == ["m", "m", "diagnostic:m", "m", "m"]
    with pytest.raises(ValueError, match="exactly one"):
        res.drop("b", 2, diagnostic={})
