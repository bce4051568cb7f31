"""The engine factory, the notes a step leaves for the driver, the generator registry and prompt sources."""

import pyarrow as pa
import pytest

from judges.engines import Endpoint, EngineSpec, close_engines
from judges.errors import BudgetExhausted, EngineError, EngineUnreachable, JudgeError
from judges.generators import GENERATORS
from judges.generators.common import GeneratorError
from judges.generators.prompts import distinct_prompts
from judges.generators.registry import check_sources, endpoints, generator, settings
from judges.judge_step import JudgeStep
from judges.notes import Notes, StepFailed
from judges.vllm_env import VllmEnvError, VllmServeError
from schemas.errors import PrefmillError
from tests.judges.fixtures import pair_rows


def test_one_probe_and_one_engine_per_endpoint_all_sharing_cache_and_budget(make_fake_server, tmp_path):
    srv = make_fake_server(models=("pol", "ref"))
    spec = EngineSpec(
        {
            "policy": Endpoint(srv.url, "pol"),
            "judge": Endpoint(srv.url + "/", "pol"),
            "reference": Endpoint(srv.url, "ref"),
        },
        cache_path=str(tmp_path / "c.sqlite"),
        max_requests=5,
    ).probed()
    assert srv.counts.models_calls == 2  # policy and judge are the same (url, model)
    assert {r: ep.revision for r, ep in spec.endpoints.items()} == {
        "policy": "/models/pol@rev1",
        "judge": "/models/pol@rev1",
        "reference": "/models/ref@rev1",
    }
    engines = spec.build()
    try:
        assert engines["policy"] is engines["judge"] and engines["reference"] is not engines["policy"]
        assert engines["policy"].cache is engines["reference"].cache is not None
        assert engines["policy"].budget is engines["reference"].budget
        assert engines["reference"].revision == "/models/ref@rev1"
    finally:
        close_engines(engines)


def test_probe_errors_are_clear(make_fake_server):
    srv = make_fake_server()
    with pytest.raises(EngineUnreachable, match="'nope' is not listed"):
        EngineSpec({"judge": Endpoint(srv.url, "nope")}).probed()
    with pytest.raises(EngineUnreachable, match="cannot reach"):
        EngineSpec({"judge": Endpoint("http://127.0.0.1:9", "m")}, engine_options={"max_retries": 0}).probed()


def test_error_classes_are_prefmill_errors():
    for cls in (
        EngineError,
        EngineUnreachable,
        JudgeError,
        BudgetExhausted,
        GeneratorError,
        VllmEnvError,
        VllmServeError,
    ):
        assert issubclass(cls, PrefmillError), cls
    assert EngineUnreachable.transient and not JudgeError.transient


def test_notes_carry_the_fatal_error_back_as_itself(tmp_path):
    notes = Notes(tmp_path / "n")
    assert notes.fatal() is None and notes.read() == {}
    notes.write("b", {"rows": 2})
    notes.write("a", {"rows": 1})
    notes.fail(EngineUnreachable("cannot reach x"))
    notes.fail(JudgeError("later"))  # the first error wins
    assert list(notes.read()) == ["a", "b"]
    err = notes.fatal()
    assert type(err) is EngineUnreachable and str(err) == "cannot reach x"

    class Odd(PrefmillError):
        def __init__(self, a, b):  # does not round-trip through pickle
            super().__init__(f"{a}-{b}")

    other = Notes(tmp_path / "m")
    other.fail(Odd(1, 2))
    assert isinstance(other.fatal(), StepFailed) and str(other.fatal()) == "Odd: 1-2"


class _Gone:
    model, revision = "m", ""

    def __init__(self):
        from judges.types import EngineStats

        self.stats = EngineStats()

    def run(self, requests):
        raise EngineUnreachable("cannot reach the LLM server")


def test_judge_step_without_notes_raises_with_notes_stops_and_tells(tmp_path):
    table = pair_rows(3)
    bare = JudgeStep(engine=_Gone())
    with pytest.raises(EngineUnreachable):
        bare(table, "pairwise")
    noted = JudgeStep(engine=_Gone(), notes=str(tmp_path / "n"))
    first = noted(table, "pairwise")
    again = noted(table, "pairwise")  # later batches are not sent
    assert set(first.rejected.column("reason").to_pylist()) == {"engine_error"}
    assert again.kept.num_rows == 3 and first.rejected.column("run_id").null_count == 3
    assert type(Notes(tmp_path / "n").fatal()) is EngineUnreachable


def test_generators_register_roles_shapes_and_settings():
    assert set(GENERATORS.names()) == {"cyclealign", "scir", "isheep", "multifaceted"}
    scir = generator("scir")
    assert scir.roles == ("policy", "judge", "reference") and scir.shapes == ("pairwise",)
    assert "arxiv:2502.08922" in scir.tags and scir.summary
    with pytest.raises(GeneratorError, match="unknown method 'nope'; known: "):
        generator("nope")
    with pytest.raises(GeneratorError, match="unknown scir setting"):
        settings(scir, {"nope": 1})
    assert settings(generator("isheep"), {}, limit=5).num_instructions == 5  # its unit is instructions
    assert settings(generator("isheep"), {"num_instructions": 9}, limit=5).num_instructions == 9
    with pytest.raises(GeneratorError, match="takes no --judge"):
        endpoints(generator("multifaceted"), "http://x", "m", judge_url="http://y")
    eps = endpoints(scir, "http://x", "m", reference_model="ref")
    assert eps["reference"] == Endpoint("http://x", "ref")
    with pytest.raises(GeneratorError, match="needs prompts"):
        check_sources(scir, None, None, None, None)
    check_sources(generator("isheep"), None, None, None, None)  # bundled seeds
    with pytest.raises(GeneratorError, match="--seeds"):
        check_sources(scir, None, None, "seeds.jsonl", None)


def test_distinct_prompts_first_occurrence_across_tables_up_to_a_limit():
    def t(ids):
        return pa.table({"prompt_id": ids, "prompt": [[{"role": "user", "content": i}] for i in ids]})

    tables = [t(["a", "b", "a", "c"]), t(["c", "d", "b", "e"])]
    got = [p[0]["content"] for p in distinct_prompts(tables)]
    assert got == ["a", "b", "c", "d", "e"]
    assert [p[0]["content"] for p in distinct_prompts(tables, limit=4)] == ["a", "b", "c", "d"]

    def never():
        yield t(["x"])
        raise AssertionError("read past the limit")

    assert len(distinct_prompts(never(), limit=1)) == 1
