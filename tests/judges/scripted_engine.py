"""A scripted Engine for parser/logic unit tests: a handler maps each Request to an OpenAI-shaped body.

Only for unit tests of the primitives' logic; everything that talks to a model runs against a real
``vllm serve`` in tests/integration.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from judges.types import EngineStats, Request, Response

Handler = Callable[[Request], "dict | Response | str"]


class ScriptedEngine:
    def __init__(self, handler: Handler, model: str = "scripted", base_url: str | None = None):
        self.handler = handler
        self.model = model
        self.revision = ""
        self.base_url = base_url
        self.stats = EngineStats()
        self.seen: list[Request] = []  # every request, in order

    def run(self, requests: list[Request]) -> list[Response]:
        out = []
        for req in requests:
            self.seen.append(req)
            self.stats.requests += 1
            got = self.handler(req)
            if isinstance(got, Response):
                out.append(got)
            elif isinstance(got, str):
                out.append(Response(True, chat_body(got)))
            else:
                out.append(Response(True, got))
        return out

    async def arun(self, requests: list[Request]) -> list[Response]:
        return self.run(requests)

    def close(self) -> None:
        pass


def chat_body(
    text: str,
    finish_reason: str = "stop",
    top: dict[str, float] | None = None,
    texts: list[str] | None = None,
    prompt_tokens: int = 10,
    completion_tokens: int = 1,
) -> dict:
    """A /v1/chat/completions answer; ``top`` = first token's top logprobs {token: logprob}."""
    choices = []
    for i, t in enumerate(texts if texts is not None else [text]):
        ch: dict[str, Any] = {
            "index": i,
            "message": {"role": "assistant", "content": t},
            "finish_reason": finish_reason,
        }
        if top is not None:
            first = max(top, key=top.get) if top else t
            ch["logprobs"] = {
                "content": [
                    {
                        "token": first,
                        "logprob": top.get(first, -1.0),
                        "top_logprobs": [{"token": k, "logprob": v} for k, v in top.items()],
                    }
                ]
            }
        choices.append(ch)
    return {
        "object": "chat.completion",
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
    }


def letter_top(p_a: float, extra: dict[str, float] | None = None) -> dict[str, float]:
    """Top logprobs where the letters A/B carry probabilities p_a and 1-p_a (times 0.9; the rest elsewhere)."""
    top = {"A": math.log(0.9 * p_a), "B": math.log(0.9 * (1 - p_a))}
    top.update(extra or {})
    return top


def echo_body(ids: list[int], logprobs: list[float | None], prompt_tokens: int | None = None) -> dict:
    """A /v1/completions echo answer (return_tokens_as_token_ids) plus one generated token."""
    toks = [f"token_id:{i}" for i in ids] + ["token_id:0"]
    return {
        "object": "text_completion",
        "choices": [
            {
                "index": 0,
                "text": "",
                "finish_reason": "length",
                "logprobs": {
                    "tokens": toks,
                    "token_logprobs": list(logprobs) + [-0.5],
                    "top_logprobs": [None] + [{} for _ in toks[1:]],
                },
            }
        ],
        "usage": {"prompt_tokens": len(ids) if prompt_tokens is None else prompt_tokens, "completion_tokens": 1},
    }


class CharTokenizer:
    """One token per character (id = code point), optionally merging listed pairs into one token;
    the chat template is the tiny model's plain-text one."""

    def __init__(self, merges: dict[str, int] | None = None):
        self.merges = merges or {}
        self.calls = 0

    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        self.calls += 1
        ids, i = [], 0
        while i < len(text):
            pair = text[i : i + 2]
            if pair in self.merges:
                ids.append(self.merges[pair])
                i += 2
            else:
                ids.append(ord(text[i]))
                i += 1
        return ids

    def render_chat(self, messages: list[dict]) -> str:
        return "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages) + "<|assistant|>\n"

    def tokenize_chat(self, messages: list[dict], chat_template: str | None = None) -> list[int]:
        return self.tokenize(self.render_chat(messages))

    def detokenize(self, ids: list[int]) -> str:
        rev = {v: k for k, v in self.merges.items()}
        return "".join(rev.get(i, chr(i)) for i in ids)


def token_logprob(token_id: int) -> float:
    """A deterministic stand-in for a model's log-probability of a token."""
    return -((token_id % 7) + 1) / 10


def echo_handler(tokenizer: CharTokenizer) -> Handler:
    """Answers echo requests like vLLM: tokenize the whole text, first token has no logprob."""

    def handle(req: Request) -> dict:
        ids = tokenizer.tokenize(req.prompt or "")
        return echo_body(ids, [None] + [token_logprob(i) for i in ids[1:]])

    return handle


def blocks(req: Request) -> dict[str, str]:
    """The fenced blocks of a rendered judge prompt: {"RESPONSE A": text, "CANDIDATE 2": text, ...}."""
    text = "\n".join(c for _, c in req.messages or ())
    return {m.group(1): m.group(2) for m in re.finditer(r"<<<BEGIN ([A-Z0-9 ]+)>>>\n(.*?)\n<<<END \1>>>", text, re.S)}
