"""Every generator against the real HTTP engine and a flaky fake OpenAI server whose answers are
nonsense for these methods: nothing raises, every failure is a counted drop, any row produced fits
its canonical schema."""

import pytest

from judges.generators.cyclealign import CycleAlignConfig, run_cyclealign
from judges.generators.difficulty import DifficultyStep
from judges.generators.isheep import ISheepConfig, SeedTask, run_isheep
from judges.generators.multifaceted import run_multifaceted
from judges.generators.scir import run_scir
from judges.http_engine import HTTPEngine
from schemas import records
from tests.judges.generators.scripted import assert_fits, bag_of_words_embed


@pytest.fixture
def engine(make_fake_server):
    srv = make_fake_server(fault_rate=0.3, faults=("http_500", "garbage", "truncated"))
    eng = HTTPEngine(srv.url, "fake-judge", max_retries=1, backoff_base_s=0.0, backoff_max_s=0.0, timeout_s=5)
    yield eng
    eng.close()


def _check(res):
    assert sum(res.dropped.values()) > 0
    assert_fits(res.pairs, "pairwise")
    assert_fits(res.listwise, "listwise")
    assert_fits(res.sft, "binary")


def test_generators_survive_a_flaky_server(engine):
    _check(
        run_cyclealign(
            engine, engine, ["Tell me a joke.", "What is 2+2?"], CycleAlignConfig(rounds=1), embed=bag_of_words_embed
        )
    )
    _check(run_scir(engine, engine, ["Tell me a joke."], iteration=1))
    _check(
        run_isheep(
            engine,
            [SeedTask(f"Seed task {i} about something") for i in range(5)],
            ISheepConfig(num_instructions=2, batch_size=2, max_batches=2),
        )
    )
    _check(run_multifaceted(engine, ["Plan a picnic."]))
    pair = records.pairwise(
        [{"role": "user", "content": "Hi"}],
        [{"role": "assistant", "content": "a"}],
        [{"role": "assistant", "content": "b"}],
    )
    step = DifficultyStep(engine=engine)
    step(records.to_table([pair], "pairwise"), "pairwise")
    assert step.counts.reasons == {"difficulty_logprob_failed": 1}  # the fake has no /tokenize
    assert engine.stats.requests > 0
