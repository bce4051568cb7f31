"""Embedding/dedup text recipes: which text of a canonical row gets embedded or shingled.

A recipe is a parameter (and part of the embedding-store key), so "dedup on prompts" and "dedup on whole
pairs" are the same code. Texts are built with Arrow list kernels, no per-row Python; a conversation's text is
``schemas.records.conversation_text`` (message contents joined by newlines), parts are joined by a blank line.

| recipe | pairwise | binary / ratings | listwise |
|---|---|---|---|
| prompt | prompt | prompt | prompt |
| prompt_last_turn | last user message of the prompt (last message if none) | same | same |
| chosen / rejected | chosen / rejected | - | best / worst ranked completion |
| completion | - | completion | - |
| pair | prompt + chosen + rejected | prompt + completion | prompt + all completions |
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

RECIPES = ("prompt", "prompt_last_turn", "chosen", "rejected", "completion", "pair")
_PART_SEP = "\n\n"


def shape_of(table: pa.Table) -> str:
    names = set(table.column_names)
    if {"chosen", "rejected"} <= names:
        return "pairwise"
    if "completions" in names:
        return "listwise"
    if "completion" in names:
        return "ratings" if "ratings" in names else "binary"
    raise ValueError(f"cannot tell the shape of a table with columns {sorted(names)}")


def _col(table: pa.Table, name: str) -> pa.Array:
    col = table.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def conversation_texts(conversations: pa.Array) -> pa.Array:
    """list<struct<role, content>> → one string per row (contents joined by newlines; null → "")."""
    conversations = conversations.fill_null([]) if conversations.null_count else conversations
    contents = pc.struct_field(conversations.flatten(), "content").fill_null("")
    lists = pa.ListArray.from_arrays(_rebased_offsets(conversations), contents)
    return pc.binary_join(lists, "\n").fill_null("")


def _rebased_offsets(lists: pa.Array) -> pa.Array:
    off = lists.offsets.to_numpy()
    return pa.array((off - off[0]).astype(np.int32))


def _last_user_turn(prompt: pa.Array) -> pa.Array:
    prompt = prompt.fill_null([]) if prompt.null_count else prompt
    flat = prompt.flatten()
    n, m = len(prompt), len(flat)
    parent = pc.list_parent_indices(prompt).to_numpy()
    is_user = pc.equal(pc.struct_field(flat, "role"), "user").fill_null(False).to_numpy(zero_copy_only=False)
    pick = np.full(n, -1, np.int64)
    np.maximum.at(pick, parent[is_user], np.flatnonzero(is_user))
    last = np.full(n, -1, np.int64)
    np.maximum.at(last, parent, np.arange(m))
    pick = np.where(pick >= 0, pick, last)  # no user turn: the last message
    contents = pc.struct_field(flat, "content").fill_null("")
    out = contents.take(pa.array(np.maximum(pick, 0))) if m else pa.array([""] * n, pa.string())
    return pc.if_else(pa.array(pick >= 0), out, "")


def _ranked(table: pa.Table, best: bool) -> pa.Array:
    """Best (rank 0 / highest score) or worst completion of each listwise row; ties keep list order."""
    comps = _col(table, "completions")
    n = len(comps)
    lens = pc.list_value_length(comps).fill_null(0).to_numpy()
    parent = np.repeat(np.arange(n), lens)
    pos = np.arange(len(parent)) - np.repeat(np.cumsum(lens) - lens, lens)
    order_key = pos.astype(np.float64)  # fallback: list order (first = best)
    for col, sign in (("scores", -1.0), ("ranks", 1.0)):  # ranks win over scores when both exist
        if col not in table.column_names:
            continue
        vals = _col(table, col)
        ok = pc.list_value_length(vals).fill_null(-1).to_numpy() == lens
        flat = pc.list_flatten(vals.filter(pa.array(ok))).cast(pa.float64()).fill_null(np.nan).to_numpy()
        use = np.repeat(ok, lens)
        key = np.full(len(parent), np.nan)
        key[use] = sign * flat
        good = use & ~np.isnan(key)
        row_good = np.bincount(parent[good], minlength=n) == lens  # only rows where every value is present
        sel = row_good[parent]
        order_key = np.where(sel, key, order_key)
    if not best:
        order_key = -order_key
    idx = np.lexsort((pos if best else -pos, order_key, parent))  # within a row: key, then position
    first = np.flatnonzero(np.r_[True, parent[idx][1:] != parent[idx][:-1]]) if len(idx) else idx
    pick = np.full(n, -1, np.int64)
    pick[parent[idx][first]] = idx[first]
    texts = conversation_texts(comps.flatten())
    out = texts.take(pa.array(np.maximum(pick, 0))) if len(texts) else pa.array([""] * n, pa.string())
    return pc.if_else(pa.array(pick >= 0), out, "")


def text_array(table: pa.Table, recipe: str) -> pa.Array:
    """The recipe's text per row as an Arrow string array (what dedup and MinHash consume)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    shape = shape_of(table)
    if recipe == "prompt":
        return conversation_texts(_col(table, "prompt"))
    if recipe == "prompt_last_turn":
        return _last_user_turn(_col(table, "prompt"))
    if recipe in ("chosen", "rejected"):
        if shape == "pairwise":
            return conversation_texts(_col(table, recipe))
        if shape == "listwise":
            return _ranked(table, best=recipe == "chosen")
        raise ValueError(f"recipe {recipe!r} needs pairwise or listwise rows, not {shape}")
    if recipe == "completion":
        if shape in ("binary", "ratings"):
            return conversation_texts(_col(table, "completion"))
        raise ValueError(f"recipe 'completion' needs binary or ratings rows, not {shape} (use chosen/rejected/pair)")
    parts = [conversation_texts(_col(table, "prompt"))]
    if shape == "pairwise":
        parts += [conversation_texts(_col(table, "chosen")), conversation_texts(_col(table, "rejected"))]
    elif shape == "listwise":
        comps = _col(table, "completions")
        comps = comps.fill_null([]) if comps.null_count else comps
        each = conversation_texts(comps.flatten())
        parts.append(pc.binary_join(pa.ListArray.from_arrays(_rebased_offsets(comps), each), _PART_SEP))
    else:
        parts.append(conversation_texts(_col(table, "completion")))
    return pc.binary_join_element_wise(*parts, _PART_SEP)
