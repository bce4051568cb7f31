"""LLaMA-Factory's sharegpt layouts and their ``dataset_info.json`` entries (as LLaMA-Factory documents its data).

DPO: ``conversations`` (from/value, human first, ending on a human turn), ``chosen`` / ``rejected``
(one gpt message each), optional ``system`` column. KTO: ``messages`` in role/content form whose
last message is the judged answer, plus a boolean ``label`` (registered as ``kto_tag``).
Rows LLaMA-Factory cannot represent (multi-message answers, non-alternating turns) are excluded
and counted rather than silently reshaped.
"""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa

from warehouse.exports.base import EXPORTS, ExportFormat, Part, lineage_of, preferred_pairs

SHAREGPT_ROLE = {"user": "human", "assistant": "gpt"}
TURN = pa.struct([("from", pa.string()), ("value", pa.string())])
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
NOT_REPRESENTABLE = "not_representable_in_llamafactory"


def _system_and_turns(prompt: list[dict]) -> tuple[str | None, list[dict]] | None:
    """(system prompt, turns) when the turns alternate user/assistant and end on the user; else None."""
    system = None
    if prompt and prompt[0]["role"] == "system":
        system, prompt = prompt[0]["content"], prompt[1:]
    ok = len(prompt) % 2 == 1 and all(
        m["role"] == ("user" if i % 2 == 0 else "assistant") for i, m in enumerate(prompt)
    )
    return (system, prompt) if ok else None


def _single_answer(completion: list[dict]) -> dict | None:
    return completion[0] if len(completion) == 1 and completion[0]["role"] == "assistant" else None


def _part(name: str, kept_rows: list[dict], out_rows: list[dict], schema: pa.Schema, excluded: Counter) -> Part:
    return Part(
        name,
        pa.Table.from_pylist(out_rows, schema=schema),
        [r["__key"] for r in kept_rows],
        [r["record_id"] for r in kept_rows],
        lineage_of(kept_rows),
        +excluded,
    )


def dpo_part(pairs: pa.Table) -> Part:
    pairs, excluded = preferred_pairs(pairs)
    kept, out = [], []
    for r in pairs.to_pylist():
        parsed = _system_and_turns(r["prompt"])
        chosen, rejected = _single_answer(r["chosen"]), _single_answer(r["rejected"])
        if parsed is None or chosen is None or rejected is None:
            excluded[NOT_REPRESENTABLE] += 1
            continue
        system, turns = parsed
        kept.append(r)
        out.append(
            {
                "conversations": [{"from": SHAREGPT_ROLE[m["role"]], "value": m["content"]} for m in turns],
                "chosen": {"from": "gpt", "value": chosen["content"]},
                "rejected": {"from": "gpt", "value": rejected["content"]},
                "system": system or "",
            }
        )
    schema = pa.schema(
        [("conversations", pa.list_(TURN)), ("chosen", TURN), ("rejected", TURN), ("system", pa.string())]
    )
    part = _part("dpo", kept, out, schema, excluded)
    if not any(o["system"] for o in out):  # no system prompts at all: leave the column out
        part.rows = part.rows.drop_columns(["system"])
    return part


def kto_part(binary: pa.Table) -> Part:
    excluded: Counter = Counter()
    kept, out = [], []
    for r in binary.to_pylist():
        parsed = _system_and_turns(r["prompt"])
        answer = _single_answer(r["completion"])
        if parsed is None or answer is None:
            excluded[NOT_REPRESENTABLE] += 1
            continue
        kept.append(r)
        out.append({"messages": r["prompt"] + [answer], "label": r["label"]})
    schema = pa.schema([("messages", pa.list_(MESSAGE)), ("label", pa.bool_())])
    return _part("kto", kept, out, schema, excluded)


def dataset_info(dataset: str, files: dict[tuple[str, str], str], columns: dict[str, list[str]]) -> dict:
    """Entries named ``<dataset>_<part>_<split>``; ``columns`` maps a part to its file's columns."""
    info = {}
    for (part, split), file_name in sorted(files.items()):
        name = f"{dataset}_{part}_{split}"
        if part == "dpo":
            cols = {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}
            if "system" in columns[part]:
                cols["system"] = "system"
            info[name] = {"file_name": file_name, "formatting": "sharegpt", "ranking": True, "columns": cols}
        else:
            info[name] = {
                "file_name": file_name,
                "formatting": "sharegpt",
                "columns": {"messages": "messages", "kto_tag": "label"},
                "tags": {
                    "role_tag": "role",
                    "content_tag": "content",
                    "user_tag": "user",
                    "assistant_tag": "assistant",
                    "system_tag": "system",
                },
            }
    return info


@EXPORTS.register("llamafactory", shapes=("pairwise", "binary"), tags=("llama-factory", "sharegpt"))
class LlamaFactory(ExportFormat):
    """LLaMA-Factory sharegpt DPO and KTO files, with their dataset_info.json."""

    converts_to = "pairwise"
    file_pattern = "{part}_{split}.{ext}"

    def build(self, sources: dict[str, pa.Table]) -> list[Part]:
        return [dpo_part(sources["pairwise"]), kto_part(sources["binary"])]

    def extra_files(self, dataset: str, files: dict[tuple[str, str], str], parts: list[Part]) -> dict[str, str]:
        info = dataset_info(dataset, files, {part.name: part.rows.column_names for part in parts})
        return {"dataset_info.json": json.dumps(info, indent=2, sort_keys=True) + "\n"}
