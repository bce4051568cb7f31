"""Export formats: ``EXPORTS`` lists them (name, summary, shapes read, card tags) for the CLI and the card.

A new format is one module here plus its import line below (the registration line); the import order
is the order the CLI lists them in.
"""

from __future__ import annotations

# isort: off
from warehouse.exports import trl_dpo  # noqa: F401  (each import registers its format)
from warehouse.exports import trl_kto  # noqa: F401
from warehouse.exports import listwise  # noqa: F401
from warehouse.exports import sft  # noqa: F401
from warehouse.exports import llamafactory  # noqa: F401

# isort: on
from warehouse.exports.base import EXPORTS, ExportFormat, Part

__all__ = ["EXPORTS", "ExportFormat", "Part"]
