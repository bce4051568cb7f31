"""The engine contract shared by every LLM engine, the request cache and the primitives.

A ``Request`` is everything that determines an LLM answer; its ``key`` (with the model revision)
is the cache key, so a resumed run never pays twice for a call. An engine turns a list of
requests into a list of ``Response`` in the same order and never raises for one bad request:
a failure is a ``Response`` with ``ok=False`` and a machine-readable ``error``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson


@dataclass(frozen=True)
class Request:
    kind: Literal["chat", "completion"]
    model: str
    messages: tuple[tuple[str, str], ...] | None = None  # ((role, content), ...) for chat
    prompt: str | None = None  # for completion
    # Sampling and extra OpenAI/vLLM body fields (temperature, max_tokens, n, seed, logprobs,
    # top_logprobs, echo, structured_outputs / response_format, ...), passed through verbatim.
    params: tuple[tuple[str, Any], ...] = ()
    template_id: str | None = None  # "<name>@<hash>" of the prompt template that rendered it
    tag: str | None = None  # caller bookkeeping (e.g. record_id); not part of the key

    @staticmethod
    def chat(
        model: str, messages: list[dict], template_id: str | None = None, tag: str | None = None, **params: Any
    ) -> Request:
        return Request(
            "chat",
            model,
            tuple((m["role"], m["content"]) for m in messages),
            None,
            tuple(sorted(params.items())),
            template_id,
            tag,
        )

    @staticmethod
    def completion(
        model: str, prompt: str, template_id: str | None = None, tag: str | None = None, **params: Any
    ) -> Request:
        return Request("completion", model, None, prompt, tuple(sorted(params.items())), template_id, tag)

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def key(self, revision: str = "") -> str:
        """Cache key: model, model revision, rendered prompt, sampling params (incl. seed)."""
        payload = orjson.dumps(
            [self.kind, self.model, revision, self.messages, self.prompt, self.params],
            option=orjson.OPT_SORT_KEYS,
            default=str,
        )
        return hashlib.blake2b(payload, digest_size=20).hexdigest()

    def body(self) -> dict[str, Any]:
        """The OpenAI-compatible JSON body."""
        body: dict[str, Any] = {"model": self.model, **self.param_dict}
        if self.kind == "chat":
            body["messages"] = [{"role": r, "content": c} for r, c in (self.messages or ())]
        else:
            body["prompt"] = self.prompt
        return body


@dataclass
class Response:
    ok: bool
    body: dict | None = None  # the server's JSON response (OpenAI schema)
    error: str | None = None  # reason code: timeout, http_429, http_500, unreachable, bad_json, budget_exhausted, ...
    detail: str = ""
    latency_s: float = 0.0
    cached: bool = False
    attempts: int = 0
    gpu_seconds: float = 0.0  # this request's share of busy wall time (judges/cost.py); 0 when cached

    @property
    def usage(self) -> dict:
        return (self.body or {}).get("usage") or {}

    @property
    def prompt_tokens(self) -> int:
        return int(self.usage.get("prompt_tokens") or 0)

    @property
    def completion_tokens(self) -> int:
        return int(self.usage.get("completion_tokens") or 0)

    def texts(self) -> list[str]:
        """Generated text of every choice (chat or completion)."""
        out = []
        for ch in (self.body or {}).get("choices") or []:
            msg = ch.get("message")
            out.append((msg or {}).get("content") or "" if msg is not None else ch.get("text") or "")
        return out

    def finish_reasons(self) -> list[str | None]:
        return [ch.get("finish_reason") for ch in (self.body or {}).get("choices") or []]


@dataclass
class EngineStats:
    requests: int = 0  # requests asked of the engine
    sent: int = 0  # HTTP attempts actually made (incl. retries)
    retries: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    busy_seconds: float = 0.0  # wall time with ≥1 request in flight: the GPU-seconds proxy
    cost_usd: float = 0.0  # from the engine's Price (0 without one)
    errors: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Engine(Protocol):
    model: str
    revision: str
    stats: EngineStats

    async def arun(self, requests: list[Request]) -> list[Response]: ...

    def run(self, requests: list[Request]) -> list[Response]: ...

    def close(self) -> None: ...
