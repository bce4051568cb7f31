"""SCIR (Zhou et al., arXiv 2502.08922): keep a pair only where the internal reward models agree.

The internal RMs of a self-rewarding model:
- generative RM: the model as a pairwise judge, P_G(y1 ≻ y2) from verdict-token probabilities with
  both presentation orders averaged (judges.primitives.pairwise_verdict);
- implicit DPO RM: r(x, y) = β·[log π(y|x) − log π_ref(y|x)] from two served models,
  P_I = σ(r1 − r2);
- optionally a third, the embedding Bradley–Terry RM of curation/reward.py (``pipelines.synthesize.bt_rm``).

Follows the authors (abstract level): those two internal RMs, preference probabilities from each,
"use only pairs on which they agree", iterate M_t → M_{t+1}. The paper's consistency *loss* lives in
the trainer; this is the offline snapshot of it (flagged in stats). Ours (DEFAULT, §2 of the research
note): β = 0.1; 4 samples per prompt and all their pairs; the agreement rule and confidence gate
below; the judge prompt (the built-in pairwise template); iteration 0 handling.

Decision rule (DEFAULT). Each RM that does not abstain gives P(y1 ≻ y2). Its direction is the side
of ½ and its confidence max(P, 1 − P) = ½ + |P − ½|. A pair is kept iff every voting RM points the
same way *and* each has confidence ≥ δ (``min_confidence``, DEFAULT 0.6, i.e. |P − ½| ≥ 0.1 per RM).
Otherwise its status is ``disagree`` (directions conflict) or ``low_confidence`` (same direction,
or no direction, but some RM below δ). Margin = the mean probability of the agreed direction (the
note's soft weight); ``confidence`` (meta) = the weakest RM's.

Rejected pairs are *not* pairwise rows (a "tie" label would be exported as data): they go to
drops that carry a diagnostic (a plain dict with every score and ``scir_status``) — the warehouse
keeps them as the diagnostic the paper is about.

Iteration 0: policy == reference makes r ≡ 0 and P_I = ½, so nothing would pass. The implicit RM
then *abstains* (its logprobs are not even requested) and the generative RM (plus the embedding RM
when given) decides alone, as in Self-Rewarding LMs. It abstains when ``iteration == 0``, when no
reference is given, or when policy and reference are the same model.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from judges.generators import calls
from judges.generators.common import (
    CostMeter,
    GeneratorError,
    GeneratorResult,
    as_messages,
    model_name,
    prompt_text,
    provenance,
    require_items,
    rng_for,
    same_model,
)
from judges.generators.registry import GENERATORS, GeneratorInput
from judges.templates import PAIRWISE
from schemas import records
from schemas.ids import conversation_id, normalise_text

METHOD = "scir"


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def implicit_prob(beta: float, pol1: float, ref1: float, pol2: float, ref2: float) -> tuple[float, float, float]:
    """(r1, r2, P_I) with r = β·(log π − log π_ref) and P_I = σ(r1 − r2)."""
    r1, r2 = beta * (pol1 - ref1), beta * (pol2 - ref2)
    return r1, r2, sigmoid(r1 - r2)


@dataclass(frozen=True)
class Decision:
    status: str  # consistent | disagree | low_confidence | no_vote
    first_wins: bool | None  # agreed direction: True → y1 ≻ y2
    confidence: float | None  # weakest voter's probability for the agreed direction
    weight: float | None  # mean probability for the agreed direction


def decide(probs: dict[str, float | None], min_confidence: float = 0.6) -> Decision:
    """Apply the agreement + confidence rule to each RM's P(y1 ≻ y2); None = that RM abstains."""
    votes = {k: p for k, p in probs.items() if p is not None}
    if not votes:
        return Decision("no_vote", None, None, None)
    dirs = {p > 0.5 for p in votes.values() if p != 0.5}
    if len(dirs) > 1:
        return Decision("disagree", None, None, None)
    if not dirs:  # every voter exactly at ½: no direction to agree on
        return Decision("low_confidence", None, 0.5, 0.5)
    first = dirs.pop()
    toward = [p if first else 1 - p for p in votes.values()]
    conf, weight = min(toward), sum(toward) / len(toward)
    status = "consistent" if conf >= min_confidence else "low_confidence"
    return Decision(status, first, conf, weight)


@dataclass
class SCIRConfig:
    beta: float = 0.1  # DEFAULT (DPO's usual β)
    min_confidence: float = 0.6  # DEFAULT δ, per RM, in the agreed direction
    n_samples: int = 4  # DEFAULT
    pairing: str = "all"  # DEFAULT all pairs of the samples | "random_one" per prompt
    implicit_reward: str = "sum"  # sum (DPO's definition) | mean (length-normalised variant)
    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int = 0
    chat_template: str | None = None


def run_scir(
    policy: Any,
    reference: Any,
    prompts: Sequence[Any] | None = None,
    config: SCIRConfig | None = None,
    *,
    judge: Any = None,
    pairs: Sequence[tuple[Any, str, str]] | None = None,
    extra_rm: Callable[[list[str], list[str], list[str]], Sequence[float]] | None = None,
    extra_rm_name: str = "embedding_bt",
    iteration: int = 1,
) -> GeneratorResult:
    """SCIR pair selection for one iteration.

    policy: the current model M_t (samples responses; the policy side of the implicit reward).
    reference: π_ref (the previous-iteration / SFT model); None at iteration 0.
    prompts: sample ``n_samples`` responses per prompt and score their pairs; or give ``pairs``
    directly as (prompt, y1, y2). judge: the generative RM (default: the policy itself).
    extra_rm: (prompt texts, y1s, y2s) → P(y1 ≻ y2), e.g. ``pipelines.synthesize.bt_rm(model, embed)``.
    """
    cfg = config or SCIRConfig()
    if cfg.pairing not in ("all", "random_one"):
        raise GeneratorError(f"pairing must be 'all' or 'random_one', got {cfg.pairing!r}")
    if cfg.implicit_reward not in ("sum", "mean"):
        raise GeneratorError(f"implicit_reward must be 'sum' or 'mean', got {cfg.implicit_reward!r}")
    if not 0.5 <= cfg.min_confidence <= 1.0:
        raise GeneratorError("min_confidence is a probability in [0.5, 1]")
    judge = judge if judge is not None else policy
    res = GeneratorResult(METHOD)
    meter = CostMeter({"policy": policy, "reference": reference, "judge": judge})
    sampling = {
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_tokens": cfg.max_tokens,
        "n": cfg.n_samples,
        "seed": cfg.seed + iteration,
    }
    if pairs is not None:
        items = [(as_messages(p), _text(a), _text(b)) for p, a, b in require_items(pairs, "pairs", "run_scir")]
        sampling = {}
    else:
        items = _sample_pairs(
            policy, [as_messages(p) for p in require_items(prompts, "prompts", "run_scir")], cfg, iteration, res
        )
    implicit_abstains = iteration == 0 or reference is None or same_model(policy, reference)
    kept_items = []
    for msgs, a, b in items:
        if not a or not b:
            res.drop("pair_empty_response")
        elif a == b:
            res.drop("pair_chosen_equals_rejected")
        else:
            kept_items.append((msgs, a, b))
    items = kept_items

    verdicts = calls.verdict(judge, items)
    lp = {} if implicit_abstains or not items else _logprobs(policy, reference, items, cfg)
    extra, extra_error = (
        _extra_probs(extra_rm, items) if extra_rm is not None and items else ([None] * len(items), None)
    )

    prov = provenance(
        METHOD,
        round=iteration,
        models={"policy": policy, "reference": reference, "judge": judge},
        template_ids={"judge": PAIRWISE.id},
        sampling=sampling,
        snapshot_approximation=True,
        beta=cfg.beta,
        min_confidence=cfg.min_confidence,
        implicit_abstains=implicit_abstains,
    )
    status_counts: Counter = Counter()
    length_flips = 0
    for (msgs, a, b), v, pe in zip(items, verdicts, extra):
        if not v.ok:
            reason = v.reason or "failed"
            res.drop(f"pair_{reason}" if reason.startswith("judge_") else f"pair_judge_{reason}")
            continue
        scores: dict[str, Any] = {
            "p_generative": v.value,
            "p_ab": getattr(v.raw, "p_ab", None),
            "p_ba": getattr(v.raw, "p_ba", None),
        }
        p_impl = None
        if not implicit_abstains:
            la, lb = (lp.get((conversation_id(msgs), r)) for r in (a, b))
            if la is None or lb is None:
                res.drop("pair_logprob_failed")
                continue
            r1, r2, p_sum = implicit_prob(cfg.beta, la["pol"].sum, la["ref"].sum, lb["pol"].sum, lb["ref"].sum)
            m1, m2, p_mean = implicit_prob(cfg.beta, la["pol"].mean, la["ref"].mean, lb["pol"].mean, lb["ref"].mean)
            p_impl = p_sum if cfg.implicit_reward == "sum" else p_mean
            length_flips += (p_sum - 0.5) * (p_mean - 0.5) < 0
            scores.update(r1=r1, r2=r2, p_implicit_sum=p_sum, r1_mean=m1, r2_mean=m2, p_implicit_mean=p_mean)
        scores["p_implicit"] = p_impl
        if extra_rm is not None:
            if pe is None:
                res.drop("pair_extra_rm_failed")
                continue
            scores[f"p_{extra_rm_name}"] = pe
        d = decide({"generative": v.value, "implicit": p_impl, extra_rm_name: pe}, cfg.min_confidence)
        status_counts[d.status] += 1
        if d.status != "consistent":
            res.drop(
                f"scir_{d.status}",
                diagnostic={
                    "method": METHOD,
                    "iteration": iteration,
                    "scir_status": d.status,
                    "origin": "ai_judge",
                    "prompt": msgs,
                    "y1": a,
                    "y2": b,
                    **scores,
                    "provenance": prov,
                },
            )
            continue
        chosen, rejected = (a, b) if d.first_wins else (b, a)
        meta = {
            "provenance": prov,
            "scir_status": "consistent",
            "confidence": d.confidence,
            "first_is_chosen": d.first_wins,
            **scores,
        }
        res.pairs.append(
            records.pairwise(
                msgs,
                [{"role": "assistant", "content": chosen}],
                [{"role": "assistant", "content": rejected}],
                margin=d.weight,
                origin="ai_judge",
                annotator_id=model_name(judge),
                policy="scir:consistent",
                meta=meta,
            )
        )
    scored = sum(status_counts.values())
    res.stats = {
        "method": METHOD,
        "iteration": iteration,
        "config": asdict(cfg),
        "candidate_pairs": len(items),
        "scored": scored,
        "status": dict(status_counts),
        "implicit_abstains": implicit_abstains,
        "retention": len(res.pairs) / scored if scored else None,
        "implicit_sum_vs_mean_disagreements": length_flips,
        "snapshot_approximation": True,
        "extra_rm_error": extra_error,
        "cost": meter.finish(len(res.pairs)),
    }
    return res


def _text(x: Any) -> str:
    return normalise_text(x) if isinstance(x, str) else ""  # a missing response is dropped below, not a crash


def _sample_pairs(
    policy, prompts: list[list[dict]], cfg: SCIRConfig, iteration: int, res: GeneratorResult
) -> list[tuple[list[dict], str, str]]:
    outs = calls.generate(
        policy,
        prompts,
        n=cfg.n_samples,
        seed=cfg.seed + iteration,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_tokens=cfg.max_tokens,
    )
    items: list[tuple[list[dict], str, str]] = []
    for msgs, out in zip(prompts, outs):
        if not out.ok:
            res.drop(f"sample_{out.reason or 'failed'}", cfg.n_samples)
            continue
        if len(out.value) < cfg.n_samples:
            res.drop("sample_missing", cfg.n_samples - len(out.value))
        texts: list[str] = []
        for t in out.value:
            t = normalise_text(t or "")
            if not t:
                res.drop("sample_empty")
            elif t in texts:
                res.drop("sample_duplicate")
            else:
                texts.append(t)
        combos = list(itertools.combinations(texts, 2))
        if not combos:
            res.drop("prompt_too_few_samples")
            continue
        if cfg.pairing == "random_one":
            combos = [rng_for(METHOD, cfg.seed, iteration, conversation_id(msgs)).choice(combos)]
        items.extend((msgs, a, b) for a, b in combos)
    return items


def _logprobs(policy, reference, items, cfg: SCIRConfig) -> dict[tuple[str, str], dict]:
    """log π and log π_ref of every distinct (prompt, response), each computed once."""
    uniq: dict[tuple[str, str], tuple[list[dict], str]] = {}
    for msgs, a, b in items:
        for r in (a, b):
            uniq.setdefault((conversation_id(msgs), r), (msgs, r))
    keys, reqs = list(uniq), list(uniq.values())
    pol = calls.logprob(policy, reqs, chat_template=cfg.chat_template)
    ref = calls.logprob(reference, reqs, chat_template=cfg.chat_template)
    return {k: {"pol": p.value, "ref": r.value} for k, p, r in zip(keys, pol, ref) if p.ok and r.ok}


def _extra_probs(extra_rm, items) -> tuple[list[float | None], str | None]:
    none: list[float | None] = [None] * len(items)
    try:
        probs = list(
            extra_rm([prompt_text(m) for m, _, _ in items], [a for _, a, _ in items], [b for _, _, b in items])
        )
    except Exception as e:  # an optional RM failing must not sink the run: its pairs are dropped, counted
        return none, f"{type(e).__name__}: {e}"
    if len(probs) != len(items):
        return none, f"returned {len(probs)} probabilities for {len(items)} pairs"
    return [_prob(p) for p in probs], None


def _prob(p: Any) -> float | None:
    try:
        p = float(p)
    except (TypeError, ValueError):
        return None
    return p if math.isfinite(p) and 0.0 <= p <= 1.0 else None


@GENERATORS.register(
    METHOD,
    config=SCIRConfig,
    roles=("policy", "judge", "reference"),
    shapes=("pairwise",),
    tags=("synthetic", "scir", "arxiv:2502.08922"),
    extra={"prompts": "required"},
)
def generate(inp: GeneratorInput, config: SCIRConfig) -> GeneratorResult:
    """Pairs on which the model's internal reward models (generative and implicit DPO) agree."""
    reference = inp.engines.get("reference")
    it = inp.iteration if inp.iteration is not None else (1 if reference is not None else 0)
    return run_scir(inp.engines["policy"], reference, inp.prompts, config, judge=inp.engines.get("judge"), iteration=it)
