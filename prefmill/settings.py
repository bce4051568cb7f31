"""The CLI's defaults in one place: flag > environment (``PREFMILL_*``) > ``prefmill.toml`` > the defaults below.

The file is ``./prefmill.toml``, or the one ``$PREFMILL_CONFIG`` names (which must then exist). Top-level
keys and ``[section]`` tables mirror the fields here; every field also has an environment variable,
``PREFMILL_<SECTION>_<FIELD>`` (``PREFMILL_WAREHOUSE``, ``PREFMILL_CURATE_METHOD``, ``PREFMILL_LLM_URL``).
A relative ``warehouse`` in the file is relative to the file. An unknown key or a bad value is one
``ConfigError`` line naming where it came from. ``prefmill config`` prints the effective values.

    warehouse = "/data/prefmill"
    beam_args = ["--direct_num_workers=8"]

    [embed]
    device = "cuda"

    [llm]
    url = "http://127.0.0.1:8000"
    model = "judge"
"""

from __future__ import annotations

import json
import os
import shlex
import tomllib
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from schemas.errors import PrefmillError

ENV_PREFIX = "PREFMILL_"
CONFIG_ENV = "PREFMILL_CONFIG"
CONFIG_FILE = "prefmill.toml"


class ConfigError(PrefmillError):
    """prefmill.toml or a PREFMILL_* variable that cannot be read (unknown key, wrong type, bad TOML)."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def with_flags(self, **flags: Any) -> Self:
        """This section with every flag the user gave (not None) in place of its value."""
        unknown = set(flags) - set(type(self).model_fields)
        if unknown:  # a programming error: a CLI flag mapped to a field that does not exist
            raise KeyError(f"{type(self).__name__} has no field(s) {sorted(unknown)}")
        return self.model_copy(update={k: v for k, v in flags.items() if v is not None})


class IngestSettings(Section):
    dataset: str = "default"  # the dataset ingest, run and serve publish into
    max_record_bytes: int | None = None  # quarantine larger source records


class EmbedSettings(Section):
    model: str | None = None  # a local sentence-transformers folder; None: the offline MiniLM package
    device: str | None = None  # cuda, cuda:1, cpu; None: CUDA when present


class CurateSettings(Section):
    # Field names are CurateParams' (pipelines/curate.py): the CLI passes them through by name.
    method: str = "isa"
    budget: float = 0.1  # a fraction in (0, 1], or a row count > 1
    recipe: str = "pair"
    near_threshold: float = 0.8
    semantic_threshold: float = 0.95
    pair_identical_threshold: float = 0.9
    mode: str = "topk"


class ExportSettings(Section):
    format: str | None = None  # None: --format is required
    file_format: str = "jsonl"
    test_fraction: float = 0.1
    split_key: str = "prompt_id"


class LLMSettings(Section):
    """The OpenAI-compatible server `judge` and `synthesize` talk to when no --url/--model is given."""

    url: str | None = None
    model: str | None = None
    concurrency: int = 64
    gpu_usd_per_hour: float = 0.0
    max_usd: float | None = None


class ScheduleSettings(Section):
    cron: str = "0 2 * * *"
    pattern: str = "*.jsonl*"


def _split_args(value: Any) -> Any:
    """``PREFMILL_BEAM_ARGS`` may be a JSON list or a shell-quoted string."""
    if isinstance(value, str):
        text = value.strip()
        return json.loads(text) if text.startswith("[") else shlex.split(text)
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        # PREFMILL_CURATE_NEAR_THRESHOLD -> curate.near_threshold: split once, so section names have no "_".
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
        frozen=True,
    )

    warehouse: Path = Path(".prefmill") / "warehouse"  # the same default as warehouse.default_root()
    beam_args: Annotated[list[str], NoDecode] = []  # Beam pipeline options for every Beam run
    seed: int = 0  # sampling, selection and split seed
    ingest: IngestSettings = IngestSettings()
    embed: EmbedSettings = EmbedSettings()
    curate: CurateSettings = CurateSettings()
    export: ExportSettings = ExportSettings()
    llm: LLMSettings = LLMSettings()
    schedule: ScheduleSettings = ScheduleSettings()

    _split_beam_args = field_validator("beam_args", mode="before")(_split_args)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _TomlFile(settings_cls, config_path())


def config_path() -> Path | None:
    """The settings file in use: $PREFMILL_CONFIG (must exist), else ./prefmill.toml when present."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={named}: no such file")
        return path
    path = Path(CONFIG_FILE)
    return path if path.is_file() else None


class _TomlFile(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], path: Path | None):
        super().__init__(settings_cls)
        self.path = path
        self.data: dict[str, Any] = {}
        if path is not None:
            try:
                self.data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
                raise ConfigError(f"{path}: {e}") from None
            warehouse = self.data.get("warehouse")
            if isinstance(warehouse, str) and not Path(warehouse).expanduser().is_absolute():
                self.data["warehouse"] = str(path.parent / warehouse)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


def _env_name(loc: tuple) -> str:
    return ENV_PREFIX + "_".join(str(part) for part in loc).upper()


def _one_line(e: ValidationError, path: Path | None) -> str:
    err = e.errors()[0]
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc)
    env = _env_name(loc)
    where = f"from {env}" if env in {k.upper() for k in os.environ} else f"in {path or CONFIG_FILE}"
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    if err["type"] == "extra_forbidden":
        model: Any = Settings
        for part in loc[:-1]:
            model = model.model_fields[part].annotation
        return f"unknown setting {key} ({where}); known: {', '.join(model.model_fields)}{more}"
    return f"bad setting {key} = {err.get('input')!r} ({where}): {err['msg']}{more}"


def load_settings() -> Settings:
    """The effective settings, read now (environment and file); one ConfigError line when they are wrong."""
    path = config_path()
    try:
        return Settings()
    except ValidationError as e:
        raise ConfigError(_one_line(e, path)) from None


def warehouse_root(flag: str | os.PathLike | None = None) -> Path:
    """--warehouse, else PREFMILL_WAREHOUSE, else prefmill.toml's ``warehouse``, else ./.prefmill/warehouse."""
    return Path(flag) if flag else load_settings().warehouse
