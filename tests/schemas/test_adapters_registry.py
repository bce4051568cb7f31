"""get_adapter / ADAPTERS: names, one-line errors the CLI can print, options."""

from __future__ import annotations

import pytest

from schemas.adapters import ADAPTERS, MappingError, UnknownFormat, get_adapter

NAMES = ["hh-rlhf", "trl", "sharegpt", "oasst", "ratings", "pandalm", "mapping"]


def test_registry_names():
    assert list(ADAPTERS) == NAMES
    for name in NAMES[:-1]:
        adapter = get_adapter(name)
        assert adapter.name == name and callable(adapter.adapt)


def test_unknown_format_lists_the_known_names():
    with pytest.raises(UnknownFormat) as e:
        get_adapter("csv-magic")
    msg = str(e.value)
    assert isinstance(e.value, ValueError) and "\n" not in msg and "'csv-magic'" in msg
    assert all(name in msg for name in NAMES)


def test_options_are_passed_and_checked():
    assert (
        get_adapter("oasst", binary=False).adapt(
            {
                "prompt": {
                    "message_id": "p",
                    "role": "prompter",
                    "text": "Q",
                    "replies": [
                        {"message_id": "a", "role": "assistant", "text": "A", "emojis": {"+1": 2}, "replies": []}
                    ],
                }
            }
        )
        == []
    )
    assert get_adapter("hh-rlhf", origin="synthetic").origin == "synthetic"
    with pytest.raises(ValueError, match="does not take option.*colour.*it takes: origin"):
        get_adapter("hh-rlhf", colour="red")


def test_mapping_only_goes_with_the_mapping_format():
    with pytest.raises(MappingError, match="only applies to format 'mapping'"):
        get_adapter("trl", mapping="x.yaml")
