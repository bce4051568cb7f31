"""I-SHEEP (Liang et al., arXiv 2408.08072): self-instruct → self-answer → self-assess → keep the best.

One call of ``run_isheep`` is one iteration: the generator (the current model) writes new
instructions from few-shot seed tasks, rule filters and a ROUGE-L near-duplicate filter clean them,
the generator answers them, rule filters clean the answers, a judge scores each answer for quality
and for instruction-following (1–10), and answers scoring above the threshold on both are kept as
SFT rows. Fine-tuning the base model on them and serving the result for iteration t+1 happens
outside (the caller passes ``iteration`` and the new engine).

Follows the authors' code: 5 seed demos per prompt in the numbered
``###`` layout, 32 prompts per batch, T = 1.0 / top_p 0.95 / 1000 tokens, "drop the last chunk",
the instruction rule filters and blacklist, ROUGE-L F1 (no stemming) > 0.7 rejected, the output
rule filters, the two self-assessment prompts' structure ('<score>||<explanation>', 1–10), the score
parser, keep iff quality > 8 and following > 8, following scored on quality-parseable rows, base
model completion format at t = 0 and chat format after, both judge modes (current model, fixed base).
Ours (DEFAULT): prompt wording; dedup across the whole iteration (plus optional earlier
iterations) rather than per generation call; judge temperature 0 (authors: 1.0); 2 responses per
instruction (authors: 1) so a prompt can yield a (kept ≻ rejected) pair; a newline between
instruction and input (the authors concatenate them with nothing between); the "do you …?" and
"none" rules read as a literal question / a whole word.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from judges import parsing
from judges.generators import calls
from judges.generators.common import (
    CostMeter,
    GeneratorError,
    GeneratorResult,
    model_name,
    prompt_text,
    provenance,
    same_model,
    template_id,
)
from judges.generators.registry import GENERATORS, GeneratorInput
from judges.generators.rouge import RougeIndex
from schemas import records

METHOD = "isheep"
DEFAULT_SEEDS = Path(__file__).resolve().parents[2] / "examples/data/self_instruct_seed_tasks/seed_tasks.jsonl"

# ---------------------------------------------------------------------------------------------
# Seeds


@dataclass(frozen=True)
class SeedTask:
    instruction: str
    input: str = ""
    output: str = ""


def load_seeds(source: str | Path | Iterable[dict | SeedTask] = DEFAULT_SEEDS) -> tuple[list[SeedTask], Counter]:
    """Seed tasks from a self-instruct JSONL file (or parsed dicts / SeedTasks) and the rejected-seed counts.

    A seed needs a non-empty ``instruction`` string and ``instances`` (a list whose first item is an
    object; its ``input``/``output`` default to ""). Anything else is a counted rejection.
    """
    rejects: Counter = Counter()
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise GeneratorError(f"seed file not found: {path}")
        rows: list[Any] = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                rows.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                rejects["seed_invalid_json"] += 1
    else:
        rows = list(source)
    seeds = []
    for obj in rows:
        if isinstance(obj, SeedTask):
            seeds.append(obj)
            continue
        reason = _seed_problem(obj)
        if reason:
            rejects[reason] += 1
            continue
        inst = obj["instances"][0]
        seeds.append(
            SeedTask(
                obj["instruction"].strip(), str(inst.get("input") or "").strip(), str(inst.get("output") or "").strip()
            )
        )
    return seeds, rejects


def _seed_problem(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return "seed_not_object"
    if "instruction" not in obj or "instances" not in obj:
        return "seed_missing_field"
    if not isinstance(obj["instruction"], str) or not isinstance(obj["instances"], list):
        return "seed_bad_type"
    if not obj["instruction"].strip():
        return "seed_empty_instruction"
    if not obj["instances"] or not isinstance(obj["instances"][0], dict):
        return "seed_missing_field"
    return None


# ---------------------------------------------------------------------------------------------
# Prompts (our wording; structure as in the authors' code)

GEN_HEADER = (
    "You will write a list of new, varied tasks for testing an AI assistant that only reads and writes text.\n\n"
    "Rules for the tasks:\n"
    "1. Vary the wording; avoid reusing the same verb across tasks.\n"
    "2. Mix questions with commands, and mix task types: brainstorming, open-ended writing, classification, "
    "rewriting, extraction, reasoning, coding, advice, and so on.\n"
    "3. Each task must be doable with text alone: no images, sounds, browsing, or actions in the physical world.\n"
    "4. Write in English, one or two sentences per instruction.\n"
    "5. When a task needs an input, give a concrete, realistic one (under about 100 words, no placeholders); "
    "otherwise write <noinput> as the input.\n\n"
    "List of tasks:\n"
)
QUALITY_PROMPT = (
    "Below are an instruction and a response to it.\nInstruction: {instruction}\nResponse: {output}\n"
    "Rate the response's quality from 1 to 10. A 1 is a response that is wrong, rambling, unclear or "
    "repetitive; a 10 is correct, to the point, clear and free of repetition. Be a demanding grader. "
    "Answer in the form '<score>||<explanation>'.\nScore: "
)
FOLLOWING_PROMPT = (
    "Below are an instruction and a response to it.\nInstruction: {instruction}\nResponse: {output}\n"
    "Rate from 1 to 10 how well the response follows the instruction. A 1 is a response that merely "
    "continues the instruction text, ignores the format it asks for, or answers an unclear "
    "instruction; a 10 answers the instruction directly, in the requested format, and the "
    "instruction itself is clear. Be a demanding grader. "
    "Answer in the form '<score>||<explanation>'.\nScore: "
)
GEN_TEMPLATE_ID = template_id("isheep_generate", GEN_HEADER)
QUALITY_TEMPLATE_ID = template_id("isheep_quality", QUALITY_PROMPT)
FOLLOWING_TEMPLATE_ID = template_id("isheep_following", FOLLOWING_PROMPT)
RESPONSE_SYSTEM = "You are a helpful assistant."


def render_generation_prompt(demos: Sequence[SeedTask]) -> str:
    parts = [GEN_HEADER]
    for i, s in enumerate(demos, 1):
        parts.append(f"###\n{i}. Instruction: {s.instruction}\n{i}. Input:\n{s.input or '<noinput>'}\n")
    parts.append(f"###\n{len(demos) + 1}. Instruction:")
    return "".join(parts)


_FIELD = re.compile(r"\d+\s*\.\s*(Instruction|Input|Output)\s*:")


def parse_generated(text: str, first_index: int, drop_last_chunk: bool = True) -> tuple[list[tuple[str, str]], Counter]:
    """Continuation of the generation prompt → [(instruction, input)], plus per-chunk parse drops."""
    drops: Counter = Counter()
    chunks = (f"{first_index}. Instruction:" + (text or "")).split("###")
    if drop_last_chunk:  # authors: the last chunk is usually cut off by max_tokens / the stop string
        chunks = chunks[:-1]
        drops["instruction_last_chunk"] += 1
    out = []
    for ch in chunks:
        pieces = _FIELD.split(ch)
        fields: dict[str, str] = {}
        for name, val in zip(pieces[1::2], pieces[2::2]):
            fields.setdefault(name, val.strip())
        inst = fields.get("Instruction", "")
        if not inst:
            drops["instruction_unparseable"] += 1
            continue
        inp = fields.get("Input", "")
        if inp.strip().lower() == "<noinput>":
            inp = ""
        out.append((inst, inp))
    return out, drops


# ---------------------------------------------------------------------------------------------
# Rule filters

BLACKLIST = (
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
    "video",
    "audio",
    "music",
    "flowchart",
    "diagram",
)
_BLACKLIST_RE = re.compile(r"\b(" + "|".join(re.escape(w) for w in BLACKLIST) + r")\b", re.IGNORECASE)
_LEFTOVER = re.compile(r"(Instruction|Input|Output)\s*:")
_URL = re.compile(r"https?:")
_NOINPUT = re.compile(r"no\s?input", re.IGNORECASE)
_PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def instruction_problem(instruction: str, inp: str = "", min_words: int = 3, max_words: int = 150) -> str | None:
    """The first instruction rule the (instruction, input) breaks, or None."""
    inst = instruction.strip()
    n = len(inst.split())
    if n <= min_words:
        return "instruction_too_short"
    if n > max_words:
        return "instruction_too_long"
    if _BLACKLIST_RE.search(inst) or _BLACKLIST_RE.search(inp):
        return "instruction_blacklisted_word"
    if inst[0] in _PUNCT:
        return "instruction_starts_with_punctuation"
    if not inst[0].isascii():
        return "instruction_starts_with_non_ascii"
    if _LEFTOVER.search(inst) or _LEFTOVER.search(inp):
        return "instruction_leftover_field_marker"
    if _URL.search(inst) or _URL.search(inp):
        return "instruction_contains_url"
    if _NOINPUT.search(inp):
        return "instruction_input_noinput"
    return None


_OUTPUT_RULES: tuple[tuple[str, re.Pattern], ...] = (
    ("output_role_marker", re.compile(r"\n(assistant|system|human|question|output|user)[:\n]", re.IGNORECASE)),
    ("output_answer_choices", re.compile(r"Answer Choices:")),
    ("output_noinput", _NOINPUT),
    ("output_can_you", re.compile(r"\n\n?can you")),
    ("output_do_you_question", re.compile(r"do you .{1,50}?\?")),
    ("output_trailing_question", re.compile(r"\n\n.{1,100}\?")),
    ("output_multiple_choice", re.compile(r"\b[A-Ea-e]\.|\([A-Ea-e]\)")),
)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_PLACEHOLDER = re.compile(r"no\s?input|<.{1,20}>|\bnone\b", re.IGNORECASE)
_ANSWER_PREFIX = re.compile(r"^\s*答案[:：]\s*")


def clean_output(output: str) -> str:
    return _ANSWER_PREFIX.sub("", output or "").strip()


def output_problem(
    instruction: str, inp: str, output: str, *, reject_cjk: bool = True, skip: Iterable[str] = ()
) -> str | None:
    """The first response rule broken (authors' step 2.1; ``skip`` disables rules by name), or None."""
    skip = set(skip)
    if not output.strip():
        return "output_empty"
    if "instruction_placeholder" not in skip and (_PLACEHOLDER.search(instruction) or _PLACEHOLDER.search(inp)):
        return "instruction_placeholder"
    if "input_in_instruction" not in skip and inp.strip() and inp.strip() in instruction:
        return "input_in_instruction"
    for name, rx in _OUTPUT_RULES:
        if name not in skip and rx.search(output):
            return name
    if reject_cjk and "output_cjk" not in skip and _CJK.search(output):
        return "output_cjk"
    return None


# Score parsing: judges.parsing.parse_score is the authors' parser (leading number, else the number
# before "||") extended with more formats ("Score: 9", "9/10"); a score outside 1–10 is a drop.


def parse_score(text: str | None, finish_reason: str | None = None) -> tuple[int | None, str | None]:
    p = parsing.parse_score(text, scale=(1, 10), finish_reason=finish_reason)
    return (p.value, None) if p.ok else (None, p.reason or "judge_unparseable")


# ---------------------------------------------------------------------------------------------
# Entry point


@dataclass
class ISheepConfig:
    num_instructions: int = 10_000  # authors, per iteration
    batch_size: int = 32  # authors: prompts per generation batch
    seeds_per_prompt: int = 5  # authors
    max_batches: int | None = None  # None → 4·ceil(num_instructions / batch_size): a bound for bad models
    drop_last_chunk: bool = True  # authors
    rouge_threshold: float = 0.7  # authors: reject if max ROUGE-L F1 > this
    min_words: int = 3
    max_words: int = 150
    responses_per_instruction: int = 2  # DEFAULT (authors: 1; 2 lets a prompt give a pair)
    temperature: float = 1.0  # authors
    top_p: float = 0.95  # authors
    max_tokens: int = 1000  # authors
    gen_stop: tuple[str, ...] = ()
    response_format: str = "auto"  # auto: completion at iteration 0 (base model), chat after (authors)
    judge_format: str = "auto"  # auto: completion when the judge is the base model, else chat
    judge_temperature: float = 0.0  # DEFAULT (authors: 1.0)
    judge_max_tokens: int = 128
    threshold: float = 8  # authors: keep iff score > 8
    score_filter: str = "both"  # both | quality | following (authors' ablations)
    reject_cjk: bool = True
    skip_output_rules: tuple[str, ...] = ()
    seed: int = 0


def run_isheep(
    generator: Any,
    seeds: Sequence[SeedTask | dict] | str | Path | None = None,
    config: ISheepConfig | None = None,
    *,
    base: Any = None,
    judge_mode: str = "current",
    iteration: int = 0,
    previous_instructions: Sequence[str] = (),
) -> GeneratorResult:
    """One I-SHEEP iteration.

    generator: the current model's engine (writes instructions and responses).
    seeds: SeedTasks, seed dicts or a seed JSONL path (default: the bundled self-instruct seeds);
    unusable seeds are drops (``seed_*``).
    judge_mode: "current" (judge = generator, the paper's self-assessment) or "base" (judge = ``base``,
    the fixed base model, as the authors' script does).
    previous_instructions: earlier iterations' instructions, added to the ROUGE-L dedup set.
    """
    cfg = config or ISheepConfig()
    if judge_mode not in ("current", "base"):
        raise GeneratorError(f"judge_mode must be 'current' or 'base', got {judge_mode!r}")
    if cfg.score_filter not in ("both", "quality", "following"):
        raise GeneratorError(f"score_filter must be both|quality|following, got {cfg.score_filter!r}")
    for name in ("response_format", "judge_format"):
        if getattr(cfg, name) not in ("auto", "completion", "chat"):
            raise GeneratorError(f"{name} must be auto|completion|chat, got {getattr(cfg, name)!r}")
    if judge_mode == "base" and base is None:
        raise GeneratorError("judge_mode='base' needs the base model engine (base=...)")
    res = GeneratorResult(METHOD)
    seeds, seed_rejects = load_seeds(DEFAULT_SEEDS if seeds is None else seeds)
    res.drop_counts(seed_rejects)
    if not seeds:
        raise GeneratorError(f"run_isheep: no usable seed tasks (rejected: {dict(res.dropped)})")
    judge = generator if judge_mode == "current" else base
    judge_is_base = judge_mode == "base" or (iteration == 0 and (base is None or same_model(generator, base)))
    meter = CostMeter({"generator": generator, "judge": judge})
    prov = provenance(
        METHOD,
        round=iteration,
        models={"generator": generator, "judge": judge},
        judge_mode=judge_mode,
        template_ids={"generate": GEN_TEMPLATE_ID, "quality": QUALITY_TEMPLATE_ID, "following": FOLLOWING_TEMPLATE_ID},
        sampling={
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "max_tokens": cfg.max_tokens,
            "judge_temperature": cfg.judge_temperature,
            "seed": cfg.seed,
        },
    )

    instructions = _generate_instructions(generator, seeds, cfg, iteration, previous_instructions, res)
    responses = _generate_responses(generator, instructions, cfg, iteration, res)
    scored = _assess(judge, responses, cfg, judge_is_base, res)
    _emit(scored, cfg, prov, iteration, res)
    res.stats = {
        "method": METHOD,
        "iteration": iteration,
        "judge_mode": judge_mode,
        "generator_model": model_name(generator),
        "judge_model": model_name(judge),
        "config": asdict(cfg),
        "seeds": len(seeds),
        "instructions": len(instructions),
        "responses": len(responses),
        "scored": len(scored),
        "kept": len(res.sft),
        "pairs": len(res.pairs),
        "cost": meter.finish(len(res.sft)),
    }
    return res


def _generate_instructions(
    engine, seeds, cfg: ISheepConfig, iteration: int, previous: Sequence[str], res: GeneratorResult
) -> list[tuple[str, str]]:
    index = RougeIndex([s.instruction for s in seeds])
    for p in previous:
        index.add(p)
    rng = random.Random(f"{METHOD}|{cfg.seed}|{iteration}")
    max_batches = cfg.max_batches or 4 * math.ceil(cfg.num_instructions / cfg.batch_size)
    k = min(cfg.seeds_per_prompt, len(seeds))
    sampling: dict[str, Any] = {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.max_tokens}
    if cfg.gen_stop:
        sampling["stop"] = list(cfg.gen_stop)
    accepted: list[tuple[str, str]] = []
    drop = res.drop
    for b in range(max_batches):
        if len(accepted) >= cfg.num_instructions:
            break
        prompts = [render_generation_prompt(rng.sample(seeds, k)) for _ in range(cfg.batch_size)]
        outs = calls.generate(
            engine, prompts, n=1, seed=cfg.seed + 1000 * iteration + b, template_id=GEN_TEMPLATE_ID, **sampling
        )
        for out in outs:
            if not out.ok:
                drop(f"generation_{out.reason or 'failed'}")
                continue
            pairs, pdrops = parse_generated(out.value[0] if out.value else "", k + 1, cfg.drop_last_chunk)
            res.drop_counts(pdrops)
            for inst, inp in pairs:
                why = instruction_problem(inst, inp, cfg.min_words, cfg.max_words)
                if why is None:
                    score, _ = index.max_score(inst)
                    if score > cfg.rouge_threshold:
                        why = "instruction_rouge_duplicate"
                if why:
                    drop(why)
                    continue
                if len(accepted) >= cfg.num_instructions:
                    drop("instruction_over_target")
                    continue
                index.add(inst)
                accepted.append((inst, inp))
    return accepted


def user_text(instruction: str, inp: str) -> str:
    return f"{instruction}\n{inp}" if inp else instruction


def _generate_responses(engine, instructions, cfg: ISheepConfig, iteration: int, res: GeneratorResult) -> list[dict]:
    if not instructions:
        return []
    mode = cfg.response_format if cfg.response_format != "auto" else ("completion" if iteration == 0 else "chat")
    n = cfg.responses_per_instruction
    if mode == "chat":
        prompts: list[Any] = [
            [{"role": "system", "content": RESPONSE_SYSTEM}, {"role": "user", "content": user_text(i, x)}]
            for i, x in instructions
        ]
    else:
        prompts = [user_text(i, x) + "\n" for i, x in instructions]
    outs = calls.generate(
        engine,
        prompts,
        n=n,
        seed=cfg.seed + 7919 * (iteration + 1),
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_tokens=cfg.max_tokens,
    )
    items = []
    for (inst, inp), out in zip(instructions, outs):
        if not out.ok:
            res.drop(f"response_{out.reason or 'failed'}", n)
            continue
        if len(out.value) < n:
            res.drop("response_missing", n - len(out.value))
        for text in out.value:
            text = clean_output(text)
            why = output_problem(inst, inp, text, reject_cjk=cfg.reject_cjk, skip=cfg.skip_output_rules)
            if why:
                res.drop(why)
                continue
            items.append({"instruction": inst, "input": inp, "output": text, "response_format": mode})
    return items


def _score(judge, items: list[dict], prompt: str, tid: str, fmt: str, cfg: ISheepConfig) -> list[tuple]:
    texts = [prompt.format(instruction=user_text(it["instruction"], it["input"]), output=it["output"]) for it in items]
    sampling = {"temperature": cfg.judge_temperature, "max_tokens": cfg.judge_max_tokens}
    if fmt == "chat":
        outs = calls.chat(
            judge, [[{"role": "user", "content": t}] for t in texts], seed=cfg.seed, template_id=tid, **sampling
        )
    else:
        outs = calls.complete(judge, texts, seed=cfg.seed, template_id=tid, **sampling)
    return [parse_score(o.value, o.finish_reason) if o.ok else (None, f"judge_{o.reason or 'failed'}") for o in outs]


def _assess(judge, items: list[dict], cfg: ISheepConfig, judge_is_base: bool, res: GeneratorResult) -> list[dict]:
    if not items:
        return []
    fmt = cfg.judge_format if cfg.judge_format != "auto" else ("completion" if judge_is_base else "chat")
    drop = res.drop
    survivors = []
    for it, (q, why) in zip(items, _score(judge, items, QUALITY_PROMPT, QUALITY_TEMPLATE_ID, fmt, cfg)):
        if q is None:
            drop(f"quality_{why}")
        else:
            survivors.append({**it, "quality_score": q})
    scored = []
    for it, (f, why) in zip(survivors, _score(judge, survivors, FOLLOWING_PROMPT, FOLLOWING_TEMPLATE_ID, fmt, cfg)):
        if f is None:
            drop(f"following_{why}")
        else:
            scored.append({**it, "following_score": f, "judge_format": fmt})
    return scored


def passes(quality: float, following: float, threshold: float, mode: str = "both") -> bool:
    if mode == "quality":
        return quality > threshold
    if mode == "following":
        return following > threshold
    return quality > threshold and following > threshold


def _emit(scored: list[dict], cfg: ISheepConfig, prov: dict, iteration: int, res: GeneratorResult) -> None:
    by_prompt: dict[tuple[str, str], dict[str, list[dict]]] = defaultdict(lambda: {"kept": [], "rejected": []})
    for it in scored:
        ok = passes(it["quality_score"], it["following_score"], cfg.threshold, cfg.score_filter)
        by_prompt[(it["instruction"], it["input"])]["kept" if ok else "rejected"].append(it)
        if not ok:
            diag = {"method": METHOD, "iteration": iteration, "status": "below_threshold", **it}
            res.drop("below_threshold", diagnostic=diag)
    for (inst, inp), grp in by_prompt.items():
        prompt = [{"role": "user", "content": user_text(inst, inp)}]
        for it in grp["kept"]:
            meta = {
                "provenance": prov,
                "iteration": iteration,
                "instruction": inst,
                "input": inp,
                "quality_score": it["quality_score"],
                "following_score": it["following_score"],
            }
            res.sft.append(
                records.binary(
                    prompt,
                    [{"role": "assistant", "content": it["output"]}],
                    label=True,
                    score=min(it["quality_score"], it["following_score"]),
                    origin="synthetic",
                    annotator_id=prov["models"]["judge"],
                    policy="isheep:sft",
                    meta=meta,
                )
            )
        for c in grp["kept"]:
            for r in grp["rejected"]:
                if c["output"] == r["output"]:
                    res.drop("pair_chosen_equals_rejected")
                    continue
                margin = (c["quality_score"] + c["following_score"]) - (r["quality_score"] + r["following_score"])
                meta = {
                    "provenance": prov,
                    "iteration": iteration,
                    "chosen_scores": [c["quality_score"], c["following_score"]],
                    "rejected_scores": [r["quality_score"], r["following_score"]],
                }
                res.pairs.append(
                    records.pairwise(
                        prompt,
                        [{"role": "assistant", "content": c["output"]}],
                        [{"role": "assistant", "content": r["output"]}],
                        margin=margin,
                        origin="ai_judge",
                        annotator_id=prov["models"]["judge"],
                        policy="isheep:kept>rejected",
                        meta=meta,
                    )
                )


def _limit_settings(limit: int) -> dict:
    """I-SHEEP's unit is generated instructions: --limit N asks for N of them."""
    return {"num_instructions": limit, "batch_size": min(limit, 32)}


@GENERATORS.register(
    METHOD,
    config=ISheepConfig,
    roles=("policy", "judge"),
    shapes=("binary", "pairwise"),
    tags=("synthetic", "isheep", "arxiv:2408.08072"),
    extra={"prompts": "optional", "seeds": True, "limit_settings": _limit_settings},
)
def generate(inp: GeneratorInput, config: ISheepConfig) -> GeneratorResult:
    """Self-instruct, self-answer, self-assess: SFT rows of the best answers and pairs against the rest."""
    judge = inp.engines.get("judge")
    seeds: Any = inp.seeds
    if inp.prompts is not None:  # prompts given instead of seed tasks: each becomes an instruction seed
        seeds = [SeedTask(prompt_text(p)) for p in inp.prompts]
    return run_isheep(
        inp.engines["policy"],
        seeds,
        config,
        base=judge,
        judge_mode="base" if judge is not None else "current",
        iteration=inp.iteration or 0,
    )
