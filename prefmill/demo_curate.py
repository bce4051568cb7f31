"""The curation part of the demo: dedup + ISA on a sample of the human pairs (CPU-sized)."""

from __future__ import annotations

from flows.curate import curate
from pipelines.curate import CurateParams
from prefmill.summaries import print_curate

DEMO_SAMPLE = 400  # pairs embedded on a CPU in well under a minute


def curate_demo(wh, console) -> None:
    console.print(f"[bold]curate[/] human pairs: sample {DEMO_SAMPLE}, dedup, embed, ISA select 25%")
    rep = curate(wh, "human", CurateParams(method="isa", budget=0.25, sample=DEMO_SAMPLE, seed=0))
    print_curate(console, rep)
