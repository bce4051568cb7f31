"""The export formats are registry entries: the CLI lists them, the card takes its tags from them,
and a new format is one class plus its registration."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pytest

from schemas.canonical import SHAPES
from schemas.errors import PrefmillError
from schemas.registry import UnknownName
from warehouse import WarehouseError
from warehouse.export import export
from warehouse.exports import EXPORTS, ExportFormat, Part
from warehouse.exports.base import part_from

FIVE = ["trl-dpo", "trl-kto", "listwise", "sft", "llamafactory"]


def _card_tags(readme: str) -> list[str]:
    front = readme.split("---\n")[1]
    return [line[2:] for line in front.split("tags:\n")[1].splitlines() if line.startswith("- ")]


def test_the_registry_lists_the_five_formats_with_what_they_read():
    assert EXPORTS.names() == FIVE
    for entry in EXPORTS:
        assert entry.summary and entry.tags, entry.name
        assert entry.shapes and set(entry.shapes) <= set(SHAPES), entry.name
        # include_converted rows join one of the shapes the format reads
        assert entry.obj.converts_to is None or entry.obj.converts_to in entry.shapes, entry.name
    help_text = EXPORTS.help()
    assert all(f"{name}: " in help_text for name in FIVE)


def test_an_unknown_format_is_one_line_listing_the_known_ones(mixed, tmp_path):
    with pytest.raises(WarehouseError) as err:
        export(mixed, "mix", "openai", tmp_path / "x")
    message = str(err.value)
    assert isinstance(err.value, UnknownName) and isinstance(err.value, PrefmillError)
    assert message == "unknown export format 'openai'; known: " + ", ".join(FIVE)
    assert not (tmp_path / "x").exists()
    with pytest.raises(UnknownName, match="known: trl-dpo, trl-kto, listwise, sft, llamafactory$"):
        EXPORTS.get("openai")


@pytest.mark.parametrize("fmt", FIVE)
def test_the_card_tags_come_from_the_entry(mixed, tmp_path, fmt):
    export(mixed, "mix", fmt, tmp_path / fmt)
    assert _card_tags((tmp_path / fmt / "README.md").read_text()) == ["prefmill", *EXPORTS.get(fmt).tags]


def test_a_new_format_is_one_class_and_its_registration(mixed, tmp_path, monkeypatch):
    monkeypatch.setattr(EXPORTS, "_entries", dict(EXPORTS._entries))  # the registration is undone after the test

    @EXPORTS.register("prompts", shapes=("pairwise", "binary"), tags=("prompts-only",))
    class Prompts(ExportFormat):
        """Every distinct prompt once, per shape it came from."""

        file_pattern = "{part}-{split}.{ext}"

        def build(self, sources: dict[str, pa.Table]) -> list[Part]:
            return [part_from(shape, t, t.select(["prompt"])) for shape, t in sorted(sources.items())]

        def extra_files(self, dataset: str, files: dict[tuple[str, str], str], parts: list[Part]) -> dict[str, str]:
            return {"files.json": orjson.dumps(sorted(files.values())).decode()}

    assert "prompts" in EXPORTS.names()
    res = export(mixed, "mix", "prompts", tmp_path / "p", test_fraction=0.0)
    out = tmp_path / "p"
    assert [p.name for p in res.paths] == ["binary-train.jsonl", "pairwise-train.jsonl", "files.json", "README.md"]
    rows = [orjson.loads(line) for line in (out / "pairwise-train.jsonl").read_bytes().splitlines()]
    assert len(rows) == mixed.read("mix", "pairwise").num_rows and all(set(r) == {"prompt"} for r in rows)
    assert orjson.loads((out / "files.json").read_bytes()) == ["binary-train.jsonl", "pairwise-train.jsonl"]
    assert _card_tags((out / "README.md").read_text()) == ["prefmill", "prompts-only"]
    with pytest.raises(WarehouseError, match="prompts cannot use converted rankings"):  # converts_to is None
        export(mixed, "mix", "prompts", tmp_path / "c", include_converted={"rankings": {}})
