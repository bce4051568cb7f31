"""Settings precedence: flag > environment (PREFMILL_*) > prefmill.toml > defaults, with real files and variables."""

import json
from pathlib import Path

import pytest

from prefmill.settings import ConfigError, load_settings, warehouse_root
from warehouse.layout import default_root


def write_toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- through the installed command: the warehouse a command opens is named in its error line


def test_warehouse_default_file_env_flag(prefmill_cli, one_line_error, tmp_path):
    assert f"no warehouse at {tmp_path / '.prefmill' / 'warehouse'} " in one_line_error(prefmill_cli("datasets"))
    write_toml(tmp_path / "prefmill.toml", 'warehouse = "wh-from-file"\n')
    assert f"no warehouse at {tmp_path / 'wh-from-file'} " in one_line_error(prefmill_cli("datasets"))
    env = {"PREFMILL_WAREHOUSE": str(tmp_path / "wh-from-env")}
    assert f"no warehouse at {tmp_path / 'wh-from-env'} " in one_line_error(prefmill_cli("datasets", env=env))
    flag = tmp_path / "wh-from-flag"
    assert f"no warehouse at {flag} " in one_line_error(prefmill_cli("datasets", "-w", flag, env=env))


def test_section_value_file_env_flag(prefmill_cli, one_line_error, tmp_path):
    def export(*flags, env=None):
        return one_line_error(prefmill_cli("export", "-d", "x", "--out", tmp_path / "out", *flags, env=env))

    assert "needs --format" in export()
    write_toml(tmp_path / "prefmill.toml", '[export]\nformat = "fmt-from-file"\n')
    assert "'fmt-from-file'" in export()
    env = {"PREFMILL_EXPORT_FORMAT": "fmt-from-env"}
    assert "'fmt-from-env'" in export(env=env)
    line = export("--format", "fmt-from-flag", env=env)
    assert "'fmt-from-flag'" in line and "trl-dpo" in line  # the known names come from the export registry


def test_config_file_named_by_env_and_relative_paths(prefmill_cli, tmp_path):
    conf = write_toml(tmp_path / "elsewhere" / "team.toml", 'warehouse = "shared/wh"\n[llm]\nconcurrency = 8\n')
    p = prefmill_cli("config", env={"PREFMILL_CONFIG": str(conf), "PREFMILL_LLM_URL": "http://h:1"})
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["file"] == str(conf)
    s = out["settings"]
    assert s["warehouse"] == str(tmp_path / "elsewhere" / "shared" / "wh")  # relative to the file
    assert s["llm"] == {**s["llm"], "concurrency": 8, "url": "http://h:1"}
    assert s["curate"]["method"] == "isa"  # untouched defaults stay


def test_help_shows_the_effective_defaults(prefmill_cli, tmp_path):
    write_toml(tmp_path / "prefmill.toml", '[curate]\nmethod = "random"\n')
    p = prefmill_cli("curate", "--help", env={"PREFMILL_CURATE_MODE": "stochastic", "COLUMNS": "200"})
    assert p.returncode == 0, p.stderr
    assert "(default: random)" in p.stdout and "(default: stochastic)" in p.stdout


@pytest.mark.parametrize(
    ("toml", "env", "expect"),
    [
        ("[curate]\nmethd = 'x'\n", {}, "unknown setting curate.methd (in prefmill.toml); known: method,"),
        ("[llm]\nconcurrency = 'many'\n", {}, "bad setting llm.concurrency = 'many' (in prefmill.toml)"),
        (
            "",
            {"PREFMILL_LLM_CONCURRENCY": "many"},
            "bad setting llm.concurrency = 'many' (from PREFMILL_LLM_CONCURRENCY)",
        ),
        ("", {"PREFMILL_CURATE_BUDGT": "1"}, "unknown setting curate.budgt (from PREFMILL_CURATE_BUDGT)"),
        ("[curate\n", {}, "prefmill.toml: "),
        ("", {"PREFMILL_CONFIG": "/nonexistent/prefmill.toml"}, "PREFMILL_CONFIG=/nonexistent/prefmill.toml: no such"),
    ],
)
def test_bad_settings_are_one_line(prefmill_cli, one_line_error, tmp_path, toml, env, expect):
    if toml:
        write_toml(tmp_path / "prefmill.toml", toml)
    p = prefmill_cli("datasets", env=env)
    assert p.returncode == 2
    assert expect in one_line_error(p)


# --- in process


def test_defaults_match_the_layers(no_settings):
    s = load_settings()
    assert s.warehouse == default_root()
    assert warehouse_root() == default_root()
    assert warehouse_root("x") == Path("x")


def test_env_beats_file_per_key_and_sections_merge(no_settings, monkeypatch):
    write_toml(no_settings / "prefmill.toml", "seed = 3\n[curate]\nmethod = 'random'\nbudget = 0.5\n")
    monkeypatch.setenv("PREFMILL_CURATE_BUDGET", "0.25")
    s = load_settings()
    assert (s.seed, s.curate.method, s.curate.budget, s.curate.recipe) == (3, "random", 0.25, "pair")


def test_with_flags_keeps_what_no_flag_gives(no_settings):
    c = load_settings().curate.with_flags(method="kcenter", budget=None)
    assert (c.method, c.budget) == ("kcenter", 0.1)
    with pytest.raises(KeyError):
        c.with_flags(nope=1)


@pytest.mark.parametrize(
    ("value", "expect"),
    [
        ('["--runner=DirectRunner", "--direct_num_workers=2"]', ["--runner=DirectRunner", "--direct_num_workers=2"]),
        ("--direct_num_workers=2 '--job_name=a b'", ["--direct_num_workers=2", "--job_name=a b"]),
    ],
)
def test_beam_args_from_env_as_json_or_shell_words(no_settings, monkeypatch, value, expect):
    monkeypatch.setenv("PREFMILL_BEAM_ARGS", value)
    assert load_settings().beam_args == expect


def test_bad_beam_args_is_a_config_error(no_settings, monkeypatch):
    monkeypatch.setenv("PREFMILL_BEAM_ARGS", "'unclosed")
    with pytest.raises(ConfigError, match="PREFMILL_BEAM_ARGS"):
        load_settings()


def test_curate_method_file_env_flag(prefmill_cli, one_line_error, tmp_path):
    def curate(*flags, env=None):
        return one_line_error(prefmill_cli("curate", "-d", "x", *flags, env=env))

    write_toml(tmp_path / "prefmill.toml", '[curate]\nmethod = "m-file"\n')
    assert "unknown curate method 'm-file'" in curate()
    env = {"PREFMILL_CURATE_METHOD": "m-env"}
    assert "'m-env'" in curate(env=env)
    line = curate("--method", "m-flag", env=env)
    assert "'m-flag'" in line and "isa" in line


def test_the_readme_example_file_is_valid(no_settings):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("```toml\n") + len("```toml\n")
    write_toml(no_settings / "prefmill.toml", readme[start : readme.index("```", start)])
    s = load_settings()
    assert (s.llm.url, s.embed.device, s.export.split_key) == ("http://127.0.0.1:8000", "cuda", "prompt_cluster")
