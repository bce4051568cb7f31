"""Optional engine: vLLM's in-process ``LLM``, where ``vllm`` is importable (never in prefmill's .venv:
vLLM pins torch/transformers/fastapi versions that cannot live beside Prefect, see DESIGN §6).

It produces OpenAI-shaped bodies (choices[].message/text, logprobs, usage) so primitives work the
same on either engine. The mapping functions are pure and tested without vLLM.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from judges.cache import RequestCache
from judges.cost import Budget, Price
from judges.errors import EngineUnavailable
from judges.types import EngineStats, Request, Response

# OpenAI/vLLM body fields that map 1:1 onto SamplingParams.
_DIRECT = (
    "n",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "max_tokens",
    "min_tokens",
    "stop",
    "stop_token_ids",
    "ignore_eos",
    "skip_special_tokens",
    "include_stop_str_in_output",
    "prompt_logprobs",
)
_IGNORED = ("model", "user", "stream", "add_generation_prompt")  # meaningless in-process or handled elsewhere
_GUIDED = {"guided_choice": "choice", "guided_json": "json", "guided_regex": "regex", "guided_grammar": "grammar"}


class UnsupportedParam(ValueError):
    """A request field this engine cannot honour: that row fails, the others run."""


@dataclass
class Mapped:
    sampling: dict[str, Any] = field(default_factory=dict)  # SamplingParams kwargs
    structured: dict[str, Any] | None = None  # StructuredOutputsParams kwargs
    echo: bool = False  # completions: prepend the prompt (and its logprobs) to the output
    logprobs: bool = False  # return logprobs in the OpenAI shape of the request's kind
    top_logprobs: int = 0


def map_params(kind: str, params: dict[str, Any]) -> Mapped:
    """OpenAI-compatible body fields → SamplingParams / structured-output kwargs (as vLLM's server does)."""
    m, p = Mapped(), dict(params)
    for k in _DIRECT:
        if k in p:
            m.sampling[k] = p.pop(k)
    if kind == "chat":
        if "max_completion_tokens" in p:
            m.sampling["max_tokens"] = p.pop("max_completion_tokens")
        m.logprobs = bool(p.pop("logprobs", False))
        m.top_logprobs = int(p.pop("top_logprobs", 0) or 0)
        if m.logprobs:
            m.sampling["logprobs"] = m.top_logprobs
    else:
        lp = p.pop("logprobs", None)
        m.echo = bool(p.pop("echo", False))
        if lp is not None:
            m.logprobs, m.top_logprobs = True, int(lp)
            m.sampling["logprobs"] = int(lp)
            if m.echo:
                m.sampling["prompt_logprobs"] = int(lp)
    structured = dict(p.pop("structured_outputs", None) or {})
    for k, name in _GUIDED.items():
        if k in p:
            structured[name] = p.pop(k)
    fmt = p.pop("response_format", None)
    if fmt:
        if fmt.get("type") == "json_schema":
            structured["json"] = (fmt.get("json_schema") or {}).get("schema")
        elif fmt.get("type") == "json_object":
            structured["json_object"] = True
        elif fmt.get("type") != "text":
            raise UnsupportedParam(f"response_format type {fmt.get('type')!r}")
    m.structured = structured or None
    for k in _IGNORED:
        p.pop(k, None)
    if p:
        raise UnsupportedParam(f"unsupported request fields for the in-process engine: {sorted(p)}")
    return m


def _lp(entry: Any) -> float:
    return float(getattr(entry, "logprob", entry))


def _decoded(entry: Any, token_id: int) -> str:
    return getattr(entry, "decoded_token", None) or str(token_id)


def _token_logprobs(token_ids: list[int], lps: list[dict] | None, top: int) -> list[tuple[str, float, list]]:
    """Per generated token: (decoded token, its logprob, [(alt token, logprob), ...] best first)."""
    out = []
    for tid, cand in zip(token_ids, lps or []):
        chosen = cand.get(tid)
        ranked = sorted(cand.items(), key=lambda kv: getattr(kv[1], "rank", 0) or 0)[:top]
        out.append(
            (
                _decoded(chosen, tid),
                _lp(chosen) if chosen is not None else float("nan"),
                [(_decoded(v, k), _lp(v)) for k, v in ranked],
            )
        )
    return out


def _prompt_logprobs(pl: list | None) -> list | None:
    """vLLM's own JSON shape: [None, {"<token id>": {"logprob", "rank", "decoded_token"}}, ...]."""
    if pl is None:
        return None
    return [
        None
        if d is None
        else {
            str(k): {
                "logprob": _lp(v),
                "rank": getattr(v, "rank", None),
                "decoded_token": getattr(v, "decoded_token", None),
            }
            for k, v in d.items()
        }
        for d in pl
    ]


def to_openai_body(req: Request, m: Mapped, out: Any, model: str) -> dict:
    """A vLLM RequestOutput (duck-typed) → the JSON body the OpenAI-compatible server would return."""
    chat = req.kind == "chat"
    prompt_ids = list(getattr(out, "prompt_token_ids", None) or [])
    choices, completion_tokens = [], 0
    for i, o in enumerate(out.outputs):
        ids = list(o.token_ids)
        completion_tokens += len(ids)
        toks = _token_logprobs(ids, o.logprobs, m.top_logprobs) if m.logprobs else None
        if chat:
            ch: dict[str, Any] = {
                "index": i,
                "message": {"role": "assistant", "content": o.text},
                "finish_reason": o.finish_reason,
            }
            if toks is not None:
                ch["logprobs"] = {
                    "content": [
                        {
                            "token": t,
                            "logprob": lp,
                            "bytes": list(t.encode()),
                            "top_logprobs": [{"token": a, "logprob": b, "bytes": list(a.encode())} for a, b in alts],
                        }
                        for t, lp, alts in toks
                    ]
                }
        else:
            text = ((out.prompt or "") + o.text) if m.echo else o.text
            ch = {"index": i, "text": text, "finish_reason": o.finish_reason}
            if toks is not None:
                pre: list[tuple[Any, Any, list]] = []
                if m.echo:  # the prompt's tokens come first, the very first without a logprob
                    for d, tid in zip(out.prompt_logprobs or [], prompt_ids):
                        e = (d or {}).get(tid)
                        pre.append((_decoded(e, tid), None if e is None else _lp(e), []))
                seq = pre + toks
                offs, pos = [], 0
                for t, _, _ in seq:
                    offs.append(pos)
                    pos += len(t)
                ch["logprobs"] = {
                    "tokens": [t for t, _, _ in seq],
                    "token_logprobs": [lp for _, lp, _ in seq],
                    "top_logprobs": [dict(alts) or None for _, _, alts in seq],
                    "text_offset": offs,
                }
            if "prompt_logprobs" in m.sampling and not m.echo:
                ch["prompt_logprobs"] = _prompt_logprobs(out.prompt_logprobs)
        choices.append(ch)
    return {
        "id": f"inproc-{getattr(out, 'request_id', '')}",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": len(prompt_ids),
            "completion_tokens": completion_tokens,
            "total_tokens": len(prompt_ids) + completion_tokens,
        },
    }


def _import_vllm():
    try:
        import vllm
    except ImportError as exc:
        raise EngineUnavailable(
            f"vllm is not importable in this environment; use HTTPEngine against `prefmill llm serve` ({exc})"
        ) from exc
    return vllm


class VLLMEngine:
    """``vllm.LLM`` in this process. GPU-seconds: each generate call's wall time split evenly over its rows."""

    def __init__(
        self,
        model_path: str,
        *,
        revision: str = "",
        cache: RequestCache | None = None,
        budget: Budget | None = None,
        price: Price | None = None,
        **llm_kwargs: Any,
    ):
        self._vllm = _import_vllm()
        self.model = model_path
        self.revision = revision or model_path
        self.cache, self.budget, self.price = cache, budget, price
        self.stats = EngineStats()
        self._lock = threading.Lock()  # LLM is not re-entrant
        self._llm = self._vllm.LLM(model=model_path, **llm_kwargs)

    @property
    def budget_exhausted(self) -> bool:
        return self.budget is not None and self.budget.exhausted

    def _sampling_params(self, m: Mapped):
        sp = dict(m.sampling)
        if m.structured:
            try:
                from vllm.sampling_params import StructuredOutputsParams  # vLLM >= 0.10.2

                sp["structured_outputs"] = StructuredOutputsParams(**m.structured)
            except ImportError:
                from vllm.sampling_params import GuidedDecodingParams

                sp["guided_decoding"] = GuidedDecodingParams(**m.structured)
        return self._vllm.SamplingParams(**sp)

    def _generate(self, reqs: list[Request], sps: list) -> list:
        chats = [i for i, r in enumerate(reqs) if r.kind == "chat"]
        comps = [i for i, r in enumerate(reqs) if r.kind != "chat"]
        outs: list = [None] * len(reqs)
        if chats:
            res = self._llm.chat(
                [[{"role": a, "content": c} for a, c in reqs[i].messages or ()] for i in chats],
                [sps[i] for i in chats],
                use_tqdm=False,
            )
            for i, o in zip(chats, res):
                outs[i] = o
        if comps:
            for i, o in zip(
                comps, self._llm.generate([reqs[i].prompt for i in comps], [sps[i] for i in comps], use_tqdm=False)
            ):
                outs[i] = o
        return outs

    def run(
        self, requests: Iterable[Request], on_result: Callable[[int, Response], None] | None = None
    ) -> list[Response]:
        requests = list(requests)
        self.stats.requests += len(requests)
        keys = [r.key(self.revision) for r in requests]
        hits = self.cache.get_many(keys) if self.cache is not None else {}
        results: list[Response | None] = [
            Response(ok=True, body=hits[k], cached=True) if k in hits else None for k in keys
        ]
        self.stats.cache_hits += sum(r is not None for r in results)
        todo, mapped, sps = [], [], []
        for i, r in enumerate(requests):
            if results[i] is not None:
                continue
            self.stats.cache_misses += 1
            if self.budget is not None and not self.budget.admit():
                results[i] = Response(ok=False, error="budget_exhausted", detail="in-process engine budget reached")
                continue
            try:
                m = map_params(r.kind, r.param_dict)
                sps.append(self._sampling_params(m))
            except (UnsupportedParam, TypeError, ValueError) as exc:
                results[i] = Response(ok=False, error="bad_params", detail=str(exc)[:300])
                continue
            todo.append(i)
            mapped.append(m)
        with self._lock:
            self._run_batch(requests, todo, mapped, sps, results)
        done = cast(list[Response], results)  # every slot is filled by now
        if self.cache is not None:
            self.cache.put_many(((keys[i], requests[i], done[i]) for i in todo), self.revision)
        for i, resp in enumerate(done):
            if not resp.ok:
                err = resp.error or "failed"
                self.stats.failures += 1
                self.stats.errors[err] = self.stats.errors.get(err, 0) + 1
            if on_result is not None:
                on_result(i, resp)
        return done

    def _run_batch(self, requests, todo, mapped, sps, results) -> None:
        if not todo:
            return
        t0 = time.perf_counter()
        try:
            outs = self._generate([requests[i] for i in todo], sps)
        except Exception:  # one bad row must not sink the batch: isolate it by running rows one by one
            outs = []
            for j, i in enumerate(todo):
                try:
                    outs.append(self._generate([requests[i]], [sps[j]])[0])
                except Exception as exc:
                    outs.append(exc)
        wall = time.perf_counter() - t0
        self.stats.sent += len(todo)
        self.stats.busy_seconds += wall
        share = wall / len(todo)
        for j, i in enumerate(todo):
            o = outs[j]
            if isinstance(o, Exception):
                results[i] = Response(
                    ok=False, error="engine_error", detail=str(o)[:300], attempts=1, gpu_seconds=share
                )
                continue
            body = to_openai_body(requests[i], mapped[j], o, self.model)
            results[i] = resp = Response(ok=True, body=body, latency_s=wall, attempts=1, gpu_seconds=share)
            usd = self.price.cost(share, resp.prompt_tokens, resp.completion_tokens) if self.price else 0.0
            self.stats.prompt_tokens += resp.prompt_tokens
            self.stats.completion_tokens += resp.completion_tokens
            self.stats.cost_usd += usd
            if self.budget is not None:
                self.budget.charge(resp.prompt_tokens + resp.completion_tokens, usd)

    async def arun(self, requests: Iterable[Request], on_result=None) -> list[Response]:
        return await asyncio.to_thread(self.run, list(requests), on_result)

    def close(self) -> None:
        self._llm = None
