"""The dataset card (README.md) written next to an export: what is in it and where it came from."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import orjson
import pyarrow as pa


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in r) + " |" for r in rows]
    return out


def _group(lineage: list[pa.Table], columns: list[str]) -> list[list]:
    counts: Counter = Counter()
    for t in lineage:
        counts.update(zip(*(t.column(c).to_pylist() for c in columns)))
    return [[*k, n] for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], tuple(map(str, kv[0]))))]


def _num(x: object) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "-"


def _ai_labels(version: dict) -> list[str]:
    """The gate decisions of the version's lineage (``dataset_versions.ai_labels``): which audit let each
    judge's labels in, or that the gate was overridden and why it would have refused."""
    raw = version.get("ai_labels")
    gates = orjson.loads(raw) if isinstance(raw, (str, bytes)) else raw
    if not gates:
        return []
    rows = []
    for g in gates:
        judge, audit, th = g.get("judge") or {}, g.get("audit") or {}, g.get("thresholds") or {}
        rows.append(
            [
                g.get("role"),
                judge.get("key") or "(none)",
                g.get("status"),
                audit.get("audit_id") or "-",
                f"{audit['gold_dataset']}@{str(audit['gold_version'])[:12]}" if audit else "-",
                _num(audit.get("kappa_majority")),
                _num(audit.get("swap_consistency")),
                f"κ ≥ {th.get('min_kappa')}, swap ≥ {th.get('min_swap_consistency')}" if th else "-",
                g.get("reason") or "",
            ]
        )
    lines = [
        "",
        "## AI labels",
        "",
        "Preferences in this version's lineage were decided by a model; prefmill's gate let them in on "
        "the judge's audit against human labels (nearest first):",
        "",
    ]
    lines += _table(
        ["role", "judge", "gate", "audit", "gold set", "κ vs majority", "swap consistency", "thresholds", "note"],
        rows,
    )
    if any(g.get("status") == "overridden" for g in gates):
        lines += ["", "**The gate was overridden (`--no-gate`)**: some labels entered without a passing audit."]
    return lines


def render(
    *,
    dataset: str,
    fmt: str,
    tags: Sequence[str],
    version: dict,
    files: dict[tuple[str, str], str],
    split_counts: dict[str, dict[str, int]],
    lineage: list[pa.Table],
    excluded: dict[str, int],
    converted: dict[str, int],
    params: dict,
) -> str:
    """Deterministic: no clock and no output location, so the same export renders the same bytes."""
    parts = sorted({p for p, _ in files})
    lines = ["---", "configs:"]
    for part in parts:
        lines += [f"- config_name: {part if len(parts) > 1 else 'default'}", "  data_files:"]
        lines += [f"  - split: {s}\n    path: {files[(part, s)]}" for s in ("train", "test") if (part, s) in files]
    lines += ["tags:"] + [f"- {t}" for t in ["prefmill", *tags]] + ["---", ""]
    lines += [
        f"# {dataset} ({fmt})",
        "",
        f"Exported by prefmill from dataset `{dataset}`, version `{version['version_id']}` "
        f"(created {version['created_at']}, run `{version['run_id']}`"
        + (f", parent `{version['parent_version']}`" if version.get("parent_version") else "")
        + ").",
        "",
    ]
    lines += ["## Splits", ""]
    lines += _table(
        ["part", "split", "rows", "file"],
        [
            [p, s, split_counts[p][s], files.get((p, s), "(empty, not written)")]
            for p in sorted(split_counts)
            for s in ("train", "test")
        ],
    )
    if excluded:
        lines += [
            "",
            "Rows not exported (by reason): " + ", ".join(f"{k} {v}" for k, v in sorted(excluded.items())) + ".",
        ]
    lines += ["", "## Sources", ""]
    lines += _table(["source file", "format", "origin", "rows"], _group(lineage, ["source_file", "format", "origin"]))
    lines += ["", "## Conversion policies", ""]
    policy_rows = [[p or "as collected", n] for p, n in _group(lineage, ["policy"])]
    lines += _table(["policy", "rows"], policy_rows)
    if converted:
        lines += ["", "Converted at export time: " + ", ".join(f"{k} {v}" for k, v in sorted(converted.items())) + "."]
    if version.get("policies") and version["policies"] not in ("[]", []):
        lines += ["", f"Policies recorded on the version: `{version['policies']}`."]
    lines += _ai_labels(version)
    lines += [
        "",
        "## Export parameters",
        "",
        "```json",
        orjson.dumps(params, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode(),
        "```",
        "",
        f'Split rule: a row is in test when blake2b("{params["seed"]}\\x1f" + {params["split_key"]}) / 2^64 < '
        f"{params['test_fraction']}, so no {params['split_key']} appears in both splits.",
        "",
    ]
    return "\n".join(lines)
