"""The `prefmill` command line (typer + rich).

Interactive commands (ingest, export, curate, query, datasets, runs, report) call the jobs and the
warehouse directly so they answer quickly; `run`, `serve` and `--prefect` go through Prefect. A flag
wins over prefmill/settings.py (environment > prefmill.toml > defaults); names and help lists come from
the registries (prefmill/catalog.py). Every expected failure prints one line (prefmill/errors.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from prefmill import catalog
from prefmill.config import quiet_env
from prefmill.errors import UsageError, handle_errors
from prefmill.helptext import App
from prefmill.settings import config_path, load_settings, warehouse_root
from prefmill.summaries import print_curate

quiet_env()

app = App(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="prefmill: ingest, curate, judge and export preference data. `prefmill steps` lists what exists.",
)
console = Console()

WarehouseOpt = typer.Option(None, "--warehouse", "-w", help="Warehouse directory (default: {warehouse})")
BeamArgOpt = typer.Option(
    [], "--beam-arg", help="Beam pipeline option, e.g. --beam-arg=--runner=FlinkRunner (default: {beam_args})"
)
SeedOpt = typer.Option(None, "--seed", help="(default: {seed})")


class GateOpts:
    """The gate's options (flows/audit.py), shared by judge, synthesize and the audits."""

    no_gate = typer.Option(
        False, "--no-gate", help="Publish even without a passing judge audit (recorded in the lineage and the card)"
    )
    min_kappa = typer.Option(
        None, "--min-kappa", help="Least Cohen's κ against the majority human label, in [-1, 1] (default: 0.4)"
    )
    min_swap_consistency = typer.Option(
        None,
        "--min-swap-consistency",
        help="Least share of verdicts that survive swapping the two responses, in [-1, 1] (default: 0.8)",
    )


def _wh(path: Path | None):
    from warehouse import Warehouse

    return Warehouse(warehouse_root(path))


def _print_table(table, title: str | None = None, max_rows: int = 50) -> None:
    t = Table(title=title, show_lines=False)
    for name in table.column_names:
        t.add_column(name, overflow="fold", max_width=60)
    for row in table.slice(0, max_rows).to_pylist():
        t.add_row(*["" if v is None else escape(str(v)[:200]) for v in row.values()])
    console.print(t)
    if table.num_rows > max_rows:
        console.print(f"… {table.num_rows - max_rows} more rows")


def _ingest_summary(report) -> None:
    c = report.counts
    commit = report.commit
    dup = commit.rows_duplicate if commit else 0
    kept = c.rows_kept - dup
    console.print(
        f"[bold]run[/] {report.run_id}  dataset [bold]{report.dataset}[/]  "
        f"records {c.records_read:,}  rows read {c.rows_read:,} = kept {kept:,} + rejected {c.rows_rejected:,} "
        f"+ duplicate {dup:,}"
    )
    if commit is not None:
        if commit.version_id:
            console.print(f"version [bold]{commit.version_id}[/] ({commit.status})")
        else:
            console.print(f"no new version ({commit.status})")
    if c.reasons:
        console.print("rejected: " + ", ".join(f"{k} {v}" for k, v in c.reasons.most_common()))


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def print_audit(out: dict, as_json: bool = False) -> None:
    """An audit (flows.audit.summary) as a few lines, or as JSON."""
    if as_json:
        sys.stdout.write(json.dumps(out, default=str, ensure_ascii=False) + "\n")
        return
    m = out["metrics"]
    verdict = "[green]passed[/]" if out["passed"] else "[red]failed[/]: " + escape("; ".join(out["shortfalls"]))
    console.print(
        f"[bold]audit[/] {out['audit_id']} of {escape(out['judge'])} on {out['gold_dataset']}@{out['gold_version'][:12]}: {verdict}"
    )
    console.print(
        f"rows {m['n_rows']:,} ({m['n_items']:,} items), judged {m['coverage']:.1%}; accuracy {_fmt(m['accuracy'])} "
        f"(with ties {_fmt(m['accuracy_with_ties'])}); κ vs majority {_fmt(m['kappa_majority'])}, "
        f"per annotator {_fmt(m['kappa_per_annotator_mean'])}; human–human κ "
        f"{_fmt((m['human_human'] or {}).get('mean_kappa'))}"
    )
    lb = m["length_bias"]
    console.print(
        f"swap consistency {_fmt(m['swap_consistency'])}; P(first) {_fmt(m['position_bias_p_first'])}; "
        f"picks the longer {_fmt(lb['judge_longer_rate'])} (humans {_fmt(lb['human_longer_rate'])}); "
        f"ECE {_fmt(m['calibration']['ece'])}; self-preference rows {m['self_preference']['n_rows']}"
    )
    if "judge" in m and m["judge"]["reasons"]:
        console.print(
            f"unparseable {m['judge']['unparseable_share']:.1%}; not judged: "
            + ", ".join(f"{k} {v}" for k, v in sorted(m["judge"]["reasons"].items(), key=lambda kv: -kv[1]))
        )


def print_gate(out: dict) -> None:
    """The gate decision line of a judge / synthesize summary."""
    status = out.get("gate")
    if status == "passed":
        console.print(f"gate: passed (audit {out['gate_audit']})")
    elif status == "overridden":
        console.print(f"[yellow]gate overridden (--no-gate):[/] {escape(out['gate_reason'])}")
    elif status == "not_applicable":
        console.print(f"gate: not applicable ({escape(out['gate_reason'])})")


def _format(name: str) -> str:
    return catalog.check("format", name, [i.name for i in catalog.formats()])


@app.command()
@handle_errors
def ingest(
    paths: list[Path] = typer.Argument(..., help="Source files (JSON, JSONL, .gz, Parquet, CSV)"),
    format: str = typer.Option(..., "--format", "-f", help="{formats}"),
    mapping: Path | None = typer.Option(None, "--mapping", "-m", help="YAML mapping file (for --format mapping)"),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", help="Dataset to publish into (default: {ingest.dataset})"
    ),
    max_record_bytes: int | None = typer.Option(
        None, help="Quarantine records larger than this (default: {ingest.max_record_bytes})"
    ),
    beam_arg: list[str] = BeamArgOpt,
    warehouse: Path | None = WarehouseOpt,
):
    """Ingest feedback files into a dataset (Beam pipeline → validation → atomic commit)."""
    from flows.jobs import ingest as run_job

    s = load_settings()
    opts = s.ingest.with_flags(dataset=dataset, max_record_bytes=max_record_bytes)
    _format(format)
    with console.status(f"ingesting {len(paths)} file(s) as {format}…"):
        report = run_job(
            _wh(warehouse),
            [str(p) for p in paths],
            format,
            opts.dataset,
            mapping=str(mapping) if mapping else None,
            beam_args=beam_arg or s.beam_args,
            max_record_bytes=opts.max_record_bytes,
        )
    _ingest_summary(report)


@app.command()
@handle_errors
def run(
    paths: list[Path] = typer.Argument(..., help="Source files"),
    format: str = typer.Option(..., "--format", "-f", help="{formats}"),
    mapping: Path | None = typer.Option(None, "--mapping", "-m"),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="(default: {ingest.dataset})"),
    export_format: str | None = typer.Option(None, "--export", help="Also export: {exports}"),
    out: Path | None = typer.Option(None, "--out", help="Export directory"),
    beam_arg: list[str] = BeamArgOpt,
    warehouse: Path | None = WarehouseOpt,
):
    """Run the ingest flow through Prefect (ephemeral, no server needed): ingest → validate → commit → export."""
    from flows.ingest_flow import ingest_flow

    s = load_settings()
    _format(format)
    if export_format is not None:
        catalog.check("export format", export_format, [i.name for i in catalog.exports()])
        if out is None:
            raise UsageError("--export needs --out DIR")
    result = ingest_flow(
        paths=[str(p) for p in paths],
        format_name=format,
        dataset=s.ingest.with_flags(dataset=dataset).dataset,
        mapping=str(mapping) if mapping else None,
        warehouse=str(warehouse_root(warehouse)),
        beam_args=beam_arg or s.beam_args,
        export_format=export_format,
        export_dir=str(out) if out else None,
    )
    console.print_json(data=result)


@app.command()
@handle_errors
def export(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    format: str | None = typer.Option(None, "--format", "-f", help="{exports} (default: {export.format})"),
    out: Path = typer.Option(..., "--out", "-o"),
    version: str | None = typer.Option(None, "--version", "-v", help="Version id or prefix (default: latest)"),
    file_format: str | None = typer.Option(
        None, "--file-format", help="{file_formats} (default: {export.file_format})"
    ),
    test_fraction: float | None = typer.Option(None, "--test-fraction", help="(default: {export.test_fraction})"),
    seed: int | None = SeedOpt,
    split_key: str | None = typer.Option(
        None,
        "--split-key",
        help="Column that no split may share: prompt_id, prompt_cluster (default: {export.split_key})",
    ),
    from_rankings: str | None = typer.Option(
        None, "--from-rankings", help="Also convert rankings: all | adjacent | best_vs_rest"
    ),
    from_ratings: str | None = typer.Option(
        None, "--from-ratings", help="Also convert ratings: ATTRIBUTE[:MIN_MARGIN]"
    ),
    warehouse: Path | None = WarehouseOpt,
):
    """Export a dataset version for a trainer, with a deterministic train/test split and a dataset card."""
    from warehouse.export import export as do_export

    s = load_settings()
    opts = s.export.with_flags(format=format, file_format=file_format, test_fraction=test_fraction, split_key=split_key)
    if opts.format is None:
        raise UsageError(
            f"export needs --format ({catalog.names(catalog.exports())}), or export.format in prefmill.toml"
        )
    include: dict[str, dict[str, Any]] = {}
    if from_rankings:
        include["rankings"] = {"policy": from_rankings}
    if from_ratings:
        attr, _, margin = from_ratings.partition(":")
        include["ratings"] = {"attribute": attr, "min_margin": float(margin or 1.0)}
    res = do_export(
        _wh(warehouse),
        dataset,
        opts.format,
        out,
        version=version,
        file_format=opts.file_format,
        test_fraction=opts.test_fraction,
        seed=s.seed if seed is None else seed,
        split_key=opts.split_key,
        include_converted=include or None,
    )
    console.print(f"exported version [bold]{res.version_id}[/] → {out}")
    console.print(json.dumps(res.counts, indent=2, default=str))


@app.command()
@handle_errors
def curate(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    method: str | None = typer.Option(
        None, "--method", help="{curate_methods} (none: dedup only) (default: {curate.method})"
    ),
    budget: float | None = typer.Option(
        None, "--budget", help="Fraction in (0, 1] of rows to keep, or a count > 1 (default: {curate.budget})"
    ),
    version: str | None = typer.Option(None, "--version", "-v"),
    recipe: str | None = typer.Option(None, "--recipe", help="Embedding text: {recipes} (default: {curate.recipe})"),
    strata: str | None = typer.Option(
        None, "--strata", help="Keep each group's share: annotator_id | format | origin | ..."
    ),
    near_threshold: float | None = typer.Option(None, "--near-threshold", help="(default: {curate.near_threshold})"),
    semantic_threshold: float | None = typer.Option(
        None, "--semantic-threshold", help="(default: {curate.semantic_threshold})"
    ),
    pair_identical_threshold: float | None = typer.Option(
        None, "--pair-identical-threshold", help="(default: {curate.pair_identical_threshold})"
    ),
    cluster_cap: int | None = typer.Option(None, "--cluster-cap", help="Max pairs per prompt cluster"),
    mode: str | None = typer.Option(None, "--mode", help="ISA: topk | stochastic (default: {curate.mode})"),
    sample: int | None = typer.Option(None, "--sample", help="Curate a seeded sample of N rows (CPU demos)"),
    drop_noisy: bool = typer.Option(
        False, "--drop-noisy", help="Remove pairs `prefmill noise` flagged (reason label_noise)"
    ),
    seed: int | None = SeedOpt,
    embed_model: str | None = typer.Option(
        None, "--embed-model", help="Local sentence-transformers folder (default: {embed.model})"
    ),
    embed_device: str | None = typer.Option(None, "--embed-device", help="cuda | cpu (default: {embed.device})"),
    beam_arg: list[str] = BeamArgOpt,
    via_prefect: bool = typer.Option(False, "--prefect", help="Run through the Prefect flow"),
    warehouse: Path | None = WarehouseOpt,
):
    """Dedup, embed and select a budgeted subset; publishes a child version (removed rows in `removals`)."""
    from dataclasses import asdict

    from flows.curate import curate as curate_job
    from flows.curate import curate_flow_fn
    from pipelines.curate import CurateParams

    s = load_settings()
    c = s.curate.with_flags(
        method=method,
        budget=budget,
        recipe=recipe,
        near_threshold=near_threshold,
        semantic_threshold=semantic_threshold,
        pair_identical_threshold=pair_identical_threshold,
        mode=mode,
    )
    catalog.check("curate method", c.method, catalog.curate_methods())
    e = s.embed.with_flags(model=embed_model, device=embed_device)
    params = CurateParams(
        **{**c.model_dump(), "budget": int(c.budget) if c.budget > 1 else c.budget},
        model=e.model,
        device=e.device,
        strata=strata,
        cluster_cap=cluster_cap,
        sample=sample,
        drop_noisy=drop_noisy,
        seed=s.seed if seed is None else seed,
        beam_args=beam_arg or s.beam_args,
    )
    if via_prefect:
        console.print_json(
            data=curate_flow_fn()(
                dataset=dataset, warehouse=str(warehouse_root(warehouse)), version=version, params=asdict(params)
            )
        )
        return
    with console.status(f"curating {dataset} ({c.method}, budget {c.budget})…"):
        rep = curate_job(_wh(warehouse), dataset, params, version)
    print_curate(console, rep)


reward_app = App(help="Embedding Bradley–Terry reward models and annotator groups.", no_args_is_help=True)
app.add_typer(reward_app, name="reward")


@reward_app.command("train")
@handle_errors
def reward_train(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    version: str | None = typer.Option(None, "--version", "-v"),
    sample: int | None = typer.Option(None, "--sample", help="Train on a seeded sample of N non-tie pairs"),
    seed: int | None = SeedOpt,
    embed_model: str | None = typer.Option(
        None, "--embed-model", help="Local sentence-transformers folder (default: {embed.model})"
    ),
    warehouse: Path | None = WarehouseOpt,
):
    """Fit the embedding BT reward model on a version's human pairs and store it (versioned)."""
    from flows.reward import train_reward

    s = load_settings()
    with console.status("embedding pairs and fitting…"):
        out = train_reward(
            _wh(warehouse),
            dataset,
            version,
            model=s.embed.with_flags(model=embed_model).model,
            sample=sample,
            seed=s.seed if seed is None else seed,
        )
    console.print_json(data=out)


@reward_app.command("score")
@handle_errors
def reward_score(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    model_id: str = typer.Option(..., "--model", help="Model id (or unique prefix) from `SELECT * FROM models`"),
    version: str | None = typer.Option(None, "--version", "-v"),
    warehouse: Path | None = WarehouseOpt,
):
    """Publish a child version whose pairs carry rm_prob and rm_margin."""
    from flows.reward import score_dataset

    with console.status("scoring…"):
        console.print_json(data=score_dataset(_wh(warehouse), dataset, model_id, version))


@reward_app.command("audit")
@handle_errors
def reward_audit(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Gold set: a dataset of human-labelled pairs"),
    model_id: str = typer.Option(..., "--model", help="Model id (or unique prefix) from `SELECT * FROM models`"),
    version: str | None = typer.Option(None, "--version", "-v", help="Gold set version (default: latest)"),
    embed_model: str | None = typer.Option(
        None, "--embed-model", help="The embedding model the reward model was trained on (default: {embed.model})"
    ),
    min_kappa: float | None = GateOpts.min_kappa,
    min_swap_consistency: float | None = GateOpts.min_swap_consistency,
    as_json: bool = typer.Option(False, "--json", help="Print the whole audit as JSON"),
    beam_arg: list[str] = BeamArgOpt,
    warehouse: Path | None = WarehouseOpt,
):
    """Audit a reward model against human labels, like `prefmill judge audit` (a `judge_audits` row)."""
    from flows.audit import audit_reward, summary

    s = load_settings()
    th = {k: v for k, v in (("min_kappa", min_kappa), ("min_swap_consistency", min_swap_consistency)) if v is not None}
    with console.status(f"auditing reward model {model_id[:12]} on {dataset}…"):
        rep = audit_reward(
            _wh(warehouse),
            dataset,
            model_id,
            version,
            embed_model=s.embed.with_flags(model=embed_model).model,
            beam_args=beam_arg or s.beam_args,
            **th,
        )
    print_audit(summary(rep), as_json)


@reward_app.command("groups")
@handle_errors
def reward_groups(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    key: str = typer.Option(
        "annotator_id", "--key", help="Grouping key column: annotator_id | format | source_file | prompt_cluster"
    ),
    k: int | None = typer.Option(None, "--k", help="Number of groups (default: chosen by held-out log-likelihood)"),
    sample: int | None = typer.Option(None, "--sample"),
    seed: int | None = SeedOpt,
    version: str | None = typer.Option(None, "--version", "-v"),
    warehouse: Path | None = WarehouseOpt,
):
    """MaxMin-RLHF hard EM: group annotators by preference; adds `annotator_group` (use --strata annotator_group in curate)."""
    from flows.reward import fit_annotator_groups

    seed = load_settings().seed if seed is None else seed
    with console.status("fitting groups…"):
        console.print_json(
            data=fit_annotator_groups(_wh(warehouse), dataset, version, key=key, k=k, sample=sample, seed=seed)
        )


@app.command()
@handle_errors
def query(
    sql: str = typer.Argument(..., help="A read-only SQL statement over the public views"),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array of row objects"),
    warehouse: Path | None = WarehouseOpt,
):
    """Run read-only SQL on the warehouse (statements that write are refused)."""
    table = _wh(warehouse).query(sql)
    if as_json:
        sys.stdout.write(json.dumps(table.to_pylist(), default=str, ensure_ascii=False) + "\n")
    else:
        _print_table(table)


@app.command()
@handle_errors
def datasets(warehouse: Path | None = WarehouseOpt):
    """List datasets with their latest version and row counts."""
    _print_table(_wh(warehouse).datasets(), title="datasets")


@app.command()
@handle_errors
def runs(limit: int = typer.Option(20, "--limit"), warehouse: Path | None = WarehouseOpt):
    """List recent runs with their counts (rows_read = kept + rejected + duplicate)."""
    _print_table(_wh(warehouse).runs().slice(0, limit), title="runs")


@app.command()
@handle_errors
def report(run_id: str | None = typer.Argument(None), warehouse: Path | None = WarehouseOpt):
    """Per-step counts and rejection reasons of a run (default: the latest)."""
    wh = _wh(warehouse)
    if run_id is None:
        latest = wh.query("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").column(0).to_pylist()
        if not latest:
            raise UsageError("no runs yet")
        run_id = latest[0]
    rid = run_id.replace("'", "''")
    _print_table(wh.query(f"SELECT * FROM runs WHERE run_id = '{rid}'"), title="run")
    _print_table(wh.query(f"SELECT * FROM run_steps WHERE run_id = '{rid}'"), title="steps")
    _print_table(
        wh.query(
            f"SELECT step, reason, count(*) AS n FROM quarantine WHERE run_id = '{rid}' GROUP BY ALL ORDER BY n DESC"
        ),
        title="quarantine reasons",
    )


@app.command()
@handle_errors
def serve(
    drop_folder: Path = typer.Option(..., "--drop-folder", help="Folder that receives new feedback files"),
    format: str = typer.Option(..., "--format", "-f", help="{formats}"),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="(default: {ingest.dataset})"),
    pattern: str | None = typer.Option(
        None, "--pattern", help="Glob of files to ingest in the drop folder (default: {schedule.pattern})"
    ),
    cron: str | None = typer.Option(None, "--cron", help="Cron schedule (default: {schedule.cron})"),
    name: str = typer.Option("nightly-ingest", "--name"),
    mapping: Path | None = typer.Option(None, "--mapping", "-m"),
    warehouse: Path | None = WarehouseOpt,
):
    """Serve the drop-folder ingest flow as a Prefect deployment on a cron schedule (blocks)."""
    from flows.ingest_flow import serve_drop_folder

    s = load_settings()
    schedule = s.schedule.with_flags(pattern=pattern, cron=cron)
    _format(format)
    serve_drop_folder(
        name=name,
        cron=schedule.cron,
        drop_folder=str(drop_folder),
        pattern=schedule.pattern,
        format_name=format,
        dataset=s.ingest.with_flags(dataset=dataset).dataset,
        mapping=str(mapping) if mapping else None,
        warehouse=str(warehouse_root(warehouse)),
    )


@app.command()
@handle_errors
def steps(kind: str | None = typer.Option(None, "--kind", help=f"Only one kind: {' | '.join(catalog.BY_KIND)}")):
    """List every registered format, step, generator and export with its one-line summary."""
    t = Table(show_lines=False, box=None)
    for column in ("kind", "name", "stage", "summary"):
        t.add_column(column, overflow="fold")
    for item in catalog.everything(kind):
        t.add_row(item.kind, item.name, item.stage, escape(item.summary))
    console.print(t)


@app.command()
@handle_errors
def decontaminate(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    benchmarks: list[Path] = typer.Option(
        [],
        "--benchmarks",
        "-b",
        help="Benchmark prompt file (JSONL/JSON/CSV/Parquet), repeatable (default: the bundled MT-Bench and "
        "Vicuna-bench questions)",
    ),
    ngram: int = typer.Option(8, "--ngram", help="Words per n-gram"),
    threshold: float = typer.Option(
        0.5, "--threshold", help="Share in (0, 1] of a benchmark item's n-grams a prompt turn must contain"
    ),
    responses: bool = typer.Option(False, "--responses", help="Also check chosen / rejected / completions"),
    field: str | None = typer.Option(
        None, "--field", help="Benchmark text field (default: prompt, turns, question, instruction or input)"
    ),
    version: str | None = typer.Option(None, "--version", "-v"),
    beam_arg: list[str] = BeamArgOpt,
    warehouse: Path | None = WarehouseOpt,
):
    """Reject rows whose prompt turns contain benchmark prompts (word 8-gram coverage); publishes a child version."""
    from flows.decontaminate import decontaminate as decontaminate_job
    from flows.decontaminate import summary

    with console.status(f"decontaminating {dataset}…"):
        rep = decontaminate_job(
            _wh(warehouse),
            dataset,
            [str(b) for b in benchmarks] or None,
            ngram=ngram,
            threshold=threshold,
            version=version,
            responses=responses,
            field=field,
            beam_args=beam_arg or load_settings().beam_args,
        )
    console.print_json(data=summary(rep))


@app.command()
@handle_errors
def noise(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    judge_url: list[str] = typer.Option(
        [],
        "--judge-url",
        help="A judge's OpenAI-compatible server, repeatable (the n-th goes with the n-th --judge-model)",
    ),
    judge_model: list[str] = typer.Option([], "--judge-model", help="The served model of each --judge-url"),
    reward_model: list[str] = typer.Option(
        [], "--reward-model", help="A stored reward model id or prefix (`prefmill reward train`), repeatable"
    ),
    m: int | None = typer.Option(
        None, "--m", help="Votes against the label that flag a pair (default: 2 of the k voters; 1 with one voter)"
    ),
    confidence: float = typer.Option(
        0.7,
        "--confidence",
        help="A voter is against when at least this sure, in (0.5, 1], that the rejected side is better",
    ),
    version: str | None = typer.Option(None, "--version", "-v"),
    concurrency: int | None = typer.Option(
        None, "--concurrency", help="Requests in flight per judge (default: {llm.concurrency})"
    ),
    beam_arg: list[str] = BeamArgOpt,
    warehouse: Path | None = WarehouseOpt,
):
    """Flag likely wrong labels: judges and reward models vote per pair; publishes noise_votes / noise_voters / noise_flag."""
    from flows.noise import flag_noise, summary

    if len(judge_url) != len(judge_model):
        raise UsageError(f"{len(judge_url)} --judge-url but {len(judge_model)} --judge-model: give one model per url")
    s = load_settings()
    with console.status(f"scoring {dataset} with {len(judge_url) + len(reward_model)} voter(s)…"):
        rep = flag_noise(
            _wh(warehouse),
            dataset,
            list(zip(judge_url, judge_model)),
            reward_model,
            version,
            m=m,
            confidence=confidence,
            concurrency=s.llm.with_flags(concurrency=concurrency).concurrency,
            beam_args=beam_arg or s.beam_args,
        )
    console.print_json(data=summary(rep))


@app.command()
@handle_errors
def config():
    """Print the effective settings (flags aside): environment (PREFMILL_*) > prefmill.toml > defaults."""
    settings = load_settings()
    path = config_path()
    out = {"file": str(path.resolve()) if path else None, "settings": settings.model_dump(mode="json")}
    sys.stdout.write(json.dumps(out, indent=2) + "\n")


def main() -> None:
    app()


# The LLM commands (llm serve, judge, judge audit, synthesize) register themselves on `app`.
from prefmill import cli_llm  # noqa: E402, F401

if __name__ == "__main__":
    main()
