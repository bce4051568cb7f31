"""CLI help, name checks and `prefmill steps` come from the registries, not from lists in the CLI."""

import pytest
from typer.testing import CliRunner

from prefmill import catalog
from prefmill.cli import app
from schemas.adapters import ADAPTERS
from schemas.registry import UnknownName
from warehouse.exports import EXPORTS

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "250"}, catch_exceptions=False)


@pytest.fixture
def extra_export():
    """A format registered for this test only, as a new module would register it."""
    entry = EXPORTS.add("zz-test-export", type("ZZ", (), {"__doc__": "A format only this test knows."}))
    yield entry
    EXPORTS.remove(entry.name)
    assert "zz-test-export" not in EXPORTS


def test_export_help_and_steps_list_a_newly_registered_export(extra_export):
    assert "zz-test-export" in invoke("export", "--help").stdout
    listing = invoke("steps", "--kind", "export").stdout
    assert "zz-test-export" in listing and "A format only this test knows." in listing


def test_steps_lists_every_registry():
    out = invoke("steps").stdout
    for item in catalog.everything():
        assert item.name in out
    assert set(ADAPTERS) <= {i.name for i in catalog.formats()}
    assert {e.name for e in EXPORTS} == {i.name for i in catalog.exports()}
    assert "special_tokens" in {i.name for i in catalog.steps("ingest")}


def test_ingest_help_lists_every_format():
    out = invoke("ingest", "--help").stdout
    assert all(name in out for name in ADAPTERS)


def test_synthesize_help_lists_the_generators():
    out = invoke("synthesize", "--help").stdout
    assert all(i.name in out for i in catalog.generators())


def test_unknown_names_are_one_line_listing_the_known():
    with pytest.raises(UnknownName, match="known: format, step, generator, export"):
        catalog.everything("nope")
    with pytest.raises(UnknownName, match="isa"):
        catalog.check("curate method", "nope", catalog.curate_methods())
    assert "none" in catalog.curate_methods()


def test_unknown_generator_fails_before_any_request(tmp_path):
    r = invoke(
        "synthesize", "--method", "nope", "-d", "x", "--url", "http://127.0.0.1:9", "--model", "m", "-w", str(tmp_path)
    )
    assert r.exit_code == 2
    assert "unknown method 'nope'" in r.stderr and "scir" in r.stderr
