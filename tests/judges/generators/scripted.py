"""A scripted Engine for the generator tests: answers are a function of the request, chosen by each test.

``ScriptedEngine(answer)``: ``answer(request, text)`` gets the request and its text (the last
message of a chat, or the raw prompt) and returns
- a string (one choice), a list of strings (``n`` choices) — plain text answers;
- ``Letter(p)`` — a verdict answer whose first token has P("A") = p in its top logprobs;
- ``None`` — a failed request (``ok=False``, error ``scripted_failure``).
Echo requests (sequence log-likelihood) are answered from ``logprob``: a dict mapping a completion
text to its total log-probability; the text's characters share it evenly (char-level tokenizer), so
sum = the table value and mean = value / len(completion). Unknown completions get −1 per char.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from judges.types import EngineStats, Request, Response


@dataclass(frozen=True)
class Letter:
    p_a: float


class CharTokenizer:
    """One token per character; the chat template is plain role markers (like judges/tiny_model.py)."""

    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [ord(c) for c in text]

    def tokenize_chat(self, messages: list[dict], chat_template: str | None = None) -> list[int]:
        return self.tokenize("".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages) + "<|assistant|>\n")

    def detokenize(self, ids: list[int]) -> str:
        return "".join(chr(i) for i in ids)


def request_text(req: Request) -> str:
    return req.messages[-1][1] if req.kind == "chat" else (req.prompt or "")


class ScriptedEngine:
    def __init__(
        self,
        answer: Callable[[Request, str], Any] | None = None,
        *,
        logprob: dict[str, float] | None = None,
        model: str = "scripted",
        revision: str = "",
    ):
        self.answer = answer or (lambda req, text: None)
        self.logprob = dict(logprob or {})
        self.model, self.revision = model, revision
        self.stats = EngineStats()
        self.tokenizer = CharTokenizer()
        self.requests: list[Request] = []

    def close(self) -> None:
        pass

    async def arun(self, requests: list[Request]) -> list[Response]:
        return self.run(requests)

    def run(self, requests: list[Request]) -> list[Response]:
        out = []
        for req in requests:
            self.requests.append(req)
            resp = self._echo(req) if req.param_dict.get("echo") else self._answer(req)
            self.stats.requests += 1
            if resp.ok:
                self.stats.prompt_tokens += resp.prompt_tokens
                self.stats.completion_tokens += resp.completion_tokens
            else:
                self.stats.failures += 1
            out.append(resp)
        return out

    def _answer(self, req: Request) -> Response:
        text = request_text(req)
        got = self.answer(req, text)
        if got is None:
            return Response(False, None, "scripted_failure", "scripted")
        n = int(req.param_dict.get("n", 1))
        if isinstance(got, Letter):
            return Response(True, {"choices": [_letter_choice(got.p_a)], "usage": _usage(text, "A")})
        texts = [got] * n if isinstance(got, str) else list(got)
        if req.kind == "chat":
            choices = [
                {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                for i, t in enumerate(texts)
            ]
        else:
            choices = [{"index": i, "text": t, "finish_reason": "stop"} for i, t in enumerate(texts)]
        return Response(True, {"choices": choices, "usage": _usage(text, "".join(texts))})

    def _echo(self, req: Request) -> Response:
        full = req.prompt or ""
        per = [-1.0] * len(full)
        for comp, total in sorted(self.logprob.items(), key=lambda kv: -len(kv[0])):
            if comp and full.endswith(comp):
                per[len(full) - len(comp) :] = [total / len(comp)] * len(comp)
                break
        tokens = [f"token_id:{ord(c)}" for c in full] + ["token_id:120"]
        values: list[float | None] = [None, *per[1:], -1.0]
        body = {
            "choices": [
                {
                    "text": full + "x",
                    "finish_reason": "length",
                    "logprobs": {"tokens": tokens, "token_logprobs": values},
                }
            ],
            "usage": {"prompt_tokens": len(full), "completion_tokens": 1},
        }
        return Response(True, body)


def _letter_choice(p_a: float) -> dict:
    p_a = min(max(p_a, 1e-9), 1 - 1e-9)
    la, lb = math.log(p_a), math.log(1 - p_a)
    top = [{"token": "A", "logprob": la}, {"token": "B", "logprob": lb}]
    first = top[0] if la >= lb else top[1]
    return {
        "index": 0,
        "message": {"role": "assistant", "content": first["token"]},
        "finish_reason": "length",
        "logprobs": {"content": [{**first, "top_logprobs": top}]},
    }


def _usage(prompt: str, completion: str) -> dict:
    return {"prompt_tokens": len(prompt.split()), "completion_tokens": len(completion.split())}


def fenced(text: str, label: str) -> list[str]:
    """Contents of every ``<<<BEGIN {label} k>>> ... <<<END {label} k>>>`` block (k optional), in order."""
    import re

    return re.findall(rf"<<<BEGIN {label}(?: \d+)?>>>\n(.*?)\n<<<END {label}(?: \d+)?>>>", text, re.S)


def bag_of_words_embed(texts: list[str], dim: int = 64) -> list[list[float]]:
    """A deterministic toy embedder: hashed word counts (similar wording → similar vectors)."""
    import zlib

    out = []
    for t in texts:
        v = [0.0] * dim
        for w in t.lower().split():
            v[zlib.crc32(w.strip("?.,!").encode()) % dim] += 1.0
        out.append(v)
    return out


def assert_fits(rows: list[dict], shape: str) -> None:
    """Generated rows (plus the lineage columns a reader fills) convert to the shape's Arrow schema."""
    from schemas import records

    lineage = {"format": "synthetic", "source_file": "generator", "run_id": "test"}
    table = records.to_table([{**r, **lineage, "source_row": i} for i, r in enumerate(rows)], shape)
    assert table.num_rows == len(rows)
