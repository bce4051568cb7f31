"""Label-noise flags as one run: k voters score every pair → ``NoiseStep`` → a child version with noise columns.

Each LLM judge scores every pair through the judge pipeline (``pipelines.judge.run_judge``: cached in the
warehouse's request cache, asked in both orders; its ``judge_prob_chosen`` is the voter's P), each stored
reward model through the embedding store (``pipelines.curate.run_reward_score``: its ``rm_prob``). The
voters' P travel as working columns into ``NoiseStep`` (``curation.noise_step``), so the child version
gains only ``noise_votes`` / ``noise_voters`` / ``noise_flag``: no verdict columns, nothing removed (the
judges score here, they publish no labels; ``prefmill curate --drop-noisy`` removes flagged pairs). A row a
judge could not judge is an abstention, and its reason is in the run's quarantine. The report (run metrics,
the version's lineage, the return value) gives the flagged share overall, per source (origin, format,
source file) and per annotator, and each voter's votes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.noise import (
    COLUMNS,
    DEFAULT_CONFIDENCE,
    NoiseError,
    check_params,
    count_votes,
    flagged_share,
    is_tie,
    voter_stats,
)
from curation.noise_step import STEP
from curation.reward import BTRewardModel
from flows.judge import cache_path
from judges.engines import Endpoint, EngineSpec
from judges.judge_step import drop_verdicts
from pipelines.curate import run_reward_score
from pipelines.judge import run_judge
from pipelines.noise import run_noise_flags
from schemas.step import Counts
from warehouse import CommitResult, Run, Warehouse, run_counts, step_counts

REWARD_KIND = "bt_reward"  # the stored model kind a reward-model voter must be


@dataclass
class NoiseReport:
    run_id: str
    dataset: str
    parent_version: str
    commit: CommitResult
    report: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _RewardVoter:
    name: str
    model_id: str
    model: BTRewardModel


def _endpoint(j: Endpoint | Sequence[str] | Mapping[str, str]) -> Endpoint:
    if isinstance(j, Endpoint):
        return j
    if isinstance(j, Mapping):
        return Endpoint(j["url"], j["model"])
    url, model = j
    return Endpoint(url, model)


def _unique(names: list[str]) -> list[str]:
    """Voter names, made distinct (the same model served at two urls) for run_steps and the report."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def _reward_voters(wh: Warehouse, model_ids: Sequence[str]) -> list[_RewardVoter]:
    """Load every reward model (an unknown id, an ambiguous prefix or a non-reward model: one line)."""
    voters, seen = [], set()
    for given in model_ids:
        blob, info = wh.get_model(given)
        if info["kind"] != REWARD_KIND:
            raise NoiseError(f"model {given!r} is a {info['kind']!r} model, not a reward model ({REWARD_KIND})")
        mid = info["model_id"]
        if mid in seen:
            raise NoiseError(f"reward model {mid[:12]} is given twice: votes must be independent")
        seen.add(mid)
        voters.append(_RewardVoter(f"rm:{mid[:12]}", mid, BTRewardModel.from_bytes(blob)))
    return voters


def _as_probs(table: pa.Table, column: str) -> np.ndarray:
    return pc.fill_null(table.column(column).cast(pa.float64()), float("nan")).to_numpy(zero_copy_only=False)


def _aligned(scored: pa.Table, base: pa.Table, voter: str) -> None:
    """The pipelines keep row order; a voter whose rows came back in another order would vote on wrong pairs."""
    if (
        scored.num_rows != base.num_rows
        or not pc.all(pc.equal(scored.column("record_id"), base.column("record_id"))).as_py()
    ):
        raise RuntimeError(f"voter {voter}: scored rows do not line up with the dataset's rows")


def _judge_vote(
    run: Run,
    base: pa.Table,
    spec: EngineSpec,
    name: str,
    i: int,
    verdict_options: dict | None,
    batch_rows: int,
    beam_args: list[str] | None,
) -> tuple[np.ndarray, list[Counts], dict]:
    """One judge's P(chosen ≻ rejected) per row of ``base`` (NaN where it gave no verdict), its step counts
    and its metrics; the rows it could not judge go to the run's quarantine under the voter's name."""
    res = run_judge(
        drop_verdicts(base),
        spec,
        work=run.work / f"judge-{i}",
        run_id=run.run_id,
        verdict_options=verdict_options,
        batch_rows=batch_rows,
        beam_args=beam_args,
    )
    judged = res.judged(f"judge {name} stopped, nothing was published")
    _aligned(judged, base, name)
    rej = res.rejected
    run.quarantine(
        rej.set_column(rej.schema.get_field_index("step"), "step", pa.array([name] * rej.num_rows, pa.string())),
        f"judge-{i}",
    )
    counts = [replace(c, step=name) for c in res.steps]
    return (
        _as_probs(judged, "judge_prob_chosen"),
        counts,
        {"voter": name, **res.counts.metrics(spec, base.num_rows)["judge"]},
    )


def flag_noise(
    wh: Warehouse,
    dataset: str,
    judges: Sequence[Endpoint | Sequence[str] | Mapping[str, str]] = (),
    reward_models: Sequence[str] = (),
    version: str | None = None,
    *,
    m: int | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    concurrency: int = 64,
    batch_rows: int = 128,
    engine_options: dict | None = None,
    verdict_options: dict | None = None,
    beam_args: list[str] | None = None,
) -> NoiseReport:
    """Score ``dataset`` (``version``, default latest) with every judge (``(url, model)``) and reward model
    (stored model id) and publish a child version whose pairs carry the noise columns. A pair is flagged
    when at least ``m`` (default 2; 1 with one voter) voters are at least ``confidence`` sure its label is
    wrong. Bad parameters, an unknown model, a dataset without labelled pairs or an unreachable judge are
    one line each, before any run starts."""
    endpoints = [_endpoint(j) for j in judges]
    m = check_params(len(endpoints) + len(reward_models), m, confidence)
    if concurrency < 1:
        raise NoiseError(f"concurrency must be ≥ 1, got {concurrency}")
    twice = {e.key for e in endpoints if sum(o.key == e.key for o in endpoints) > 1}
    if twice:
        raise NoiseError(f"judge {sorted(twice)[0]} is given twice: votes must be independent")
    rms = _reward_voters(wh, reward_models)
    parent = wh.resolve_version(dataset, version)
    table = wh.read(dataset, "pairwise", parent)
    if table.num_rows == 0:
        raise NoiseError(f"{dataset}@{parent[:12]} has no pairwise rows to score")
    ties = is_tie(table.column("label"))
    if ties.all():
        raise NoiseError(f"{dataset}@{parent[:12]} has only ties: there is no label to disagree with")
    specs = [
        EngineSpec({"judge": ep}, str(cache_path(wh)), concurrency, engine_options=dict(engine_options or {})).probed()
        for ep in endpoints
    ]  # an unreachable server or an unserved model: one line, nothing started
    names = _unique([f"judge:{s.endpoints['judge'].model}" for s in specs] + [r.name for r in rms])
    params = {
        "parent_version": parent,
        "judges": [{"url": s.endpoints["judge"].url, "model": s.endpoints["judge"].model} for s in specs],
        "reward_models": [r.model_id for r in rms],
        "m": m,
        "confidence": confidence,
    }
    with wh.run("noise", dataset, params) as run:
        base = table.drop_columns([c for c in COLUMNS if c in table.column_names])  # a rerun replaces them
        probs: list[np.ndarray] = []
        voter_counts: list[Counts] = []
        judge_metrics: list[dict] = []
        embed: dict[str, int] = {"computed": 0, "cache_hits": 0}
        for i, spec in enumerate(specs):
            p, judge_counts, jm = _judge_vote(run, base, spec, names[i], i, verdict_options, batch_rows, beam_args)
            probs.append(p)
            voter_counts += judge_counts
            judge_metrics.append(jm)
        for j, rm in enumerate(rms):
            out = run_reward_score(base, rm.model, rm.model_id, wh.root, run.work / f"rm-{j}", run.run_id)
            _aligned(out.table, base, rm.name)
            probs.append(_as_probs(out.table, "rm_prob"))
            voter_counts += [replace(c, step=rm.name) for c in out.counts]
            if out.embed is not None:
                embed["computed"] += out.embed.computed
                embed["cache_hits"] += out.embed.cache_hits
        res_noise = run_noise_flags(
            base, probs, m, confidence, work=run.work / "noise", run_id=run.run_id, beam_args=beam_args
        )
        flagged = res_noise.table("pairwise")
        counts = [Counts("read", rows_in=base.num_rows, rows_kept=base.num_rows, annotates=True), *voter_counts]
        counts.append(res_noise.count(STEP))
        votes = count_votes(np.column_stack(probs), ties, m, confidence)  # the same rule, for the per-voter report
        n_flagged = int(pc.sum(pc.fill_null(flagged.column("noise_flag"), False).cast(pa.int64())).as_py() or 0)
        labelled = int((~ties).sum())
        report = {
            "voters": voter_stats(votes, names),
            "k": len(names),
            "m": m,
            "confidence": confidence,
            "pairs": base.num_rows,
            "ties": int(ties.sum()),
            "flagged": n_flagged,
            "flagged_share": n_flagged / labelled,
            "by": flagged_share(flagged),
        }
        metrics = {"noise": report, "judges": judge_metrics, "embed": embed}
        run.metrics(metrics)
        result = run.commit_derived(
            parent,
            {"pairwise": flagged},
            None,
            run_counts(counts),
            step_counts(counts[1:]),
            extra={"noise": {"voters": names, "m": m, "confidence": confidence}},
        )
    return NoiseReport(run.run_id, dataset, parent, result, report, metrics)


def summary(rep: NoiseReport) -> dict[str, Any]:
    """What the CLI prints: the version published and the report."""
    return {
        "run_id": rep.run_id,
        "dataset": rep.dataset,
        "parent_version": rep.parent_version,
        "version_id": rep.commit.version_id,
        "status": rep.commit.status,
        **rep.report,
    }
