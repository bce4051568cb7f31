"""The curation part of the demo: dedup + ISA on a sample of the human pairs (CPU-sized)."""
from __future__ import annotations

from flows.curate import curate
from pipelines.curate import CurateParams

DEMO_SAMPLE = 400  # pairs embedded on a CPU in well under a minute


def curate_demo(wh, console) -> None:
    console.print(f"[bold]curate[/] human pairs: sample {DEMO_SAMPLE}, dedup, embed, ISA select 25%")
    rep = curate(wh, "human", CurateParams(method="isa", budget=0.25, sample=DEMO_SAMPLE, seed=0))
    c = rep.commit.counts
    console.print(f"  read {c.rows_read:,} = kept {c.rows_kept:,} + rejected {c.rows_rejected:,} "
                  f"+ duplicate {c.rows_duplicate:,} → version {rep.commit.version_id}")
    for s in rep.outcome.steps:
        console.print(f"    {s['step']:<22} in {s['rows_in']:>6,}  kept {s['rows_kept']:>6,}  "
                      f"rejected {s['rows_rejected']:>6,}  duplicate {s['rows_duplicate']:>5,}")
    e = rep.outcome.embed
    console.print(f"  embeddings: {e.computed} computed, {e.cache_hits} from cache, {e.truncated} truncated at the "
                  "model window")
