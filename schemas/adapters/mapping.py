"""The declarative adapter: a mapping file (docs/mapping.md) says where each canonical field is.

``MappingAdapter(mapping)`` loads and checks the mapping at construction (``MappingError``); per
record it only looks fields up and applies the label convention. With ``annotators`` each label
column gives its own row, and one bad label costs only that row.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from schemas.adapters.base import AdaptError
from schemas.adapters.common import (
    check_completion,
    check_prompt,
    convert_message,
    convert_messages,
    is_number,
    msg,
    number,
)
from schemas.adapters.mapping_spec import (
    LabelSpec,
    MappingError,
    MappingSpec,
    TextSpec,
    compile_mapping,
    label_key,
    load_mapping,
)
from schemas.adapters.paths import Path, lookup
from schemas.records import binary, listwise, pairwise, ratings

__all__ = ["MappingAdapter", "MappingError"]


def _render(template: list, obj: Any) -> str:
    out = []
    for literal, path in template:
        out.append(literal)
        if path is not None:
            value = lookup(obj, path)
            if isinstance(value, str):
                out.append(value)
            elif is_number(value):
                out.append(str(value))
            else:
                raise AdaptError(
                    "wrong_type", f"template field {path.text!r} is a {type(value).__name__}, expected text"
                )
    return "".join(out)


def _conversation(value: Any, spec: TextSpec, where: str) -> list[dict]:
    if isinstance(value, str):
        return [msg(spec.role, value)]
    if isinstance(value, dict):
        return [convert_message(value, where, spec.roles, spec.role_key, spec.content_key)]
    if isinstance(value, list):
        return convert_messages(value, where, spec.roles, spec.role_key, spec.content_key)
    raise AdaptError("wrong_type", f"{where} is a {type(value).__name__}, expected text or messages")


def read_text(spec: TextSpec, obj: Any, where: str) -> list[dict]:
    if spec.template is not None:
        return [msg(spec.role, _render(spec.template, obj))]
    assert spec.path is not None  # compile_mapping gives a text a path or a template
    return _conversation(lookup(obj, spec.path), spec, spec.path.text)


def _outcome(label: LabelSpec, obj: Any) -> tuple[Any, float | None]:
    """(first | second | tie | True | False, margin) for one label."""
    if label.paths is not None:
        a, b = (number(lookup(obj, p), f"field {p.text!r}") for p in label.paths)
        if label.convention == "rank0_best":
            a, b = -a, -b  # lower rank wins
            return ("first" if a > b else "second" if b > a else "tie"), None
        return ("first" if a > b else "second" if b > a else "tie"), abs(a - b)
    assert label.path is not None  # compile_mapping gives a label a path or two
    value = lookup(obj, label.path)
    outcome = label.values.get(label_key(value))
    if outcome is None:
        known = ", ".join(label.values)
        raise AdaptError("unknown_label", f"{label.path.text} = {value!r}; expected one of {known}")
    return outcome, None


def _numbers(cols: Path | list[Path], obj: Any, what: str) -> list:
    values = [lookup(obj, p) for p in cols] if isinstance(cols, list) else lookup(obj, cols)
    if not isinstance(values, list):
        raise AdaptError("wrong_type", f"{what} is a {type(values).__name__}, expected a list")
    for v in values:
        if not is_number(v):
            raise AdaptError("wrong_type", f"{what} holds {v!r}, expected numbers")
    return values


class MappingAdapter:
    name = "mapping"

    def __init__(self, mapping: Any, origin: str | None = None):
        if mapping is None:
            raise MappingError("format 'mapping' needs a mapping file (YAML/JSON; see docs/mapping.md)")
        raw = load_mapping(mapping)
        try:
            self.spec: MappingSpec = compile_mapping(raw)
        except MappingError as e:
            if isinstance(mapping, (str, os.PathLike)):  # name the file the problem is in
                raise MappingError(f"{os.fspath(mapping)}: {e}") from None
            raise
        if origin is not None:
            self.spec.origin = origin

    def adapt(self, obj: Any) -> list:
        if not isinstance(obj, dict):
            raise AdaptError("wrong_type", f"record is a {type(obj).__name__}, expected an object")
        spec = self.spec
        prompt = read_text(spec.prompt, obj, "prompt")
        if spec.system is not None:
            if spec.system.template:
                system = _render(spec.system.template, obj)
            else:
                assert spec.system.path is not None  # compile_mapping gives a text a path or a template
                system = lookup(obj, spec.system.path)
            if not isinstance(system, str):
                raise AdaptError("wrong_type", f"system is a {type(system).__name__}, expected text")
            if system.strip():
                prompt = [msg("system", system)] + prompt
        check_prompt(prompt)
        meta = self._meta(obj)
        if spec.shape == "pairwise":
            return self._pairwise(obj, prompt, meta)
        if spec.shape == "binary":
            return self._binary(obj, prompt, meta)
        if spec.shape == "listwise":
            return [self._listwise(obj, prompt, meta)]
        return [self._ratings(obj, prompt, meta)]

    # -- shapes ---------------------------------------------------------------------------------

    def _pairwise(self, obj: dict, prompt: list, meta: dict | None) -> list:
        spec = self.spec
        if "chosen" in spec.texts:
            chosen, rejected = (read_text(spec.texts[k], obj, k) for k in ("chosen", "rejected"))
            check_completion(chosen, "chosen")
            check_completion(rejected, "rejected")
            margin = number(lookup(obj, spec.margin), "margin") if spec.margin else None
            return [
                (
                    "pairwise",
                    pairwise(
                        prompt,
                        chosen,
                        rejected,
                        margin=margin,
                        origin=spec.origin,
                        annotator_id=self._annotator_id(obj),
                        meta=meta,
                    ),
                )
            ]
        pair = [read_text(spec.texts[k], obj, k) for k in ("first", "second")]
        check_completion(pair[0], "first")
        check_completion(pair[1], "second")

        def build(label: LabelSpec, annotator: str | None) -> tuple:
            outcome, margin = _outcome(label, obj)
            first = 1 if outcome == "second" else 0
            row_meta = {**(meta or {}), "chosen_position": first + 1}
            return (
                "pairwise",
                pairwise(
                    prompt,
                    pair[first],
                    pair[1 - first],
                    label="tie" if outcome == "tie" else "chosen_better",
                    margin=margin,
                    origin=spec.origin,
                    annotator_id=annotator,
                    meta=row_meta,
                ),
            )

        return self._per_annotator(obj, build)

    def _binary(self, obj: dict, prompt: list, meta: dict | None) -> list:
        spec = self.spec
        completion = read_text(spec.texts["completion"], obj, "completion")
        check_completion(completion, "completion")
        score = number(lookup(obj, spec.score), "score") if spec.score else None

        def build(label: LabelSpec, annotator: str | None) -> tuple:
            outcome, _ = _outcome(label, obj)
            return (
                "binary",
                binary(
                    prompt,
                    completion,
                    label=outcome,
                    score=score,
                    origin=spec.origin,
                    annotator_id=annotator,
                    meta=meta,
                ),
            )

        return self._per_annotator(obj, build)

    def _per_annotator(self, obj: dict, build: Callable[..., Any]) -> list:
        if not self.spec.annotators:
            return [build(self.spec.label, self._annotator_id(obj))]
        out: list = []
        for ann in self.spec.annotators:
            try:
                out.append(build(ann.label, ann.id))
            except AdaptError as e:  # one annotator's bad label does not drop the others
                out.append(AdaptError(e.reason, f"annotator {ann.id}: {e.detail}"))
        return out

    def _listwise(self, obj: dict, prompt: list, meta: dict | None) -> tuple:
        spec = self.spec
        if isinstance(spec.completions, list):
            comps = [read_text(t, obj, f"completions[{i}]") for i, t in enumerate(spec.completions)]
        else:
            items = lookup(obj, spec.completions.path)
            if not isinstance(items, list):
                raise AdaptError(
                    "wrong_type",
                    f"completions field {spec.completions.path.text!r} is a {type(items).__name__}, expected a list",
                )
            comps = [_conversation(item, spec.completions, f"completions[{i}]") for i, item in enumerate(items)]
        if len(comps) < 2:
            raise AdaptError("too_few_completions", f"{len(comps)} completion(s); a ranking needs at least 2")
        for i, c in enumerate(comps):
            check_completion(c, f"completions[{i}]")
        ranks = scores = None
        if spec.ranks:
            cols, convention = spec.ranks
            ranks = _numbers(cols, obj, "ranks")
            if not all(float(r).is_integer() for r in ranks):
                raise AdaptError("wrong_type", f"ranks {ranks} are not whole numbers")
            ranks = [int(r) - (1 if convention == "rank1_best" else 0) for r in ranks]
            if min(ranks) < 0:
                raise AdaptError("out_of_range", f"a rank is below the best rank ({convention})")
        if spec.scores:
            scores = [float(s) for s in _numbers(spec.scores, obj, "scores")]
        for what, values in (("ranks", ranks), ("scores", scores)):
            if values is not None and len(values) != len(comps):
                raise AdaptError("length_mismatch", f"{len(values)} {what} for {len(comps)} completions")
        return (
            "listwise",
            listwise(
                prompt,
                comps,
                ranks=ranks,
                scores=scores,
                origin=spec.origin,
                annotator_id=self._annotator_id(obj),
                meta=meta,
            ),
        )

    def _ratings(self, obj: dict, prompt: list, meta: dict | None) -> tuple:
        spec = self.spec
        completion = read_text(spec.texts["completion"], obj, "completion")
        check_completion(completion, "completion")
        values, scales = {}, {}
        for name, (path, scale) in spec.ratings.items():
            value = number(lookup(obj, path), f"rating {name!r}")
            if scale is not None:
                if not scale[0] <= value <= scale[1]:
                    raise AdaptError("out_of_range", f"rating {name!r} = {value} is outside {scale[0]}–{scale[1]}")
                scales[name] = scale
            values[name] = value
        return (
            "ratings",
            ratings(
                prompt,
                completion,
                values,
                scales=scales,
                origin=spec.origin,
                annotator_id=self._annotator_id(obj),
                meta=meta,
            ),
        )

    # -- helpers --------------------------------------------------------------------------------

    def _annotator_id(self, obj: dict) -> str | None:
        if self.spec.annotator is None:
            return None
        value = lookup(obj, self.spec.annotator)
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise AdaptError("wrong_type", f"annotator is a {type(value).__name__}, expected an id")
        return str(value)

    def _meta(self, obj: dict) -> dict | None:
        spec = self.spec
        if spec.meta is None:
            return None
        if spec.meta == "auto":
            return {k: v for k, v in obj.items() if k not in spec.used_roots} or None
        out = {}
        for p in spec.meta:
            try:
                out[p.text] = lookup(obj, p)
            except AdaptError:
                pass  # meta is best effort: a field some records lack is not an error
        return out or None
