"""VLLMEngine without vLLM: the import fails cleanly; the param mapping and OpenAI-shaped bodies are pure
functions; the engine's batching, cache and failure isolation run against a stand-in ``vllm`` module."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace as NS

import pytest

from judges.cache import RequestCache
from judges.errors import EngineUnavailable
from judges.inprocess_engine import UnsupportedParam, VLLMEngine, map_params, to_openai_body
from judges.types import Request, Response


def test_missing_vllm_raises_engine_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(EngineUnavailable, match="vllm is not importable in this environment; use HTTPEngine"):
        VLLMEngine("some/model")


def test_chat_params_map_like_the_openai_server():
    m = map_params(
        "chat",
        {
            "model": "x",
            "temperature": 0.2,
            "max_completion_tokens": 9,
            "seed": 3,
            "logprobs": True,
            "top_logprobs": 5,
            "stop": ["\n"],
        },
    )
    assert m.sampling == {"temperature": 0.2, "max_tokens": 9, "seed": 3, "logprobs": 5, "stop": ["\n"]}
    assert m.logprobs and m.top_logprobs == 5 and not m.echo and m.structured is None
    assert "logprobs" not in map_params("chat", {"logprobs": False}).sampling


def test_completion_echo_with_logprobs_asks_for_prompt_logprobs():
    m = map_params("completion", {"max_tokens": 1, "logprobs": 2, "echo": True})
    assert m.sampling == {"max_tokens": 1, "logprobs": 2, "prompt_logprobs": 2} and m.echo
    assert map_params("completion", {"prompt_logprobs": 0}).sampling == {"prompt_logprobs": 0}


def test_structured_output_spellings_all_map():
    assert map_params("chat", {"guided_choice": ["A", "B"]}).structured == {"choice": ["A", "B"]}
    schema = {"type": "object"}
    fmt = {"type": "json_schema", "json_schema": {"name": "v", "schema": schema}}
    assert map_params("chat", {"response_format": fmt}).structured == {"json": schema}
    assert map_params("chat", {"structured_outputs": {"regex": "[AB]"}}).structured == {"regex": "[AB]"}
    assert map_params("chat", {"response_format": {"type": "text"}}).structured is None


def test_unknown_fields_are_refused_not_ignored():
    with pytest.raises(UnsupportedParam, match="tools"):
        map_params("chat", {"tools": [], "temperature": 0})
    with pytest.raises(UnsupportedParam):
        map_params("chat", {"response_format": {"type": "grammar"}})


def lp(logprob, rank, tok):
    return NS(logprob=logprob, rank=rank, decoded_token=tok)


def gen_output(text="B", ids=(7,), logprobs=None, prompt="Q", prompt_ids=(1, 2), prompt_logprobs=None):
    return NS(
        request_id="1",
        prompt=prompt,
        prompt_token_ids=list(prompt_ids),
        prompt_logprobs=prompt_logprobs,
        outputs=[NS(text=text, token_ids=list(ids), logprobs=logprobs, finish_reason="stop")],
    )


def test_chat_body_has_message_logprobs_and_usage():
    req = Request.chat("m", [{"role": "user", "content": "A or B?"}], logprobs=True, top_logprobs=2)
    out = gen_output(logprobs=[{7: lp(-0.1, 1, "B"), 8: lp(-2.5, 2, "A"), 9: lp(-4.0, 3, "C")}])
    body = to_openai_body(req, map_params("chat", req.param_dict), out, "m")
    resp = Response(ok=True, body=body)
    assert resp.texts() == ["B"] and resp.prompt_tokens == 2 and resp.completion_tokens == 1
    tok = body["choices"][0]["logprobs"]["content"][0]
    assert (tok["token"], tok["logprob"]) == ("B", -0.1)
    assert [t["token"] for t in tok["top_logprobs"]] == ["B", "A"]


def test_completion_echo_body_prepends_the_prompt_and_its_logprobs():
    req = Request.completion("m", "Q", max_tokens=1, logprobs=0, echo=True)
    out = gen_output(
        text="x",
        ids=(5,),
        logprobs=[{5: lp(-0.7, 1, "x")}],
        prompt="Q",
        prompt_ids=(1, 2),
        prompt_logprobs=[None, {2: lp(-1.5, 3, "Q")}],
    )
    body = to_openai_body(req, map_params("completion", req.param_dict), out, "m")
    ch = body["choices"][0]
    assert ch["text"] == "Qx"
    assert ch["logprobs"]["token_logprobs"] == [None, -1.5, -0.7]
    assert ch["logprobs"]["text_offset"][0] == 0 and len(ch["logprobs"]["tokens"]) == 3


class FakeLLM:
    """Stands in for vllm.LLM: answers with the prompt reversed; a prompt 'poison' breaks any batch it is in."""

    calls: list[int] = []

    def __init__(self, model, **kw):
        self.kw = kw

    def _answer(self, prompts, params):
        FakeLLM.calls.append(len(prompts))
        if any("poison" in p for p in prompts):
            raise RuntimeError("CUDA error: device-side assert")
        return [gen_output(text=p[::-1], ids=range(len(p)), prompt=p) for p in prompts]

    def generate(self, prompts, params, use_tqdm=False):
        return self._answer(prompts, params)

    def chat(self, conversations, params, use_tqdm=False):
        return self._answer([c[-1]["content"] for c in conversations], params)


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM = FakeLLM
    mod.SamplingParams = lambda **kw: kw
    monkeypatch.setitem(sys.modules, "vllm", mod)
    FakeLLM.calls = []
    return mod


def test_engine_isolates_bad_rows_and_uses_the_cache(fake_vllm, tmp_path):
    cache = RequestCache(tmp_path / "c.sqlite")
    eng = VLLMEngine("tiny", cache=cache, dtype="float32")
    assert eng._llm.kw == {"dtype": "float32"}
    batch = [
        Request.completion("tiny", "abc"),
        Request.chat("tiny", [{"role": "user", "content": "xyz"}]),
        Request.completion("tiny", "poison"),
        Request.completion("tiny", "q", tools=[]),
    ]
    out = eng.run(batch)
    assert out[0].texts() == ["cba"] and out[1].texts() == ["zyx"]
    assert (out[2].ok, out[2].error) == (False, "engine_error") and "CUDA" in out[2].detail
    assert (out[3].ok, out[3].error) == (False, "bad_params")
    assert eng.stats.failures == 2 and eng.stats.completion_tokens == 6
    calls_before = len(FakeLLM.calls)
    again = eng.run(batch[:2])
    assert all(r.cached for r in again) and len(FakeLLM.calls) == calls_before
