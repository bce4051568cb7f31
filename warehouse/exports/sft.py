"""Supervised fine-tuning examples: ``messages`` = the prompt plus a preferred completion."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from schemas.canonical import CONVERSATION
from warehouse.exports.base import EXPORTS, ExportFormat, Part, lineage_of, preferred_pairs


def _best(ranks: list | None, scores: list | None) -> list[int] | None:
    """Indices of the best completion(s): lowest rank, else highest score; a tie at the top keeps all."""
    if ranks is not None and any(r is not None for r in ranks):
        top = min(r for r in ranks if r is not None)
        return [i for i, r in enumerate(ranks) if r == top]
    if scores is not None and any(s is not None for s in scores):
        best = max(s for s in scores if s is not None)
        return [i for i, s in enumerate(scores) if s == best]
    return None


@EXPORTS.register("sft", shapes=("pairwise", "binary", "listwise"), tags=("sft",))
class Sft(ExportFormat):
    """SFT messages: each prompt with its chosen, desirable or best-ranked completion."""

    converts_to = "pairwise"

    def build(self, sources: dict[str, pa.Table]) -> list[Part]:
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
        seen: set[tuple[str, str]] = set()
        messages, kept = [], []
        for r, completion in sorted(picked, key=lambda x: x[0]["record_id"]):
            ident = (r["prompt_id"], repr(completion))
            if ident in seen:  # the same prompt + answer from several sources is one SFT example
                excluded["duplicate_example"] += 1
                continue
            seen.add(ident)
            messages.append(r["prompt"] + completion)
            kept.append(r)
        rows = pa.table({"messages": pa.array(messages, pa.list_(CONVERSATION.value_type))})
        keys = [r["__key"] for r in kept]
        order = [r["record_id"] for r in kept]
        return [Part("sft", rows, keys, order, lineage_of(kept), +excluded)]
