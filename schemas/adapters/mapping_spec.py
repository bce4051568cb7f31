"""Loading and checking a mapping file (docs/mapping.md) into a compiled ``MappingSpec``.

Everything that can be wrong with the mapping itself is found here, once, and raised as
``MappingError`` naming the key at fault — so a bad mapping stops ``get_adapter`` with one clear
line instead of rejecting every record of a file for the same reason.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from schemas.adapters.common import DEFAULT_ROLES
from schemas.adapters.paths import Path, compile_path
from schemas.canonical import ORIGINS, ROLES, SHAPES
from schemas.errors import PrefmillError


class MappingError(PrefmillError, ValueError):
    """The mapping file itself is wrong (not a record): raised when the adapter is built."""


COMMON_KEYS = {"shape", "name", "description", "origin", "system", "prompt", "annotator", "annotators", "meta"}
SHAPE_KEYS = {
    "pairwise": {"chosen", "rejected", "margin", "first", "second", "label"},
    "binary": {"completion", "label", "score"},
    "listwise": {"completions", "ranks", "scores"},
    "ratings": {"completion", "ratings", "scale"},
}
TEXT_KEYS = {"field", "template", "role", "role_key", "content_key", "roles"}

# Label conventions: normalised label value → outcome ("first" | "second" | "tie" | True | False).
FIXED_CONVENTIONS = {
    "one_two": {"1": "first", "2": "second"},
    "zero_tie": {"1": "first", "2": "second", "0": "tie"},
}
COLUMN_CONVENTIONS = ("score_columns", "rank0_best")  # compare two columns (fields: [first, second])
CONVENTIONS = {
    "pairwise": ("one_two", "zero_tie", "boolean", "values", "score_columns", "rank0_best"),
    "binary": ("boolean", "values"),
}
RANK_CONVENTIONS = ("rank0_best", "rank1_best")
PAIR_TARGETS = {"first": "first", "second": "second", "tie": "tie"}
BINARY_TARGETS = {"true": True, "false": False, "desirable": True, "undesirable": False}

_NUMERIC = re.compile(r"[+-]?\d+(\.\d+)?\Z")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


def label_key(value: Any) -> str | None:
    """One comparable form for label values: 1, 1.0 and "1" are the same label; True is not 1."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        s = value.strip()
        if _NUMERIC.match(s):
            return label_key(float(s)) if "." in s else str(int(s))
        if s.lower() in ("true", "false"):
            return s.lower()
        return s
    return None


@dataclass
class TextSpec:
    """Where a conversation comes from: a path or a template, and how to read message lists."""

    path: Path | None
    template: list | None  # [(literal, Path | None)]
    role: str
    role_key: str | None = None
    content_key: str | None = None
    roles: dict = field(default_factory=lambda: dict(DEFAULT_ROLES))

    def roots(self) -> set[str]:
        paths = [self.path] if self.path else [p for _, p in self.template or () if p]
        return {p.root for p in paths} | {p.text for p in paths}


@dataclass
class LabelSpec:
    convention: str
    path: Path | None = None  # one label column
    paths: tuple[Path, Path] | None = None  # score_columns / rank0_best
    values: dict = field(default_factory=dict)  # normalised key → outcome


@dataclass
class Annotator:
    id: str
    label: LabelSpec


@dataclass
class MappingSpec:
    shape: str
    origin: str
    prompt: TextSpec
    system: TextSpec | None = None
    texts: dict = field(default_factory=dict)  # chosen / rejected / first / second / completion → TextSpec
    completions: Any = None  # TextSpec over a list, or [TextSpec, …]
    label: LabelSpec | None = None
    annotators: list[Annotator] = field(default_factory=list)
    annotator: Path | None = None
    margin: Path | None = None
    score: Path | None = None
    ranks: Any = None  # (Path | [Path…], convention)
    scores: Any = None  # Path | [Path…]
    ratings: dict = field(default_factory=dict)  # attribute → (Path, (lo, hi) | None)
    meta: Any = "auto"  # "auto" | None | [Path…]
    used_roots: set = field(default_factory=set)
    name: str | None = None


def load_mapping(mapping: str | os.PathLike | dict) -> dict:
    """A mapping dict, or a YAML/JSON file path → the raw mapping dict."""
    if isinstance(mapping, dict):
        return mapping
    if not isinstance(mapping, (str, os.PathLike)):
        raise MappingError(f"a mapping is a file path or a dict, not a {type(mapping).__name__}")
    path = os.fspath(mapping)
    if not os.path.isfile(path):
        raise MappingError(f"mapping file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            # JSON is nearly YAML, but not quite (tabs): read .json with the JSON parser.
            data = json.load(f) if path.lower().endswith(".json") else yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
        raise MappingError(f"cannot read mapping file {path}: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise MappingError(f"mapping file {path} must hold a YAML mapping (key: value), not {type(data).__name__}")
    return data


def _path(value: Any, where: str) -> Path:
    try:
        return compile_path(value)
    except ValueError as e:
        raise MappingError(f"{where}: {e}") from None


def _paths(value: Any, where: str) -> list[Path]:
    if not isinstance(value, list) or not value:
        raise MappingError(f"{where}: expected a non-empty list of field paths")
    return [_path(v, f"{where}[{i}]") for i, v in enumerate(value)]


def _template(text: Any, where: str) -> list:
    if not isinstance(text, str):
        raise MappingError(f"{where}: a template is a string")
    parts: list[tuple[str, Path | None]] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        literal = text[pos : m.start()]
        if m.group(0) in ("{{", "}}"):
            parts.append((literal + m.group(0)[0], None))
        else:
            parts.append((literal, _path(m.group(1), f"{where} placeholder {{{m.group(1)}}}")))
        pos = m.end()
    rest = text[pos:]
    if "{" in rest or "}" in rest:
        raise MappingError(f"{where}: unbalanced brace in template {text!r} (write {{{{ or }}}} for a literal)")
    parts.append((rest, None))
    if not any(p for _, p in parts):
        raise MappingError(f"{where}: template {text!r} has no {{field}} placeholder")
    return parts


def _text_spec(value: Any, where: str, role: str) -> TextSpec:
    if isinstance(value, str):
        return TextSpec(_path(value, where), None, role)
    if not isinstance(value, dict):
        raise MappingError(f"{where}: expected a field path or {{field: …}} / {{template: …}}")
    unknown = set(value) - TEXT_KEYS
    if unknown:
        raise MappingError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(TEXT_KEYS))}"
        )
    if ("field" in value) == ("template" in value):
        raise MappingError(f"{where}: give exactly one of 'field' or 'template'")
    spec = TextSpec(
        _path(value["field"], f"{where}.field") if "field" in value else None,
        _template(value["template"], f"{where}.template") if "template" in value else None,
        value.get("role", role),
    )
    if spec.role not in ROLES:
        raise MappingError(f"{where}.role: {spec.role!r} is not one of {', '.join(ROLES)}")
    for key in ("role_key", "content_key"):
        if key in value:
            if not isinstance(value[key], str) or not value[key]:
                raise MappingError(f"{where}.{key}: expected a key name")
            setattr(spec, key, value[key])
    if "roles" in value:
        roles = value["roles"]
        if not isinstance(roles, dict) or not roles:
            raise MappingError(f"{where}.roles: expected a map of source role → system|user|assistant")
        for src, dst in roles.items():
            if dst not in ROLES:
                raise MappingError(f"{where}.roles: {src!r} maps to {dst!r}, not one of {', '.join(ROLES)}")
            spec.roles[str(src)] = dst
    return spec


def _values(raw: Any, shape: str, where: str) -> dict:
    if not isinstance(raw, dict) or not raw:
        raise MappingError(f"{where}: expected a map of label value → outcome")
    targets = PAIR_TARGETS if shape == "pairwise" else BINARY_TARGETS
    out: dict = {}
    for k, v in raw.items():
        key = label_key(k)
        if key is None:
            raise MappingError(f"{where}: label value {k!r} cannot be matched")
        v_key = label_key(v) if isinstance(v, (bool, str)) else None
        outcome = targets.get(v_key) if v_key is not None else None
        if outcome is None:
            raise MappingError(f"{where}: {k!r} maps to {v!r}; expected one of {', '.join(targets)}")
        if key in out:
            raise MappingError(f"{where}: label value {k!r} is listed twice")
        out[key] = outcome
    return out


def _label_spec(raw: Any, shape: str, where: str, need_field: bool) -> LabelSpec:
    if isinstance(raw, str):
        raw = {"field": raw}
    if not isinstance(raw, dict):
        raise MappingError(f"{where}: expected {{field: …, convention: …}}")
    unknown = set(raw) - {"field", "fields", "convention", "values"}
    if unknown:
        raise MappingError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    convention = raw.get("convention", "values" if "values" in raw else "boolean" if shape == "binary" else None)
    if convention not in CONVENTIONS[shape]:
        raise MappingError(
            f"{where}.convention: {convention!r} is not one of {', '.join(CONVENTIONS[shape])} (for shape {shape})"
        )
    spec = LabelSpec(convention)
    if convention == "values":
        spec.values = _values(raw.get("values"), shape, f"{where}.values")
    elif "values" in raw:
        raise MappingError(f"{where}.values: only with convention 'values'")
    elif convention in FIXED_CONVENTIONS:
        spec.values = dict(FIXED_CONVENTIONS[convention])
    elif convention == "boolean":
        spec.values = {"true": "first", "false": "second"} if shape == "pairwise" else {"true": True, "false": False}
    if convention in COLUMN_CONVENTIONS:
        if "field" in raw:
            raise MappingError(f"{where}: convention {convention} compares two columns: use fields: [first, second]")
        if "fields" in raw:
            paths = _paths(raw["fields"], f"{where}.fields")
            if len(paths) != 2:
                raise MappingError(f"{where}.fields: expected exactly two columns (first, second)")
            spec.paths = (paths[0], paths[1])
        elif need_field:
            raise MappingError(f"{where}: convention {convention} needs fields: [first, second]")
    else:
        if "fields" in raw:
            raise MappingError(f"{where}: 'fields' is only for {' / '.join(COLUMN_CONVENTIONS)}; use field")
        if "field" in raw:
            spec.path = _path(raw["field"], f"{where}.field")
        elif need_field:
            raise MappingError(f"{where}: missing 'field' (the label column)")
    return spec


def _annotators(raw: Any, label: LabelSpec, where: str) -> list[Annotator]:
    if not isinstance(raw, list) or not raw:
        raise MappingError(f"{where}: expected a non-empty list of {{field: …, id: …}}")
    out, seen = [], set()
    for i, entry in enumerate(raw):
        w = f"{where}[{i}]"
        if isinstance(entry, str):
            entry = {"field": entry}
        if not isinstance(entry, dict) or set(entry) - {"field", "fields", "id"}:
            raise MappingError(f"{w}: expected {{field: <label column>, id: <annotator id>}}")
        spec = LabelSpec(label.convention, values=label.values)
        if label.convention in COLUMN_CONVENTIONS:
            paths = _paths(entry.get("fields"), f"{w}.fields")
            if len(paths) != 2:
                raise MappingError(f"{w}.fields: expected exactly two columns (first, second)")
            spec.paths = (paths[0], paths[1])
        else:
            spec.path = _path(entry.get("field"), f"{w}.field")
        default_id = entry.get("field") or "+".join(entry["fields"])
        ident = str(entry.get("id", default_id))
        if ident in seen:
            raise MappingError(f"{w}.id: annotator id {ident!r} is used twice")
        seen.add(ident)
        out.append(Annotator(ident, spec))
    return out


def _scale(raw: Any, where: str) -> tuple[float, float]:
    if (
        not isinstance(raw, (list, tuple))
        or len(raw) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw)
    ):
        raise MappingError(f"{where}: expected [min, max] numbers")
    lo, hi = float(raw[0]), float(raw[1])
    if not lo < hi:
        raise MappingError(f"{where}: min {lo} must be below max {hi}")
    return lo, hi


def _columns(raw: Any, where: str) -> Path | list[Path]:
    """A list-valued field path, or a list of one field path per completion."""
    if isinstance(raw, dict):
        if set(raw) - {"field", "fields", "convention"} or ("field" in raw) == ("fields" in raw):
            raise MappingError(f"{where}: expected field: <list path> or fields: [<path>, …]")
        raw = raw.get("field", raw.get("fields"))
    return _paths(raw, where) if isinstance(raw, list) else _path(raw, where)


def compile_mapping(raw: dict) -> MappingSpec:
    shape = raw.get("shape")
    if shape is None:
        raise MappingError(f"mapping needs 'shape' (one of {', '.join(SHAPES)})")
    if shape not in SHAPES:
        raise MappingError(f"shape {shape!r} is not one of {', '.join(SHAPES)}")
    allowed = COMMON_KEYS | SHAPE_KEYS[shape]
    unknown = set(raw) - allowed
    if unknown:
        raise MappingError(
            f"unknown key(s) for shape {shape}: {', '.join(sorted(map(str, unknown)))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    origin = raw.get("origin", "human")
    if origin not in ORIGINS:
        raise MappingError(f"origin {origin!r} is not one of {', '.join(ORIGINS)}")
    if "prompt" not in raw:
        raise MappingError("mapping needs 'prompt' (a field path, {field: …} or {template: …})")
    spec = MappingSpec(shape, origin, _text_spec(raw["prompt"], "prompt", "user"), name=raw.get("name"))
    if "system" in raw:
        spec.system = _text_spec(raw["system"], "system", "system")
    _SHAPE_COMPILERS[shape](raw, spec)
    if "annotator" in raw:
        if "annotators" in raw:
            raise MappingError("give either 'annotator' (a field holding the id) or 'annotators' (label columns)")
        spec.annotator = _path(raw["annotator"], "annotator")
    if "annotators" in raw:
        if spec.label is None:
            raise MappingError(
                "'annotators' lists label columns; it needs a 'label' convention "
                "(pairwise with first/second, or binary)"
            )
        spec.annotators = _annotators(raw["annotators"], spec.label, "annotators")
    meta = raw.get("meta", "auto")
    if meta in (None, False, "none"):
        spec.meta = None
    elif meta == "auto":
        spec.meta = "auto"
    else:
        spec.meta = _paths(meta, "meta")
    spec.used_roots = _used_roots(spec)
    return spec


def _compile_pairwise(raw: dict, spec: MappingSpec) -> None:
    explicit = "chosen" in raw or "rejected" in raw
    positional = "first" in raw or "second" in raw
    if explicit == positional:
        raise MappingError("pairwise needs either chosen + rejected, or first + second with a label")
    keys = ("chosen", "rejected") if explicit else ("first", "second")
    for key in keys:
        if key not in raw:
            raise MappingError(f"pairwise needs {keys[0]!r} and {keys[1]!r}; {key!r} is missing")
        spec.texts[key] = _text_spec(raw[key], key, "assistant")
    if explicit:
        if "label" in raw:
            raise MappingError("with chosen/rejected the label is implied; use first/second to map a label")
        if "margin" in raw:
            spec.margin = _path(raw["margin"], "margin")
        return
    if "label" not in raw:
        raise MappingError("first/second need a 'label' saying which one is better")
    if "margin" in raw:
        raise MappingError("'margin' goes with chosen/rejected; with first/second use convention score_columns")
    spec.label = _label_spec(raw["label"], "pairwise", "label", need_field="annotators" not in raw)


def _compile_binary(raw: dict, spec: MappingSpec) -> None:
    if "completion" not in raw:
        raise MappingError("binary needs 'completion'")
    if "label" not in raw:
        raise MappingError("binary needs 'label' (e.g. {field: label, convention: boolean})")
    spec.texts["completion"] = _text_spec(raw["completion"], "completion", "assistant")
    spec.label = _label_spec(raw["label"], "binary", "label", need_field="annotators" not in raw)
    if "score" in raw:
        spec.score = _path(raw["score"], "score")


def _compile_listwise(raw: dict, spec: MappingSpec) -> None:
    comps = raw.get("completions")
    if comps is None:
        raise MappingError("listwise needs 'completions' (a list field, or a list of fields)")
    if isinstance(comps, list):
        if len(comps) < 2:
            raise MappingError("completions: list at least two fields")
        spec.completions = [_text_spec(c, f"completions[{i}]", "assistant") for i, c in enumerate(comps)]
    else:
        spec.completions = _text_spec(comps, "completions", "assistant")
    if "ranks" not in raw and "scores" not in raw:
        raise MappingError("listwise needs 'ranks' and/or 'scores'")
    n = len(spec.completions) if isinstance(spec.completions, list) else None
    if "ranks" in raw:
        convention = raw["ranks"].get("convention", "rank0_best") if isinstance(raw["ranks"], dict) else "rank0_best"
        if convention not in RANK_CONVENTIONS:
            raise MappingError(f"ranks.convention: {convention!r} is not one of {', '.join(RANK_CONVENTIONS)}")
        spec.ranks = (_columns(raw["ranks"], "ranks"), convention)
    if "scores" in raw:
        spec.scores = _columns(raw["scores"], "scores")
    for key, cols in (("ranks", spec.ranks and spec.ranks[0]), ("scores", spec.scores)):
        if isinstance(cols, list) and n is not None and len(cols) != n:
            raise MappingError(f"{key}: {len(cols)} fields for {n} completions")


def _compile_ratings(raw: dict, spec: MappingSpec) -> None:
    if "completion" not in raw:
        raise MappingError("ratings needs 'completion'")
    spec.texts["completion"] = _text_spec(raw["completion"], "completion", "assistant")
    default = _scale(raw["scale"], "scale") if "scale" in raw else None
    attrs = raw.get("ratings")
    if not isinstance(attrs, dict) or not attrs:
        raise MappingError("ratings needs 'ratings': a map of attribute → field (or {field: …, scale: [min, max]})")
    for name, value in attrs.items():
        where = f"ratings.{name}"
        if isinstance(value, dict):
            if set(value) - {"field", "scale"} or "field" not in value:
                raise MappingError(f"{where}: expected {{field: …, scale: [min, max]}}")
            scale = _scale(value["scale"], f"{where}.scale") if "scale" in value else default
            spec.ratings[str(name)] = (_path(value["field"], f"{where}.field"), scale)
        else:
            spec.ratings[str(name)] = (_path(value, where), default)


_SHAPE_COMPILERS = {
    "pairwise": _compile_pairwise,
    "binary": _compile_binary,
    "listwise": _compile_listwise,
    "ratings": _compile_ratings,
}


def _used_roots(spec: MappingSpec) -> set[str]:
    """Top-level record keys the mapping reads: ``meta: auto`` keeps every other key."""
    roots: set[str] = set()
    texts = [spec.prompt, spec.system, *spec.texts.values()]
    texts += spec.completions if isinstance(spec.completions, list) else [spec.completions]
    for t in texts:
        if t is not None:
            roots |= t.roots()
    paths: list[Path] = [p for p in (spec.annotator, spec.margin, spec.score) if p]
    labels = [spec.label] if spec.label else []
    labels += [a.label for a in spec.annotators]
    for lab in labels:
        paths += [p for p in (lab.path, *(lab.paths or ())) if p]
    for cols in (spec.ranks[0] if spec.ranks else None, spec.scores):
        paths += cols if isinstance(cols, list) else [cols] if cols else []
    paths += [p for p, _ in spec.ratings.values()]
    for p in paths:
        roots |= {p.root, p.text}
    return roots
