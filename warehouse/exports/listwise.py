"""Ranked lists for listwise trainers: prompt, responses, scores, ranks."""

from __future__ import annotations

import pyarrow as pa

from warehouse.exports.base import EXPORTS, ExportFormat, Part, part_from


@EXPORTS.register("listwise", shapes=("listwise",), tags=("listwise", "ranking"))
class Listwise(ExportFormat):
    """Ranked lists: prompt, responses, scores, ranks."""

    def build(self, sources: dict[str, pa.Table]) -> list[Part]:
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
