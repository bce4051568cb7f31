"""The `prefmill` command line (typer + rich).

Interactive commands (ingest, export, query, datasets, runs, report) call the job and warehouse
functions directly so they answer quickly; `run` and `serve` go through Prefect. Every expected
failure prints one line and exits non-zero; tracebacks are for bugs only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from prefmill.config import quiet_env, warehouse_root
from prefmill.errors import handle_errors
from prefmill.summaries import print_curate

quiet_env()

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="prefmill: ingest, curate, judge and export preference data.",
)
console = Console()
err = Console(stderr=True)

WarehouseOpt = typer.Option(
    None, "--warehouse", "-w", help="Warehouse directory (default: $PREFMILL_WAREHOUSE or ./.prefmill/warehouse)"
)


def _wh(path: Path | None):
    from warehouse import Warehouse

    return Warehouse(warehouse_root(path))


def _print_table(table, title: str | None = None, max_rows: int = 50) -> None:
    t = Table(title=title, show_lines=False)
    for name in table.column_names:
        t.add_column(name, overflow="fold", max_width=60)
    for row in table.slice(0, max_rows).to_pylist():
        t.add_row(*["" if v is None else str(v)[:200] for v in row.values()])
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


@app.command()
@handle_errors
def ingest(
    paths: list[Path] = typer.Argument(..., help="Source files (JSON, JSONL, .gz, Parquet, CSV)"),
    format: str = typer.Option(
        ..., "--format", "-f", help="hh-rlhf | trl | sharegpt | oasst | ratings | pandalm | mapping"
    ),
    mapping: Path | None = typer.Option(None, "--mapping", "-m", help="YAML mapping file (for --format mapping)"),
    dataset: str = typer.Option("default", "--dataset", "-d", help="Dataset name to publish into"),
    max_record_bytes: int | None = typer.Option(None, help="Quarantine records larger than this"),
    beam_arg: list[str] = typer.Option(
        [], "--beam-arg", help="Beam pipeline option, e.g. --beam-arg=--runner=FlinkRunner"
    ),
    warehouse: Path | None = WarehouseOpt,
):
    """Ingest feedback files into a dataset (Beam pipeline → validation → atomic commit)."""
    from flows.jobs import ingest as run_job

    if format == "mapping" and mapping is None:
        raise typer.BadParameter("--format mapping needs --mapping FILE")
    with console.status(f"ingesting {len(paths)} file(s) as {format}…"):
        report = run_job(
            _wh(warehouse),
            [str(p) for p in paths],
            format,
            dataset,
            mapping=str(mapping) if mapping else None,
            beam_args=beam_arg,
            max_record_bytes=max_record_bytes,
        )
    _ingest_summary(report)


@app.command()
@handle_errors
def run(
    paths: list[Path] = typer.Argument(..., help="Source files"),
    format: str = typer.Option(..., "--format", "-f"),
    mapping: Path | None = typer.Option(None, "--mapping", "-m"),
    dataset: str = typer.Option("default", "--dataset", "-d"),
    export_format: str | None = typer.Option(
        None, "--export", help="Also export: trl-dpo | trl-kto | listwise | sft | llamafactory"
    ),
    out: Path | None = typer.Option(None, "--out", help="Export directory"),
    warehouse: Path | None = WarehouseOpt,
):
    """Run the ingest flow through Prefect (ephemeral, no server needed): ingest → validate → commit → export."""
    from flows.ingest_flow import ingest_flow

    result = ingest_flow(
        paths=[str(p) for p in paths],
        format_name=format,
        dataset=dataset,
        mapping=str(mapping) if mapping else None,
        warehouse=str(warehouse_root(warehouse)),
        export_format=export_format,
        export_dir=str(out) if out else None,
    )
    console.print_json(data=result)


@app.command()
@handle_errors
def export(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    format: str = typer.Option(..., "--format", "-f", help="trl-dpo | trl-kto | listwise | sft | llamafactory"),
    out: Path = typer.Option(..., "--out", "-o"),
    version: str | None = typer.Option(None, "--version", "-v", help="Version id or prefix (default: latest)"),
    file_format: str = typer.Option("jsonl", "--file-format", help="jsonl | parquet"),
    test_fraction: float = typer.Option(0.1, "--test-fraction"),
    seed: int = typer.Option(0, "--seed"),
    split_key: str = typer.Option(
        "prompt_id", "--split-key", help="Column that no split may share (prompt_id, prompt_cluster)"
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

    include = {}
    if from_rankings:
        include["rankings"] = {"policy": from_rankings}
    if from_ratings:
        attr, _, margin = from_ratings.partition(":")
        include["ratings"] = {"attribute": attr, "min_margin": float(margin or 1.0)}
    res = do_export(
        _wh(warehouse),
        dataset,
        format,
        out,
        version=version,
        file_format=file_format,
        test_fraction=test_fraction,
        seed=seed,
        split_key=split_key,
        include_converted=include or None,
    )
    console.print(f"exported version [bold]{res.version_id}[/] → {out}")
    console.print(json.dumps(res.counts, indent=2, default=str))


@app.command()
@handle_errors
def curate(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    method: str = typer.Option("isa", "--method", help="isa | random | kcenter | none (dedup only)"),
    budget: float = typer.Option(0.1, "--budget", help="Fraction in (0, 1] of rows to keep, or a count ≥ 1"),
    version: str | None = typer.Option(None, "--version", "-v"),
    recipe: str = typer.Option(
        "pair", "--recipe", help="Embedding text: prompt | chosen | rejected | pair | prompt_last_turn"
    ),
    strata: str | None = typer.Option(
        None, "--strata", help="Keep each group's share: annotator_id | format | origin | ..."
    ),
    near_threshold: float = typer.Option(0.8, "--near-threshold"),
    semantic_threshold: float = typer.Option(0.95, "--semantic-threshold"),
    pair_identical_threshold: float = typer.Option(0.9, "--pair-identical-threshold"),
    cluster_cap: int | None = typer.Option(None, "--cluster-cap", help="Max pairs per prompt cluster"),
    mode: str = typer.Option("topk", "--mode", help="ISA: topk | stochastic"),
    sample: int | None = typer.Option(None, "--sample", help="Curate a seeded sample of N rows (CPU demos)"),
    seed: int = typer.Option(0, "--seed"),
    via_prefect: bool = typer.Option(False, "--prefect", help="Run through the Prefect flow"),
    warehouse: Path | None = WarehouseOpt,
):
    """Dedup, embed and select a budgeted subset; publishes a child version (removed rows in `removals`)."""
    from dataclasses import asdict

    from flows.curate import curate as curate_job
    from flows.curate import curate_flow_fn
    from pipelines.curate import CurateParams

    b = int(budget) if budget > 1 else budget
    params = CurateParams(
        method=method,
        budget=b,
        recipe=recipe,
        strata=strata,
        near_threshold=near_threshold,
        semantic_threshold=semantic_threshold,
        pair_identical_threshold=pair_identical_threshold,
        cluster_cap=cluster_cap,
        mode=mode,
        sample=sample,
        seed=seed,
    )
    if via_prefect:
        console.print_json(
            data=curate_flow_fn()(
                dataset=dataset, warehouse=str(warehouse_root(warehouse)), version=version, params=asdict(params)
            )
        )
        return
    with console.status(f"curating {dataset} ({method}, budget {budget})…"):
        rep = curate_job(_wh(warehouse), dataset, params, version)
    print_curate(console, rep)


reward_app = typer.Typer(help="Embedding Bradley–Terry reward models and annotator groups.", no_args_is_help=True)
app.add_typer(reward_app, name="reward")


@reward_app.command("train")
@handle_errors
def reward_train(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    version: str | None = typer.Option(None, "--version", "-v"),
    sample: int | None = typer.Option(None, "--sample", help="Train on a seeded sample of N non-tie pairs"),
    seed: int = typer.Option(0, "--seed"),
    warehouse: Path | None = WarehouseOpt,
):
    """Fit the embedding BT reward model on a version's human pairs and store it (versioned)."""
    from flows.reward import train_reward

    with console.status("embedding pairs and fitting…"):
        out = train_reward(_wh(warehouse), dataset, version, sample=sample, seed=seed)
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


@reward_app.command("groups")
@handle_errors
def reward_groups(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    key: str = typer.Option(
        "annotator_id", "--key", help="Grouping key column: annotator_id | format | source_file | prompt_cluster"
    ),
    k: int | None = typer.Option(None, "--k", help="Number of groups (default: chosen by held-out log-likelihood)"),
    sample: int | None = typer.Option(None, "--sample"),
    seed: int = typer.Option(0, "--seed"),
    version: str | None = typer.Option(None, "--version", "-v"),
    warehouse: Path | None = WarehouseOpt,
):
    """MaxMin-RLHF hard EM: group annotators by preference; adds `annotator_group` (use --strata annotator_group in curate)."""
    from flows.reward import fit_annotator_groups

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
    table = _wh(warehouse).runs()
    _print_table(table.slice(0, limit), title="runs")


@app.command()
@handle_errors
def report(run_id: str | None = typer.Argument(None), warehouse: Path | None = WarehouseOpt):
    """Per-step counts and rejection reasons of a run (default: the latest)."""
    wh = _wh(warehouse)
    rid = run_id or wh.query("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").column(0).to_pylist()
    rid = rid if isinstance(rid, str) else (rid[0] if rid else None)
    if rid is None:
        raise typer.BadParameter("no runs yet")
    rid_sql = rid.replace("'", "''")
    _print_table(wh.query(f"SELECT * FROM runs WHERE run_id = '{rid_sql}'"), title="run")
    _print_table(wh.query(f"SELECT * FROM run_steps WHERE run_id = '{rid_sql}'"), title="steps")
    _print_table(
        wh.query(
            f"SELECT step, reason, count(*) AS n FROM quarantine WHERE run_id = '{rid_sql}' "
            "GROUP BY ALL ORDER BY n DESC"
        ),
        title="quarantine reasons",
    )


@app.command()
@handle_errors
def serve(
    drop_folder: Path = typer.Option(..., "--drop-folder", help="Folder that receives new feedback files"),
    format: str = typer.Option(..., "--format", "-f"),
    dataset: str = typer.Option("default", "--dataset", "-d"),
    pattern: str = typer.Option("*.jsonl*", "--pattern", help="Glob of files to ingest in the drop folder"),
    cron: str = typer.Option("0 2 * * *", "--cron", help="Cron schedule (default: nightly at 02:00)"),
    name: str = typer.Option("nightly-ingest", "--name"),
    mapping: Path | None = typer.Option(None, "--mapping", "-m"),
    warehouse: Path | None = WarehouseOpt,
):
    """Serve the drop-folder ingest flow as a Prefect deployment on a cron schedule (blocks)."""
    from flows.ingest_flow import serve_drop_folder

    serve_drop_folder(
        name=name,
        cron=cron,
        drop_folder=str(drop_folder),
        pattern=pattern,
        format_name=format,
        dataset=dataset,
        mapping=str(mapping) if mapping else None,
        warehouse=str(warehouse_root(warehouse)),
    )


def main() -> None:
    app()


from prefmill import cli_llm  # noqa

if __name__ == "__main__":
    main()
