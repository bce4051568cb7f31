"""Judge primitives over any ``Engine``.

Each primitive batches its requests into one ``engine.run`` call (so the server's continuous
batching fills up) and returns one result per item with ``ok``/``reason``, the template id and the
token counts. A malformed answer or a failed request rejects that item only; nothing here raises
for model output.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from judges import parsing
from judges.templates import PAIRWISE, Template
from judges.types import Engine, Request, Response

Messages = list[dict]
Prompt = str | Messages


# ---------------------------------------------------------------- result types


@dataclass
class Completion:
    text: str
    finish_reason: str | None
    ok: bool
    reason: str | None = None


@dataclass
class SampleResult:
    ok: bool
    completions: list[Completion]
    reason: str | None = None
    detail: str = ""
    seed: int | None = None
    template_id: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.completions]


@dataclass
class Verdict:
    prob_a: float | None  # P(a ≻ b) = ½[P_AB(A) + P_BA(B)]
    p_ab: float | None  # P(A) with a shown as A
    p_ba: float | None  # P(B) with a shown as B (the swapped order)
    ok: bool
    reason: str | None
    template_id: str
    raw: tuple[str, str]  # judge text for the (a, b) and the (b, a) order
    mode: str = "logprobs"  # how the probabilities were read: logprobs | guided | text (0/1)
    detail: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def winner(self) -> str | None:
        if not self.ok or self.prob_a is None or self.prob_a == 0.5:
            return None
        return "a" if self.prob_a > 0.5 else "b"


@dataclass
class LogProb:
    sum: float | None
    mean: float | None
    n_tokens: int
    ok: bool = True
    reason: str | None = None
    detail: str = ""
    token_logprobs: list[float] = field(default_factory=list)
    n_prompt_tokens: int = 0  # tokens before the boundary (not scored)
    prompt_tokens: int = 0  # usage, as billed
    completion_tokens: int = 0


@dataclass
class JsonResult:
    ok: bool
    value: Any
    reason: str | None
    detail: str = ""
    raw: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0


# ---------------------------------------------------------------- helpers


def _messages(prompt: Prompt) -> Messages:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


def _first_choice(resp: Response) -> tuple[str, str | None, dict]:
    choices = (resp.body or {}).get("choices") or [{}]
    ch = choices[0] or {}
    text = resp.texts()[0] if resp.texts() else ""
    return text, ch.get("finish_reason"), ch


def _failed(resp: Response) -> tuple[str, str]:
    return resp.error or "request_failed", resp.detail


def _empty_choices(resp: Response) -> bool:
    return not (resp.body or {}).get("choices")


# ---------------------------------------------------------------- sample


def sample(
    engine: Engine,
    prompts: Sequence[Prompt],
    n: int = 1,
    seed: int = 0,
    *,
    chat: bool = True,
    template_id: str | None = None,
    **sampling: Any,
) -> list[SampleResult]:
    """``n`` completions per prompt in one request each (``n`` and ``seed`` go to the server, so a
    rerun with the same seed is the same request: identical output and a cache hit).

    Message lists use chat; a string prompt is one user turn (``chat=True``) or raw text for
    ``/v1/completions`` (``chat=False``, e.g. a base model without a chat template)."""
    reqs = []
    for p in prompts:
        if chat or not isinstance(p, str):
            reqs.append(Request.chat(engine.model, _messages(p), template_id=template_id, n=n, seed=seed, **sampling))
        else:
            reqs.append(Request.completion(engine.model, p, template_id=template_id, n=n, seed=seed, **sampling))
    out = []
    for resp in engine.run(reqs):
        if not resp.ok or _empty_choices(resp):
            reason, detail = _failed(resp) if not resp.ok else ("empty_output", "no choices")
            out.append(
                SampleResult(False, [], reason, detail, seed, template_id, resp.prompt_tokens, resp.completion_tokens)
            )
            continue
        comps = []
        for text, fin in zip(resp.texts(), resp.finish_reasons()):
            why = "empty_output" if not text.strip() else "truncated" if fin == "length" else None
            comps.append(Completion(text, fin, why is None, why))
        out.append(SampleResult(True, comps, None, "", seed, template_id, resp.prompt_tokens, resp.completion_tokens))
    return out


# ---------------------------------------------------------------- pairwise verdict


def _logsumexp(xs: list[float]) -> float | None:
    if not xs:
        return None
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def first_token_letter_prob(choice: dict, letters: tuple[str, str] = ("A", "B")) -> tuple[float | None, str]:
    """P(first letter) among the two letters, from the first generated token's top logprobs.

    Entries are matched after stripping whitespace (" A" counts as "A"), and variants are summed.
    A letter missing from the top-k gets the smallest listed logprob as its value: an upper bound
    on its true logprob, so the estimate errs towards 0.5 rather than claiming certainty."""
    lp = choice.get("logprobs") or {}
    if lp.get("content"):  # chat schema
        first = lp["content"][0]
        top = [(e.get("token", ""), e.get("logprob")) for e in first.get("top_logprobs") or []]
        top.append((first.get("token", ""), first.get("logprob")))  # the sampled token is always listed
    elif lp.get("top_logprobs"):  # completions schema: list of {token: logprob}
        top = list((lp["top_logprobs"][0] or {}).items())
    else:
        return None, "no_logprobs"
    seen: dict[str, float] = {}
    for tok, val in top:
        if val is not None:
            seen[tok] = float(val)  # the sampled token may repeat a top entry: count it once
    la = _logsumexp([v for t, v in seen.items() if t.strip() == letters[0]])
    lb = _logsumexp([v for t, v in seen.items() if t.strip() == letters[1]])
    if la is None and lb is None:
        return None, "no_letter_in_top_logprobs"
    floor = min(seen.values())
    detail = "" if la is not None and lb is not None else f"{letters[1] if lb is None else letters[0]}_not_in_top_k"
    la, lb = (floor if la is None else la), (floor if lb is None else lb)
    return 1.0 / (1.0 + math.exp(lb - la)), detail


def _verdict_params(mode: str, top_logprobs: int, extra: dict) -> dict:
    if mode == "guided":
        # vLLM applies the grammar mask before computing logprobs, so the two letters' logprobs
        # come back normalised over the allowed choices.
        return {
            "max_tokens": 2,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": 2,
            "structured_outputs": {"choice": ["A", "B"]},
            **extra,
        }
    if mode == "logprobs":
        return {"max_tokens": 1, "temperature": 0, "logprobs": True, "top_logprobs": top_logprobs, **extra}
    return {"max_tokens": 8, "temperature": 0, **extra}  # text: parse the letter, P is 0 or 1


def _read_order(resp: Response, mode: str) -> tuple[float | None, str | None, str, str]:
    """(P(A), reason, raw text, detail) for one presentation order."""
    if not resp.ok:
        reason, detail = _failed(resp)
        return None, reason, "", detail
    text, fin, choice = _first_choice(resp)
    if mode != "text":
        p, detail = first_token_letter_prob(choice)
        if p is not None:
            return p, None, text, detail
    parsed = parsing.parse_verdict(text, None if mode != "text" else fin)
    if not parsed.ok:
        return None, parsed.reason, text, parsed.detail
    return (1.0 if parsed.value == "A" else 0.0), None, text, "" if mode == "text" else "from_text"


def pairwise_verdict(
    engine: Engine,
    items: Sequence[tuple[Prompt, str, str]],
    template: Template = PAIRWISE,
    *,
    use_logprobs: bool = True,
    guided: bool = False,
    guided_fallback: bool = True,
    top_logprobs: int = 20,
    **params: Any,
) -> list[Verdict]:
    """P(a ≻ b) for each (prompt, a, b), asked in both orders: P = ½[P_AB(A) + P_BA(B)].

    Modes: ``use_logprobs`` reads the first token's top logprobs (max_tokens=1); ``guided`` forces
    the answer to "A"/"B" with vLLM structured outputs (choice) and reads its logprobs; neither:
    parse the text (P is 0 or 1). With ``guided_fallback`` an order whose logprob answer is
    unusable (no letter in the top-k, text unparseable) is asked again in guided mode."""
    mode = "guided" if guided else "logprobs" if use_logprobs else "text"
    tid = template.id
    reqs = []
    for prompt, a, b in items:
        ptext = prompt if isinstance(prompt, str) else _conversation(prompt)
        for first, second in ((a, b), (b, a)):
            msgs = template.render(prompt=ptext, response_a=first, response_b=second)
            reqs.append(
                Request.chat(engine.model, msgs, template_id=tid, **_verdict_params(mode, top_logprobs, params))
            )
    resps = engine.run(reqs)
    reads = [_read_order(r, mode) for r in resps]
    modes = [mode] * len(reqs)
    if mode == "logprobs" and guided_fallback:
        redo = [i for i, (p, reason, _, _) in enumerate(reads) if p is None and _answer_problem(reason)]
        if redo:
            again = engine.run(
                [
                    Request.chat(
                        engine.model,
                        [{"role": r, "content": c} for r, c in reqs[i].messages or ()],
                        template_id=tid,
                        **_verdict_params("guided", 2, params),
                    )
                    for i in redo
                ]
            )
            for i, resp in zip(redo, again):
                reads[i] = _read_order(resp, "guided")
                modes[i] = "guided"
                resps[i] = _merge_usage(resps[i], resp)
    out = []
    for k in range(len(items)):
        (pab, rab, tab, dab), (pba_a, rba, tba, dba) = reads[2 * k], reads[2 * k + 1]
        p_ab = pab
        p_ba = None if pba_a is None else 1.0 - pba_a  # a is shown as B in the swapped order
        ok = p_ab is not None and p_ba is not None
        used = sorted(set(modes[2 * k : 2 * k + 2]))
        m = used[0] if len(used) == 1 else "+".join(used)
        if m != "text" and "from_text" in (dab, dba):
            m = f"{m}+text"  # a letter was read from the text because no logprobs came back
        out.append(
            Verdict(
                prob_a=(p_ab + p_ba) / 2 if p_ab is not None and p_ba is not None else None,
                p_ab=p_ab,
                p_ba=p_ba,
                ok=ok,
                reason=None if ok else (rab or rba),
                template_id=tid,
                raw=(tab, tba),
                mode=m,
                detail="; ".join(d for d in (dab, dba) if d),
                prompt_tokens=resps[2 * k].prompt_tokens + resps[2 * k + 1].prompt_tokens,
                completion_tokens=resps[2 * k].completion_tokens + resps[2 * k + 1].completion_tokens,
            )
        )
    return out


def _answer_problem(reason: str | None) -> bool:
    # Re-ask only when the model's answer was unusable, not when the request itself failed.
    return reason in {"judge_unparseable", "empty_output", "refused", "truncated"}


def _merge_usage(a: Response, b: Response) -> Response:
    usage = {
        "prompt_tokens": a.prompt_tokens + b.prompt_tokens,
        "completion_tokens": a.completion_tokens + b.completion_tokens,
    }
    return Response(b.ok, {**(b.body or {}), "usage": usage}, b.error, b.detail)


def _conversation(messages: Messages) -> str:
    """The request a judge sees for a multi-turn prompt: role-tagged turns."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


# ---------------------------------------------------------------- sequence log-likelihood


class Tokenizer(Protocol):
    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]: ...

    def tokenize_chat(self, messages: Messages, chat_template: str | None = None) -> list[int]: ...

    def detokenize(self, ids: list[int]) -> str: ...


def _token_id(tok: str) -> int | None:
    # With return_tokens_as_token_ids vLLM reports echoed tokens as "token_id:<id>".
    if tok.startswith("token_id:"):
        try:
            return int(tok[9:])
        except ValueError:
            return None
    return None


def sequence_logprobs(
    engine: Engine,
    items: Sequence[tuple[Prompt, str]],
    chat_template: bool | str | None = None,
    tokenizer: Tokenizer | None = None,
) -> list[LogProb]:
    """log p(completion | prompt) summed (and averaged) over the completion's tokens only.

    How the boundary is found: the prompt part is rendered alone (the model's chat template with
    the generation prompt, through the server's /tokenize, when ``chat_template`` is true or a
    template string; raw text otherwise), its token ids are P; the text sent for scoring is
    render(prompt) + completion, through /v1/completions with echo=True, logprobs=1, max_tokens=1
    and token ids in the answer. The echoed ids must start with P exactly, otherwise a token
    straddles the boundary and the item is rejected (``boundary_mismatch``), never mis-scored.
    ``chat_template=None``: chat template for message lists, raw text for strings."""
    tok = tokenizer or ServerTokenizer.for_engine(engine)
    try:
        return _sequence_logprobs(engine, items, chat_template, tok)
    finally:
        if tokenizer is None and isinstance(tok, ServerTokenizer):
            tok.close()


def _sequence_logprobs(
    engine: Engine, items: Sequence[tuple[Prompt, str]], chat_template: bool | str | None, tok: Tokenizer
) -> list[LogProb]:
    prepared: list[tuple[str, list[int], bool] | LogProb] = []
    for prompt, _completion in items:
        use_chat = (not isinstance(prompt, str)) if chat_template is None else bool(chat_template)
        try:
            if use_chat:
                custom = chat_template if isinstance(chat_template, str) else None
                ids = tok.tokenize_chat(_messages(prompt), custom)
                # Render via detokenize(ids) so the text holds exactly what the template produced.
                prepared.append((tok.detokenize(ids), ids, False))
            else:
                if not isinstance(prompt, str):
                    raise TypeError("a message list is scored through the chat template (chat_template=True)")
                ids = tok.tokenize(prompt, True)
                prepared.append((prompt, ids, True))
        except Exception as exc:  # tokenizer endpoint failure: this item only
            prepared.append(LogProb(None, None, 0, False, "tokenize_failed", str(exc)[:200]))
    reqs, slots = [], []
    for i, ((_, completion), prep) in enumerate(zip(items, prepared)):
        if isinstance(prep, LogProb):
            continue
        text, _, add_special = prep
        reqs.append(
            Request.completion(
                engine.model,
                text + completion,
                echo=True,
                logprobs=1,
                max_tokens=1,
                temperature=0,
                add_special_tokens=add_special,
                return_tokens_as_token_ids=True,
            )
        )
        slots.append(i)
    out: list[LogProb] = [p if isinstance(p, LogProb) else None for p in prepared]  # type: ignore[misc]
    for i, resp in zip(slots, engine.run(reqs)):
        out[i] = _score_echo(resp, prepared[i][1], items[i][1])  # type: ignore[index]
    return out


def _score_echo(resp: Response, prompt_ids: list[int], completion: str) -> LogProb:
    usage = (resp.prompt_tokens, resp.completion_tokens)
    if not resp.ok:
        reason, detail = _failed(resp)
        return LogProb(None, None, 0, False, reason, detail)
    _, _, choice = _first_choice(resp)
    lp = choice.get("logprobs") or {}
    tokens, values = lp.get("tokens") or [], lp.get("token_logprobs") or []
    n_total = resp.prompt_tokens or max(len(tokens) - 1, 0)  # echo + 1 generated token
    ids = [_token_id(t) for t in tokens[:n_total]]
    if not tokens or None in ids:
        return LogProb(None, None, 0, False, "no_logprobs", "server returned no echoed token ids", [], 0, *usage)
    k = len(prompt_ids)
    if ids[:k] != list(prompt_ids):
        return LogProb(
            None,
            None,
            0,
            False,
            "boundary_mismatch",
            f"prompt ids {prompt_ids[-3:]} vs echoed {ids[max(k - 3, 0) : k + 1]}",
            [],
            k,
            *usage,
        )
    scored = values[k:n_total]
    if not scored:
        return LogProb(
            None,
            None,
            0,
            False,
            "empty_output" if not completion else "boundary_mismatch",
            "no completion tokens",
            [],
            k,
            *usage,
        )
    if any(v is None for v in scored):  # only the very first token of a sequence has no logprob
        return LogProb(None, None, 0, False, "no_context", "completion starts the sequence", [], k, *usage)
    total = float(sum(scored))
    return LogProb(total, total / len(scored), len(scored), True, None, "", [float(v) for v in scored], k, *usage)


def sequence_logprob(
    engine: Engine,
    prompt: Prompt,
    completion: str,
    chat_template: bool | str | None = None,
    tokenizer: Tokenizer | None = None,
) -> LogProb:
    return sequence_logprobs(engine, [(prompt, completion)], chat_template, tokenizer)[0]


class ServerTokenizer:
    """vLLM's /tokenize and /detokenize (served next to /v1, not under it). Results are memoised:
    the judge prompt prefix repeats across items."""

    def __init__(self, base_url: str, model: str, timeout: float = 60.0):
        import httpx

        root = base_url.rstrip("/")
        self.root = root[:-3] if root.endswith("/v1") else root
        self.model = model
        self._client = httpx.Client(timeout=timeout)
        self._memo: dict[str, Any] = {}

    @classmethod
    def for_engine(cls, engine: Engine) -> ServerTokenizer:
        url = getattr(engine, "base_url", None)
        if not url:
            raise TypeError(f"{type(engine).__name__} has no base_url: pass tokenizer= to sequence_logprob")
        return cls(str(url), engine.model)

    def _post(self, path: str, body: dict) -> dict:
        key = path + json.dumps(body, sort_keys=True)
        if key not in self._memo:
            r = self._client.post(self.root + path, json={"model": self.model, **body})
            r.raise_for_status()
            self._memo[key] = r.json()
        return self._memo[key]

    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._post("/tokenize", {"prompt": text, "add_special_tokens": add_special_tokens})["tokens"]

    def tokenize_chat(self, messages: Messages, chat_template: str | None = None) -> list[int]:
        body: dict[str, Any] = {"messages": messages, "add_generation_prompt": True}
        if chat_template:
            body["chat_template"] = chat_template
        return self._post("/tokenize", body)["tokens"]

    def detokenize(self, ids: list[int]) -> str:
        return self._post("/detokenize", {"tokens": list(ids)})["prompt"]

    def close(self) -> None:
        self._client.close()


# ---------------------------------------------------------------- JSON-schema generation


def generate_json_many(
    engine: Engine,
    items: Iterable[Prompt],
    json_schema: dict,
    *,
    max_tokens: int = 256,
    response_format: bool = False,
    template_id: str | None = None,
    **params: Any,
) -> list[JsonResult]:
    """Schema-constrained JSON per prompt (vLLM structured outputs: body field
    ``structured_outputs={"json": schema}``; ``response_format=True`` sends the OpenAI-standard
    ``response_format`` json_schema instead). The answer is validated with jsonschema on return,
    so a server that ignores the constraint still cannot slip invalid rows through."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(json_schema)
    if response_format:
        constraint = {
            "response_format": {"type": "json_schema", "json_schema": {"name": "output", "schema": json_schema}}
        }
    else:
        constraint = {"structured_outputs": {"json": json_schema}}
    reqs = [
        Request.chat(
            engine.model,
            _messages(p),
            template_id=template_id,
            **{"temperature": 0, "max_tokens": max_tokens, **constraint, **params},
        )
        for p in items
    ]
    out = []
    for resp in engine.run(reqs):
        usage = (resp.prompt_tokens, resp.completion_tokens)
        if not resp.ok:
            reason, detail = _failed(resp)
            out.append(JsonResult(False, None, reason, detail))
            continue
        text, fin, _ = _first_choice(resp)
        if not text.strip():
            out.append(JsonResult(False, None, "empty_output", "", text, *usage))
        elif fin == "length":
            out.append(JsonResult(False, None, "truncated", text[-80:], text, *usage))
        else:
            try:
                value = json.loads(text)
            except ValueError as exc:
                out.append(JsonResult(False, None, "invalid_json", str(exc), text, *usage))
                continue
            err = jsonschema.exceptions.best_match(validator.iter_errors(value))
            if err is not None:
                out.append(JsonResult(False, value, "schema_violation", err.message[:200], text, *usage))
            else:
                out.append(JsonResult(True, value, None, "", text, *usage))
    return out


def generate_json(engine: Engine, messages: Prompt, json_schema: dict, **params: Any) -> JsonResult:
    return generate_json_many(engine, [messages], json_schema, **params)[0]
