"""TRL's conversational preference layout (DPOTrainer, RewardTrainer, ...): prompt, chosen, rejected."""

from __future__ import annotations

import pyarrow as pa

from warehouse.exports.base import EXPORTS, ExportFormat, Part, part_from, preferred_pairs


@EXPORTS.register("trl-dpo", shapes=("pairwise",), tags=("dpo", "preference"))
class TrlDpo(ExportFormat):
    """TRL conversational DPO: prompt, chosen, rejected (ties are left out)."""

    converts_to = "pairwise"

    def build(self, sources: dict[str, pa.Table]) -> list[Part]:
        pairs, excluded = preferred_pairs(sources["pairwise"])
        return [part_from("dpo", pairs, pairs.select(["prompt", "chosen", "rejected"]), excluded)]
