"""The generator registry: a new generator is one module that registers its run function here.

    @GENERATORS.register("name", config=NameConfig, roles=("policy", "judge"), shapes=("pairwise",),
                         tags=("synthetic", ...), extra={"prompts": "required"})
    def generate(inp: GeneratorInput, config: NameConfig) -> GeneratorResult: ...

``roles``: the engines it takes (``policy`` always; ``judge`` and ``reference`` are optional
endpoints). ``shapes``: the canonical shapes its rows land in. ``tags``: dataset-card tags.
``extra``: ``prompts`` ("required", or "optional" for a generator with its own seeds), ``seeds``
(takes a seed file), ``embed`` (needs a text embedder), ``limit_settings`` (settings a --limit
implies, for a generator whose unit is not a prompt).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from judges.engines import Endpoint
from judges.generators.common import GeneratorError, GeneratorResult
from schemas.registry import BadSettings, Entry, Registry, UnknownName

GeneratorFn = Callable[["GeneratorInput", Any], GeneratorResult]
GENERATORS: Registry[GeneratorFn] = Registry("method")
OPTIONAL_ROLES = ("judge", "reference")
# What each kind of row becomes: GeneratorResult attribute → canonical shape.
SHAPE_OF = {"pairs": "pairwise", "listwise": "listwise", "sft": "binary"}


@dataclass
class GeneratorInput:
    """What every generator is called with."""

    engines: Mapping[str, Any]  # by role: policy (always), judge, reference
    prompts: list[list[dict]] | None = None  # message lists
    seeds: str | None = None  # a seed file (generators with their own seeds; None: bundled)
    iteration: int | None = None
    embed: Callable[[list[str]], Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def generator(name: str) -> Entry[GeneratorFn]:
    """The registered generator, or one clear error listing the known ones."""
    try:
        return GENERATORS.get(name)
    except UnknownName as e:
        raise GeneratorError(str(e)) from None


def settings(entry: Entry[GeneratorFn], overrides: Mapping[str, Any] | None, limit: int | None = None) -> Any:
    """The generator's config with ``overrides`` (and what ``limit`` implies for it)."""
    values = dict(overrides or {})
    implied = entry.extra.get("limit_settings")
    if implied is not None and limit is not None:
        for k, v in implied(limit).items():
            values.setdefault(k, v)
    try:
        return entry.settings(values)
    except (BadSettings, TypeError) as e:
        raise GeneratorError(str(e)) from None


def check_sources(
    entry: Entry[GeneratorFn],
    prompts_from: str | None,
    prompts_file: str | None,
    seeds_file: str | None,
    limit: int | None,
) -> None:
    """One prompt source, the one the generator takes."""
    sources = [s for s in (prompts_from, prompts_file, seeds_file) if s]
    if len(sources) > 1:
        raise GeneratorError("give one prompt source: --prompts-from, --prompts or --seeds")
    if seeds_file and not entry.extra.get("seeds"):
        raise GeneratorError(
            f"--seeds is for generators with seed tasks; {entry.name} takes --prompts-from or --prompts"
        )
    if not sources and entry.extra.get("prompts", "required") == "required":
        raise GeneratorError(f"{entry.name} needs prompts: --prompts-from DATASET or --prompts FILE")
    if limit is not None and limit < 1:
        raise GeneratorError(f"--limit must be ≥ 1, got {limit}")


def endpoints(
    entry: Entry[GeneratorFn],
    url: str | None,
    model: str | None,
    judge_url: str | None = None,
    judge_model: str | None = None,
    reference_url: str | None = None,
    reference_model: str | None = None,
) -> dict[str, Endpoint]:
    """The generator's endpoints by role; an optional role defaults to the policy's url / model."""
    if not url or not model:
        raise GeneratorError("--url and --model (the policy / generator endpoint) are required")
    eps = {"policy": Endpoint(url, model)}
    optional = [r for r in entry.roles if r in OPTIONAL_ROLES]
    for role, u, m in (("judge", judge_url, judge_model), ("reference", reference_url, reference_model)):
        if u or m:
            if role not in optional:
                raise GeneratorError(
                    f"{entry.name} takes no --{role}-url/--{role}-model "
                    f"(it takes: {', '.join(optional) or 'only --url/--model'})"
                )
            eps[role] = Endpoint(u or url, m or model)
    return eps
