"""The generators' one door to the engines: judges.primitives, reduced to ``Out(ok, value, reason)`` per item.

Methods call these small batch functions (one ``engine.run`` per call, so the server's continuous
batching fills up) and only ever see per-item outcomes: a failed request, an unparseable answer or an
engine that cannot tokenize becomes ``Out(ok=False, reason=...)``, never an exception for the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from judges import primitives


@dataclass
class Out:
    ok: bool
    value: Any = None
    reason: str | None = None
    finish_reason: str | None = None  # single-text calls
    finish_reasons: list[str | None] = field(default_factory=list)  # multi-sample calls
    raw: Any = None  # the primitive's own result


def generate(
    engine: Any, prompts: Sequence[Any], *, n: int = 1, seed: int = 0, template_id: str | None = None, **sampling: Any
) -> list[Out]:
    """``n`` samples per prompt; message lists go to chat, strings to /v1/completions (raw text)."""
    if not prompts:
        return []
    got = primitives.sample(engine, list(prompts), n=n, seed=seed, chat=False, template_id=template_id, **sampling)
    return [
        Out(True, r.texts, None, None, [c.finish_reason for c in r.completions], r)
        if r.ok
        else Out(False, None, r.reason or "failed", raw=r)
        for r in got
    ]


def chat(
    engine: Any, messages: Sequence[list[dict]], *, seed: int = 0, template_id: str | None = None, **sampling: Any
) -> list[Out]:
    """One chat answer per message list; value = its text."""
    return _single(generate(engine, list(messages), n=1, seed=seed, template_id=template_id, **sampling))


def complete(
    engine: Any, prompts: Sequence[str], *, seed: int = 0, template_id: str | None = None, **sampling: Any
) -> list[Out]:
    """One raw-text completion per prompt (base models); value = its text."""
    return _single(generate(engine, [str(p) for p in prompts], n=1, seed=seed, template_id=template_id, **sampling))


def _single(outs: list[Out]) -> list[Out]:
    res = []
    for o in outs:
        if o.ok and o.value:
            res.append(Out(True, o.value[0], None, o.finish_reasons[0] if o.finish_reasons else None, raw=o.raw))
        else:
            res.append(Out(False, None, o.reason or "empty_output", raw=o.raw))
    return res


def logprob(
    engine: Any, items: Sequence[tuple[Any, str]], chat_template: bool | str | None = None, tokenizer: Any = None
) -> list[Out]:
    """Sequence log-likelihood of each (prompt, completion); value = LogProb(sum, mean, n_tokens).

    The tokenizer defaults to ``engine.tokenizer`` when the engine carries one, else the server's.
    """
    if not items:
        return []
    tok = tokenizer if tokenizer is not None else getattr(engine, "tokenizer", None)
    try:
        got = primitives.sequence_logprobs(engine, list(items), chat_template, tok)
    except (TypeError, ValueError, OSError) as e:  # no way to tokenize for this engine: every item fails
        return [Out(False, None, "no_tokenizer", raw=str(e)) for _ in items]
    return [Out(True, r, None, raw=r) if r.ok else Out(False, None, r.reason or "logprob_failed", raw=r) for r in got]


def verdict(engine: Any, items: Sequence[tuple[Any, str, str]], **kw: Any) -> list[Out]:
    """Swap-averaged P(a ≻ b) per (prompt, a, b); value = prob_a, raw = the Verdict."""
    if not items:
        return []
    got = primitives.pairwise_verdict(engine, list(items), **kw)
    return [
        Out(True, v.prob_a, None, raw=v) if v.ok else Out(False, None, v.reason or "judge_failed", raw=v) for v in got
    ]


def json_object(
    engine: Any,
    messages: Sequence[list[dict]],
    schema: dict,
    *,
    seed: int = 0,
    template_id: str | None = None,
    **sampling: Any,
) -> list[Out]:
    """Schema-constrained JSON per message list (validated on return); value = the parsed object."""
    if not messages:
        return []
    got = primitives.generate_json_many(engine, list(messages), schema, template_id=template_id, seed=seed, **sampling)
    return [
        Out(True, r.value, None, raw=r) if r.ok else Out(False, None, r.reason or "json_failed", raw=r) for r in got
    ]
