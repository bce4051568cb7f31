"""Robust parsers for judge outputs.

Every parser returns ``Parsed(ok, value, reason, detail)`` and never raises on model text: a
malformed answer becomes one rejected row with a reason (``judge_unparseable``,
``not_a_permutation``, ``score_out_of_scale``, ``truncated``, ``refused``, ``empty_output``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Parsed:
    ok: bool
    value: Any = None
    reason: str | None = None
    detail: str = ""


def reject(reason: str, detail: str = "") -> Parsed:
    return Parsed(False, None, reason, detail[:200])


# Anchored at the start: "Response A says 'I cannot'" quoted later in a long answer is not a refusal.
_REFUSAL = re.compile(
    r"^\W*(i\s*(?:'m|am)\s+sorry|sorry,|i\s+(?:cannot|can\s*not|can't|can’t|won't|will\s+not|"
    r"am\s+unable|'m\s+unable|am\s+not\s+able|must\s+decline|refuse)|as\s+an\s+ai\b|"
    r"unfortunately,?\s+i\s+(?:cannot|can't|am\s+unable))",
    re.IGNORECASE,
)
_DECOR = re.compile(r"[*_`#>\"'“”‘’]+")  # markdown emphasis, headings, quotes


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.match(text.strip()))


def _precheck(text: str | None) -> Parsed | None:
    if text is None or not text.strip():
        return reject("empty_output")
    if is_refusal(text):
        return reject("refused", text.strip())
    return None


# ---------------------------------------------------------------- pairwise verdict

_LABEL = (
    r"(?:(?:the\s+)?(?:final\s+)?(?:answer|verdict|winner|choice|decision|preferred|better(?:\s+response)?)"
    r"(?:\s+(?:is|would\s+be))?\s*[:=\-]?\s*)"
)
_WHO = r"(?:(?:response|assistant|output|option|candidate|answer)\s*)"
_START = re.compile(rf"^{_LABEL}?{_WHO}?[\[(]?([AB])[\])]?(?![A-Za-z0-9])", re.IGNORECASE)
_JOINED = re.compile(r"^\s*(?:or|and|/|&|,|vs\.?|versus|=)\s*(?:" + _WHO + r")?[\[(]?[AB]\b", re.IGNORECASE)
_EXPLICIT = re.compile(
    rf"(?:{_WHO}[\[(]?([AB])[\])]?\s+(?:is|was)\s+(?:clearly\s+|much\s+|slightly\s+)?"
    rf"(?:better|preferred|superior|the\s+better|the\s+winner|stronger))"
    rf"|(?:(?:answer|verdict|winner|choice|prefer)\w*\s*(?:is|:)?\s*{_WHO}?[\[(]?([AB])[\])]?(?![A-Za-z0-9]))",
    re.IGNORECASE,
)
_TIE = re.compile(r"^\W*(tie|both|neither|equal|equally|same)\b", re.IGNORECASE)


def _letter_at(text: str, m: re.Match) -> str | None:
    letter = m.group(1)
    # A lowercase "a" is usually the English article ("a good answer ..."): accept it only alone
    # or after a label ("Answer: a", "response b").
    if letter.islower() and m.start(1) == 0 and text.strip(" .!:)]").lower() not in ("a", "b"):
        return None
    return letter.upper()


def parse_verdict(text: str | None, finish_reason: str | None = None) -> Parsed:
    """``A``/``B`` from a judge's answer; tolerant of "**A**", "Response A", "A.", "Answer: B";
    refuses "A or B", ties and anything where both letters are put forward."""
    if (pre := _precheck(text)) is not None:
        return pre
    body = _DECOR.sub("", text or "").strip()
    if _TIE.match(body):
        return reject("judge_unparseable", f"tie: {body}")
    m = _START.match(body)
    if m and (letter := _letter_at(body, m)):
        if _JOINED.match(body[m.end() :]):
            return reject("judge_unparseable", f"ambiguous: {body}")
        return Parsed(True, letter)
    found = {(a or b).upper() for a, b in _EXPLICIT.findall(body)}
    if len(found) == 1:
        return Parsed(True, found.pop())
    if len(found) > 1:
        return reject("judge_unparseable", f"ambiguous: {body}")
    if finish_reason == "length" and len(body) > 1:
        return reject("truncated", body)
    return reject("judge_unparseable", body)


# ---------------------------------------------------------------- scores (I-SHEEP ratings)

_NUM = r"[-+]?\d+(?:\.\d+)?"
_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
}
_WORD = r"(?:" + "|".join(sorted(_WORDS, key=len, reverse=True)) + r")"
_SCORE_PATTERNS = [
    # I-SHEEP: strip leading non-word chars, take a leading number.
    re.compile(rf"^[^\w+-]*({_NUM})(?!\w)"),
    re.compile(
        rf"\b(?:score|rating|grade|rate|mark)\w*\s*(?:(?:it|this(?:\s+response)?|is|of|would\s+be|"
        rf"as|a)\s+)*[:=]?\s*({_NUM})(?!\w)",
        re.IGNORECASE,
    ),
    re.compile(rf"({_NUM})\s*(?:/|out\s+of)\s*\d+", re.IGNORECASE),
    re.compile(rf"({_NUM})\s*\|\|"),
    re.compile(rf"(?m)^\W*({_NUM})\W*$"),  # a line holding only a number
    re.compile(
        rf"\b(?:deserves?|gives?|giving|assigns?|awards?)\s+(?:it\s+|this\s+|a\s+)*"
        rf"(?:score\s+of\s+)?({_NUM})(?!\w)",
        re.IGNORECASE,
    ),
]
_SCORE_WORD = re.compile(rf"^\W*(?:(?:score|rating)\s*[:=]?\s*)?({_WORD})\b", re.IGNORECASE)
_DENOM = re.compile(r"^\s*(?:/|out\s+of)\s*(\d+)", re.IGNORECASE)
_RANGE = re.compile(rf"^\s*(?:-|–|to|or)\s*{_NUM}\b")


def parse_score(
    text: str | None,
    scale: tuple[float, float] = (1, 10),
    finish_reason: str | None = None,
    words: bool = True,
    round_to_int: bool = True,
) -> Parsed:
    """A number on the declared scale (I-SHEEP style parser, extended): leading number, then
    "Score: 8", "8/10" / "8 out of 10", "8 || reason", a number alone on a line, then number words.
    Out of scale -> ``score_out_of_scale``; a "7-8" range -> ``judge_unparseable``."""
    if (pre := _precheck(text)) is not None:
        return pre
    body = _DECOR.sub("", text or "").strip()
    lo, hi = scale
    for pat in _SCORE_PATTERNS:
        m = pat.search(body)
        if not m:
            continue
        rest = body[m.end(1) :]
        if _RANGE.match(rest):
            return reject("judge_unparseable", f"ambiguous range: {body}")
        if finish_reason == "length" and not rest.strip():
            return reject("truncated", f"number at the cut: {body}")  # "1" may be the start of "10"
        value = float(m.group(1))
        if (d := _DENOM.match(rest)) and float(d.group(1)) != hi:
            return reject("score_out_of_scale", f"{m.group(1)}/{d.group(1)} on a {lo}-{hi} scale")
        return _in_scale(value, lo, hi, round_to_int, body)
    if words and (m := _SCORE_WORD.match(body)):
        return _in_scale(float(_WORDS[m.group(1).lower()]), lo, hi, round_to_int, body)
    if finish_reason == "length":
        return reject("truncated", body)
    return reject("judge_unparseable", body)


def _in_scale(value: float, lo: float, hi: float, round_to_int: bool, body: str) -> Parsed:
    if round_to_int:
        value = float(math.floor(value + 0.5))  # half up, like a human reading "7.5" as 8
    if not lo <= value <= hi:
        return reject("score_out_of_scale", f"{value:g} not in [{lo:g}, {hi:g}]: {body}")
    return Parsed(True, int(value) if round_to_int else value)


# ---------------------------------------------------------------- full ranking

_RANK_SEQ = re.compile(r"\[?\s*\d+\s*\]?(?:\s*(?:>|≻|,|;|->|→)\s*\[?\s*\d+\s*\]?)+")
_RANK_INT = re.compile(r"\d+")
_RANK_DECOR = re.compile(r"[*_`\"'“”‘’]+")  # like _DECOR but keeps ">" (the order sign)


def parse_ranking(text: str | None, n: int, finish_reason: str | None = None) -> Parsed:
    """A best-first permutation of 1..n from "[2] > [1] > [3]", "2 > 1 > 3" or "2,1,3"; the value
    is the list of 1-based candidate numbers. Duplicates, missing or unknown numbers ->
    ``not_a_permutation``."""
    if (pre := _precheck(text)) is not None:
        return pre
    body = _RANK_DECOR.sub("", text or "").strip()
    m = _RANK_SEQ.search(body)
    if not m:
        single = re.fullmatch(r"\[?\s*(\d+)\s*\]?\W*", body)
        if n == 1 and single and single.group(1) == "1":
            return Parsed(True, [1])
        return reject("truncated" if finish_reason == "length" else "judge_unparseable", body)
    order = [int(x) for x in _RANK_INT.findall(m.group(0))]
    if sorted(order) == list(range(1, n + 1)):
        return Parsed(True, order)
    if finish_reason == "length" and len(order) < n and re.fullmatch(r"[\s>≻,;\[\]→-]*", body[m.end() :]):
        return reject("truncated", body)
    dupes = sorted({x for x in order if order.count(x) > 1})
    missing = sorted(set(range(1, n + 1)) - set(order))
    unknown = sorted({x for x in order if not 1 <= x <= n})
    detail = "; ".join(f"{k}={v}" for k, v in (("duplicates", dupes), ("missing", missing), ("unknown", unknown)) if v)
    return reject("not_a_permutation", f"{detail}: {m.group(0)}")
