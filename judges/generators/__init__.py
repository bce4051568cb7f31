"""Synthetic preference generators over the judge primitives.

Each method is one module that registers a run function in ``GENERATORS`` (judges/generators/registry.py)
with its config class, engine roles, the shapes it produces and its card tags; the import below is
the registration. Every function returns ``common.GeneratorResult`` (rows from ``schemas.records``
builders, one ``Reject`` per drop) and runs on the executor as ``source.GeneratorSource``:

- ``cyclealign.run_cyclealign(policy, judge, prompts, CycleAlignConfig(), *, static_demos, pool, embed,
  policy_for_round)``
- ``scir.run_scir(policy, reference, prompts=None, SCIRConfig(), *, judge, pairs, extra_rm, iteration)``
- ``isheep.run_isheep(generator, seeds=None, ISheepConfig(), *, base, judge_mode, iteration,
  previous_instructions)``
- ``multifaceted.run_multifaceted(generator, instructions, MultifacetedConfig(), *, taxonomy, responder)``

``difficulty.DifficultyStep`` adds reference-model difficulty columns to pairs (a per-row step).
Engines are ``judges.types.Engine`` objects; every model call goes through ``calls`` (one batched
``engine.run`` per step, per-item outcomes).
"""

from judges.generators import cyclealign, difficulty, isheep, multifaceted, scir  # noqa: F401  (registrations)
from judges.generators.registry import GENERATORS, GeneratorInput, generator

__all__ = ["GENERATORS", "GeneratorInput", "generator"]
