"""LLM commands: `prefmill llm serve`, `prefmill judge` (+ `prefmill judge audit`), `prefmill synthesize`.

Registered on the main typer app (prefmill/cli.py imports this module at its end). Like the other
interactive commands they call the plain jobs directly (``--prefect`` goes through the flow); the
server, model, concurrency and prices default to the ``[llm]`` settings (prefmill/settings.py).

`judge` is a typer group whose callback judges when no subcommand is given, so `prefmill judge
--dataset X --url ...` works as before and `prefmill judge audit --dataset GOLD ...` audits. `judge` and
`synthesize` go through the gate (flows/audit.py): `--no-gate`, `--min-kappa`, `--min-swap-consistency`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from prefmill import catalog
from prefmill.cli import BeamArgOpt, GateOpts, WarehouseOpt, _wh, app, console, print_audit, print_gate
from prefmill.errors import UsageError, fail, handle_errors
from prefmill.helptext import App, fill
from prefmill.settings import LLMSettings, load_settings, warehouse_root

llm_app = App(add_completion=False, no_args_is_help=True, help="Serve models with vLLM (its own virtualenv).")
app.add_typer(llm_app, name="llm")

UrlOpt = typer.Option(None, "--url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000 (default: {llm.url})")
ModelOpt = typer.Option(None, "--model", help="Served model name (default: {llm.model})")
MaxUsdOpt = typer.Option(None, "--max-usd", help="Stop sending once this much is spent (default: {llm.max_usd})")
GpuPriceOpt = typer.Option(
    None, "--gpu-usd-per-hour", help="GPU rental price, for cost and --max-usd (default: {llm.gpu_usd_per_hour})"
)
ConcurrencyOpt = typer.Option(None, "--concurrency", help="Requests in flight (default: {llm.concurrency})")


def _endpoint(llm: LLMSettings) -> tuple[str, str]:
    """(url, model); one line saying where to set them when neither a flag nor a setting gives one."""
    if llm.url is None or llm.model is None:
        missing = [f"--{k}" for k, v in (("url", llm.url), ("model", llm.model)) if v is None]
        raise UsageError(
            f"no {' and '.join(missing)}: give the flag, or set llm.url / llm.model in prefmill.toml "
            "(or PREFMILL_LLM_URL / PREFMILL_LLM_MODEL)"
        )
    return llm.url, llm.model


def parse_settings(items: list[str]) -> dict:
    """``KEY=VALUE`` pairs → a dict; VALUE is read as JSON when it parses (numbers, booleans, lists)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


# ---------------------------------------------------------------------------------------- llm serve


@llm_app.command("serve")
@handle_errors
def llm_serve(
    model: str = typer.Argument(..., help="Model path or hub id; with --tiny, the folder to build the tiny model in"),
    port: int = typer.Option(8000, "--port", "-p"),
    host: str = typer.Option("127.0.0.1", "--host"),
    tiny: bool = typer.Option(False, "--tiny", help="Build a tiny random GPT-2 at MODEL first (CPU tests and demos)"),
    max_model_len: int = typer.Option(2048, "--max-model-len"),
    served_model_name: str | None = typer.Option(None, "--served-model-name"),
):
    """Serve MODEL with `vllm serve` (OpenAI-compatible API) until Ctrl-C; the vLLM env is created on first use."""
    from judges.vllm_env import serve

    if tiny:
        from judges.tiny_model import build_tiny_model

        if not (Path(model) / "config.json").exists():
            with console.status(f"building the tiny model in {model}…"):
                build_tiny_model(model)
    import signal

    from judges.vllm_env import _interrupt

    signal.signal(signal.SIGTERM, _interrupt)  # a plain `kill` stops vLLM too, like Ctrl-C
    try:
        with console.status("starting vllm serve (the first start takes a while)…"):
            handle = serve(model, port, host, served_model_name=served_model_name, max_model_len=max_model_len)
    except KeyboardInterrupt:
        fail("interrupted while vllm serve was starting", 130)
    try:  # print inside: a Ctrl-C sent as soon as the line is read must stop the server, not fail the start
        console.print(f"serving [bold]{handle.model}[/] at {handle.base_url} (log: {handle.log_path}); Ctrl-C stops")
        code = handle.process.wait()
    except KeyboardInterrupt:
        handle.stop()
        return
    fail(f"vllm serve exited with code {code}; log: {handle.log_path}")


# ---------------------------------------------------------------------------------------- judge


class _Group(TyperGroup):
    """A command group whose own options fill their help placeholders when help is shown (as helptext.Command)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        if self.help:
            self.help = fill(self.help)
        for param in self.params:
            text = getattr(param, "help", None)
            if isinstance(text, str):
                setattr(param, "help", fill(text))  # noqa: B010
        super().format_help(ctx, formatter)


judge_app = App(
    cls=_Group,
    add_completion=False,
    help="Judge a dataset's pairs (`prefmill judge --dataset X`), or audit a judge on a gold set (`judge audit`).",
)
app.add_typer(judge_app, name="judge")


def _gate_opts(no_gate: bool, min_kappa: float | None, min_swap_consistency: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {"no_gate": no_gate}
    if min_kappa is not None:
        out["min_kappa"] = min_kappa
    if min_swap_consistency is not None:
        out["min_swap_consistency"] = min_swap_consistency
    return out


@judge_app.callback(invoke_without_command=True)
@handle_errors
def judge(
    ctx: typer.Context,
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="Dataset whose pairs to judge"),
    url: str | None = UrlOpt,
    model: str | None = ModelOpt,
    version: str | None = typer.Option(None, "--version", "-v", help="Version id or prefix (default: latest)"),
    max_usd: float | None = MaxUsdOpt,
    gpu_usd_per_hour: float | None = GpuPriceOpt,
    concurrency: int | None = ConcurrencyOpt,
    limit: int | None = typer.Option(None, "--limit", help="Judge only the first N pairs"),
    guided: bool = typer.Option(False, "--guided", help="Force the answer to A/B with structured outputs"),
    no_gate: bool = GateOpts.no_gate,
    min_kappa: float | None = GateOpts.min_kappa,
    min_swap_consistency: float | None = GateOpts.min_swap_consistency,
    beam_arg: list[str] = BeamArgOpt,
    via_prefect: bool = typer.Option(False, "--prefect", help="Run through the Prefect flow"),
    warehouse: Path | None = WarehouseOpt,
):
    """Judge a dataset's pairs (position-swapped verdicts) and publish a child version with verdict columns.

    The judge (model + served revision + template) needs a passing audit (`prefmill judge audit`)."""
    if ctx.invoked_subcommand is not None:
        return
    if dataset is None:
        raise UsageError("judge needs --dataset DATASET (or a subcommand: prefmill judge audit --help)")
    from flows.judge import judge_dataset, summary

    s = load_settings()
    llm = s.llm.with_flags(
        url=url, model=model, max_usd=max_usd, gpu_usd_per_hour=gpu_usd_per_hour, concurrency=concurrency
    )
    url, model = _endpoint(llm)
    opts: dict[str, Any] = {
        "beam_args": beam_arg or s.beam_args,
        "concurrency": llm.concurrency,
        "max_usd": llm.max_usd,
        "gpu_usd_per_hour": llm.gpu_usd_per_hour,
        "limit": limit,
        "verdict_options": {"guided": True} if guided else None,
        **_gate_opts(no_gate, min_kappa, min_swap_consistency),
    }
    if via_prefect:
        from flows.judge import judge_flow

        out = judge_flow(
            dataset=dataset,
            base_url=url,
            model=model,
            version=version,
            warehouse=str(warehouse_root(warehouse)),
            options=opts,
        )
    else:
        with console.status(f"judging {dataset} with {model}…"):
            out = summary(judge_dataset(_wh(warehouse), dataset, url, model, version, **opts))
    console.print(
        f"[bold]run[/] {out['run_id']}: {out['rows']:,} pairs; judged {out['rows_judged']:,}, "
        f"rejected {out['rows_rejected']:,}, not attempted {out['rows_not_attempted']:,}"
    )
    if out["reasons"]:
        console.print(
            "rejected: " + ", ".join(f"{k} {v}" for k, v in sorted(out["reasons"].items(), key=lambda kv: -kv[1]))
        )
    console.print(
        f"requests: {out['cache_hits']:,} from cache, {out['cache_misses']:,} new; tokens "
        f"{out['prompt_tokens'] + out['completion_tokens']:,}; GPU-seconds {out['gpu_seconds']:.1f}; "
        f"cost ${out['cost_usd']:.4f}"
    )
    print_gate(out)
    if out["version_id"]:
        console.print(f"version [bold]{out['version_id']}[/] (parent {out['parent_version'][:12]})")
    else:
        console.print(f"no new version ({out['status']}: the verdicts are unchanged)")
    if out["budget_exhausted"]:
        console.print(
            "[yellow]budget exhausted:[/] rows without a verdict are in the quarantine; rerun with a "
            "larger --max-usd to resume (answers already paid for come from the request cache)"
        )


@judge_app.command("audit")
@handle_errors
def judge_audit(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Gold set: a dataset of human-labelled pairs"),
    url: str | None = UrlOpt,
    model: str | None = ModelOpt,
    version: str | None = typer.Option(None, "--version", "-v", help="Gold set version (default: latest)"),
    max_usd: float | None = MaxUsdOpt,
    gpu_usd_per_hour: float | None = GpuPriceOpt,
    concurrency: int | None = ConcurrencyOpt,
    limit: int | None = typer.Option(None, "--limit", help="Judge only the first N gold rows"),
    guided: bool = typer.Option(False, "--guided", help="Force the answer to A/B with structured outputs"),
    min_kappa: float | None = GateOpts.min_kappa,
    min_swap_consistency: float | None = GateOpts.min_swap_consistency,
    as_json: bool = typer.Option(False, "--json", help="Print the whole audit as JSON"),
    beam_arg: list[str] = BeamArgOpt,
    warehouse: Path | None = WarehouseOpt,
):
    """Audit a judge against human labels (accuracy, κ, human ceiling, swap/position/length bias, calibration);
    stores a `judge_audits` row that `judge` and `synthesize` check before publishing."""
    from flows.audit import audit_judge, summary

    s = load_settings()
    llm = s.llm.with_flags(
        url=url, model=model, max_usd=max_usd, gpu_usd_per_hour=gpu_usd_per_hour, concurrency=concurrency
    )
    url, model = _endpoint(llm)
    gate = _gate_opts(False, min_kappa, min_swap_consistency)
    del gate["no_gate"]
    with console.status(f"auditing {model} on {dataset}…"):
        rep = audit_judge(
            _wh(warehouse),
            dataset,
            url,
            model,
            version,
            concurrency=llm.concurrency,
            max_usd=llm.max_usd,
            gpu_usd_per_hour=llm.gpu_usd_per_hour,
            limit=limit,
            verdict_options={"guided": True} if guided else None,
            beam_args=beam_arg or s.beam_args,
            **gate,
        )
    print_audit(summary(rep), as_json)


# ---------------------------------------------------------------------------------------- synthesize


@app.command()
@handle_errors
def synthesize(
    method: str = typer.Option(..., "--method", "-m", help="{generators}"),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset to publish the generated rows into"),
    url: str | None = typer.Option(None, "--url", help="Policy / generator server (default: {llm.url})"),
    model: str | None = typer.Option(
        None, "--model", help="Policy / generator served model name (default: {llm.model})"
    ),
    judge_url: str | None = typer.Option(
        None,
        "--judge-url",
        help="cyclealign: black-box ranker; scir: generative "
        "RM (default: the policy); isheep: fixed base model that judges",
    ),
    judge_model: str | None = typer.Option(None, "--judge-model"),
    reference_url: str | None = typer.Option(None, "--reference-url", help="scir: the reference model (π_ref)"),
    reference_model: str | None = typer.Option(None, "--reference-model"),
    prompts_from: str | None = typer.Option(None, "--prompts-from", help="Use the distinct prompts of this dataset"),
    prompts_version: str | None = typer.Option(None, "--prompts-version", help="Version of --prompts-from"),
    prompts: Path | None = typer.Option(None, "--prompts", help='JSONL file of {"prompt": ...}'),
    seeds: Path | None = typer.Option(None, "--seeds", help="isheep: self-instruct seed tasks (default: bundled)"),
    limit: int | None = typer.Option(None, "--limit", help="At most N prompts (isheep: N instructions)"),
    settings: list[str] = typer.Option([], "--set", help="Method setting KEY=VALUE, e.g. --set max_tokens=256"),
    iteration: int | None = typer.Option(None, "--iteration", help="scir / isheep iteration"),
    concurrency: int | None = ConcurrencyOpt,
    max_usd: float | None = MaxUsdOpt,
    gpu_usd_per_hour: float | None = GpuPriceOpt,
    no_gate: bool = GateOpts.no_gate,
    min_kappa: float | None = GateOpts.min_kappa,
    min_swap_consistency: float | None = GateOpts.min_swap_consistency,
    beam_arg: list[str] = BeamArgOpt,
    via_prefect: bool = typer.Option(False, "--prefect", help="Run through the method's Prefect flow"),
    warehouse: Path | None = WarehouseOpt,
):
    """Generate preference data with CycleAlign, SCIR, I-SHEEP or Multifaceted and publish it as a version.

    The method's judge (--judge-url/--judge-model, else the policy) needs a passing `prefmill judge audit`."""
    from flows.synthesize import summary
    from flows.synthesize import synthesize as run_job

    catalog.check("method", method, [i.name for i in catalog.generators()])
    s = load_settings()
    llm = s.llm.with_flags(
        url=url, model=model, max_usd=max_usd, gpu_usd_per_hour=gpu_usd_per_hour, concurrency=concurrency
    )
    url, model = _endpoint(llm)
    opts: dict[str, Any] = {
        "judge_url": judge_url,
        "judge_model": judge_model,
        "reference_url": reference_url,
        "reference_model": reference_model,
        "prompts_version": prompts_version,
        "seeds_file": str(seeds) if seeds else None,
        "config": parse_settings(settings),
        "iteration": iteration,
        "concurrency": llm.concurrency,
        "max_usd": llm.max_usd,
        "gpu_usd_per_hour": llm.gpu_usd_per_hour,
        "beam_args": beam_arg or s.beam_args,
        **_gate_opts(no_gate, min_kappa, min_swap_consistency),
    }
    prompts_file = str(prompts) if prompts else None
    if via_prefect:
        import flows.synthesize as fs

        out = getattr(fs, f"{method}_flow")(
            dataset=dataset,
            url=url,
            model=model,
            warehouse=str(warehouse_root(warehouse)),
            prompts_from=prompts_from,
            prompts_file=prompts_file,
            limit=limit,
            options=opts,
        )
    else:
        with console.status(f"{method}: generating into {dataset}…"):
            out = summary(
                run_job(
                    _wh(warehouse),
                    method,
                    dataset,
                    url=url,
                    model=model,
                    prompts_from=prompts_from,
                    prompts_file=prompts_file,
                    limit=limit,
                    **opts,
                )
            )
    console.print(
        f"[bold]run[/] {out['run_id']} ({method}, {out['prompts']:,} prompts): read {out['rows_read']:,} "
        f"= kept {out['rows_kept']:,} + rejected {out['rows_rejected']:,} "
        f"+ duplicate {out['rows_duplicate']:,}"
    )
    if out["top_reasons"]:
        console.print("rejected: " + ", ".join(f"{k} {v}" for k, v in out["top_reasons"].items()))
    cost = f"${out['usd_per_kept_pair']:.5f} per kept pair" if out["usd_per_kept_pair"] is not None else "no kept pairs"
    console.print(
        f"requests: {out['cache_hits']:,} from cache, {out['cache_misses']:,} new; cost ${out['cost_usd']:.4f} ({cost})"
    )
    print_gate(out)
    if out["version_id"]:
        shapes = ", ".join(f"{k} {v:,}" for k, v in out["rows_by_shape"].items())
        console.print(f"version [bold]{out['version_id']}[/] ({shapes})")
    elif out["rows_kept"] == 0 and out["rows_duplicate"] == 0:
        console.print(
            "[yellow]nothing kept:[/] every candidate was dropped (reasons above; details in the "
            f"quarantine: prefmill report {out['run_id']}); no version was published"
        )
    else:
        console.print(f"no new version ({out['status']}: every kept row was already in {dataset})")
