"""Plain-text run summaries shared by the CLI and the demo."""

from __future__ import annotations


def print_curate(console, rep) -> None:
    c = rep.commit.counts
    console.print(
        f"[bold]run[/] {rep.run_id}: read {c.rows_read:,} = kept {c.rows_kept:,} + rejected "
        f"{c.rows_rejected:,} + duplicate {c.rows_duplicate:,} → version {rep.commit.version_id} "
        f"(parent {rep.parent_version[:12]})"
    )
    for s in rep.outcome.steps:
        console.print(
            f"  {s['step']:<22} in {s['rows_in']:>7,}  kept {s['rows_kept']:>7,}  "
            f"rejected {s['rows_rejected']:>6,}  duplicate {s['rows_duplicate']:>6,}"
        )
    if rep.outcome.embed:
        e = rep.outcome.embed
        console.print(
            f"  embeddings: {e.computed:,} computed, {e.cache_hits:,} from cache, "
            f"{e.truncated:,} truncated at the model window"
        )
