"""TRL's conversational unpaired preference layout (KTOTrainer): prompt, completion, label."""

from __future__ import annotations

import pyarrow as pa

from warehouse.exports.base import EXPORTS, ExportFormat, Part, part_from


@EXPORTS.register("trl-kto", shapes=("binary",), tags=("kto", "binary-feedback"))
class TrlKto(ExportFormat):
    """TRL conversational KTO: prompt, completion, label."""

    converts_to = "binary"

    def build(self, sources: dict[str, pa.Table]) -> list[Part]:
        b = sources["binary"]
        return [part_from("kto", b, b.select(["prompt", "completion", "label"]))]
