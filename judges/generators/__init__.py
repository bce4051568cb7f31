"""Synthetic preference generators over the judge primitives (DESIGN.md §6, research/algorithms.md §1–4, §8a).

One entry point per method, each returning ``common.GeneratorResult(pairs, listwise, sft, diagnostics,
dropped, stats)`` with rows from ``schemas.records`` builders:

- ``cyclealign.run_cyclealign(policy, judge, prompts, CycleAlignConfig(), *, static_demos, pool, embed,
  policy_for_round)``
- ``scir.run_scir(policy, reference, prompts=None, SCIRConfig(), *, judge, pairs, extra_rm, iteration)``
- ``isheep.run_isheep(generator, seeds=None, ISheepConfig(), *, base, judge_mode, iteration,
  previous_instructions)``
- ``multifaceted.run_multifaceted(generator, instructions, MultifacetedConfig(), *, taxonomy, responder)``
- ``difficulty.run_difficulty(reference, pairs, DifficultyConfig())`` (adds curation columns to pairs)

Engines are ``judges.types.Engine`` objects; every model call goes through ``calls`` (one batched
``engine.run`` per step, per-item outcomes). Submodules are imported on demand (nothing heavy here).
"""
