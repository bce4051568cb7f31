"""Trainer layouts built from canonical rows (TRL conversational DPO/KTO, listwise, SFT).

Input tables hold a shape's canonical columns plus ``__key`` (the split key). Each builder returns
Parts: the trainer columns, plus per row the split key, a sort id and the lineage for the card.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from schemas.canonical import CONVERSATION

LINEAGE_COLUMNS = ["source_file", "format", "origin", "policy"]


@dataclass
class Part:
    name: str
    rows: pa.Table  # what the trainer reads
    keys: list[str]  # split key per row
    order: list[str]  # record_id per row: the deterministic output order
    lineage: pa.Table  # LINEAGE_COLUMNS per row
    excluded: Counter = field(default_factory=Counter)


def part_from(name: str, src: pa.Table, rows: pa.Table, excluded: Counter | None = None) -> Part:
    return Part(
        name,
        rows,
        src.column("__key").to_pylist(),
        src.column("record_id").to_pylist(),
        src.select(LINEAGE_COLUMNS),
        excluded or Counter(),
    )


def preferred_pairs(p: pa.Table) -> tuple[pa.Table, Counter]:
    """Ties are kept in the warehouse but never become chosen/rejected training pairs."""
    keep = pc.equal(p.column("label"), "chosen_better")
    n_keep = pc.sum(keep).as_py() or 0
    excluded = Counter({"tie": p.num_rows - n_keep}) if p.num_rows - n_keep else Counter()
    return p.filter(keep), excluded


def trl_dpo(sources: dict[str, pa.Table]) -> list[Part]:
    pairs, excluded = preferred_pairs(sources["pairwise"])
    return [part_from("dpo", pairs, pairs.select(["prompt", "chosen", "rejected"]), excluded)]


def trl_kto(sources: dict[str, pa.Table]) -> list[Part]:
    b = sources["binary"]
    return [part_from("kto", b, b.select(["prompt", "completion", "label"]))]


def listwise(sources: dict[str, pa.Table]) -> list[Part]:
    lw = sources["listwise"]
    rows = pa.table(
        {
            "prompt": lw.column("prompt"),
            "responses": lw.column("completions"),
            "scores": lw.column("scores"),
            "ranks": lw.column("ranks"),
        }
    )
    return [part_from("listwise", lw, rows)]


def _best(ranks: list | None, scores: list | None) -> list[int] | None:
    """Indices of the best completion(s): lowest rank, else highest score; a tie at the top keeps all."""
    if ranks is not None and any(r is not None for r in ranks):
        top = min(r for r in ranks if r is not None)
        return [i for i, r in enumerate(ranks) if r == top]
    if scores is not None and any(s is not None for s in scores):
        top = max(s for s in scores if s is not None)
        return [i for i, s in enumerate(scores) if s == top]
    return None


def sft(sources: dict[str, pa.Table]) -> list[Part]:
    """messages = prompt + the preferred completion: chosen, a desirable one, or the best of a list."""
    excluded: Counter = Counter()
    picked: list[tuple[dict, list]] = []  # (source row, completion)
    pairs, ties = preferred_pairs(sources["pairwise"])
    excluded.update(ties)
    picked += [(r, r["chosen"]) for r in pairs.to_pylist()]
    b = sources["binary"]
    desirable = b.filter(b.column("label"))
    excluded["undesirable"] += b.num_rows - desirable.num_rows
    picked += [(r, r["completion"]) for r in desirable.to_pylist()]
    for r in sources["listwise"].to_pylist():
        best = _best(r["ranks"], r["scores"])
        if best is None:
            excluded["unranked_list"] += 1
        picked += [(r, r["completions"][i]) for i in best or []]
    seen, messages, keys, order, lineage = set(), [], [], [], []
    for r, completion in sorted(picked, key=lambda x: x[0]["record_id"]):
        ident = (r["prompt_id"], repr(completion))
        if ident in seen:  # the same prompt + answer from several sources is one SFT example
            excluded["duplicate_example"] += 1
            continue
        seen.add(ident)
        messages.append(r["prompt"] + completion)
        keys.append(r["__key"])
        order.append(r["record_id"])
        lineage.append({c: r[c] for c in LINEAGE_COLUMNS})
    rows = pa.table({"messages": pa.array(messages, pa.list_(CONVERSATION.value_type))})
    lineage_t = pa.Table.from_pylist(lineage, schema=pa.schema([(c, pa.string()) for c in LINEAGE_COLUMNS]))
    return [Part("sft", rows, keys, order, lineage_t, +excluded)]


def llamafactory(sources: dict[str, pa.Table]) -> list[Part]:
    from warehouse.llamafactory import dpo_part, kto_part

    return [dpo_part(sources["pairwise"]), kto_part(sources["binary"])]


BUILDERS = {"trl-dpo": trl_dpo, "trl-kto": trl_kto, "listwise": listwise, "sft": sft, "llamafactory": llamafactory}
# Shapes each format reads, and the shape conversions feed (include_converted).
NEEDS = {
    "trl-dpo": ("pairwise",),
    "trl-kto": ("binary",),
    "listwise": ("listwise",),
    "sft": ("pairwise", "binary", "listwise"),
    "llamafactory": ("pairwise", "binary"),
}
CONVERSION_TARGET = {"trl-dpo": "pairwise", "sft": "pairwise", "llamafactory": "pairwise", "trl-kto": "binary"}
