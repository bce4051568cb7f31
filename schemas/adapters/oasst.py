"""OpenAssistant message trees (the oasst "trees" export): one JSON line = one tree.

A tree record is ``{message_tree_id, tree_state, prompt: message}``; a message is ``{message_id,
role: prompter|assistant, text, deleted, synthetic, rank?, emojis?, replies: [message…]}``. A bare
root message (no tree wrapper) is accepted too.

Rows emitted per tree:

* **listwise** — for each prompter message whose assistant replies carry ``rank``: the
  conversation up to and including that prompter message is the prompt, the ranked replies are the
  completions. Ranks are re-numbered densely (0 = best, equal ranks stay ties) after unranked or
  deleted replies are dropped, so "0 = best" holds even when the best reply was deleted; the
  source ranks stay in ``meta``. Fewer than 2 ranked replies → no ranking.
* **binary** — for each assistant message with emoji votes: label True when ``+1`` > ``-1``,
  False when ``-1`` > ``+1``, score = ``+1`` − ``-1``. Equal or no votes are not feedback and
  yield nothing (no rejection either).

Deleted messages and their subtrees are skipped (their conversation is gone). A deleted reply that
carried a rank yields one ``AdaptError('deleted_message')`` — counted once, by its sibling group,
never again for its subtree or its votes. ``synthetic: true`` on any message involved (prompt path
or completion) → origin ``synthetic``. Bad subtrees (unknown role, missing text) yield an
``AdaptError`` item and the rest of the tree still counts. The walk is iterative: trees can be deep.
"""

from __future__ import annotations

from typing import Any

from schemas.adapters.base import AdaptError
from schemas.adapters.common import ASSISTANT, USER, msg
from schemas.records import binary, listwise

OASST_ROLES = {"prompter": USER, "assistant": ASSISTANT}
# Kept in meta for each judged message; everything else about a message is structure or text.
_MESSAGE_META = ("message_id", "lang", "review_count", "review_result", "model_name")


def _dense(ranks: list) -> list[int]:
    order = {r: i for i, r in enumerate(sorted(set(ranks)))}
    return [order[r] for r in ranks]


def _check_message(m: Any, where: str) -> dict:
    """The canonical message for one oasst message, or AdaptError."""
    if not isinstance(m, dict):
        raise AdaptError("wrong_type", f"{where} is a {type(m).__name__}, expected a message object")
    role = m.get("role")
    if role not in OASST_ROLES:
        if role is None:
            raise AdaptError("missing_field", f"{where} has no 'role'")
        raise AdaptError("unknown_role", f"{where} has role {role!r}; known: prompter, assistant")
    text = m.get("text")
    if text is None:
        raise AdaptError("missing_field", f"{where} has no 'text'")
    if not isinstance(text, str):
        raise AdaptError("wrong_type", f"{where}.text is a {type(text).__name__}, expected str")
    if not text.strip():
        raise AdaptError("empty_text", f"{where} has empty text")
    return msg(OASST_ROLES[role], text)


def _replies(m: dict, where: str) -> list:
    replies = m.get("replies") or []
    if not isinstance(replies, list):
        raise AdaptError("wrong_type", f"{where}.replies is a {type(replies).__name__}, expected a list")
    return replies


def _votes(m: dict) -> tuple[int, int] | None:
    emojis = m.get("emojis")
    if not isinstance(emojis, dict):
        return None
    up, down = emojis.get("+1", 0), emojis.get("-1", 0)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (up, down)):
        return None
    return up, down


class OasstAdapter:
    name = "oasst"

    def __init__(self, listwise: bool = True, binary: bool = True):
        self.emit_listwise = listwise
        self.emit_binary = binary

    def adapt(self, obj: Any) -> list:
        if not isinstance(obj, dict):
            raise AdaptError("wrong_type", f"record is a {type(obj).__name__}, expected an object")
        root = obj["prompt"] if "prompt" in obj else obj if "message_id" in obj else None
        if root is None:
            raise AdaptError("missing_field", "field 'prompt' (the tree's root message) is missing")
        root_msg = _check_message(root, "prompt")  # a bad root rejects the whole tree
        if root.get("deleted"):
            raise AdaptError("deleted_message", "the tree's root message is deleted")
        if root_msg["role"] != USER:
            raise AdaptError("role_order", "the tree's root message is not a prompter message")
        tree_id = obj.get("message_tree_id") or root.get("message_id")
        out: list = []
        # Stack of (message, canonical conversation up to and including it, synthetic on the path?).
        stack = [(root, [root_msg], bool(root.get("synthetic")))]
        while stack:
            node, path, synth = stack.pop()
            where = f"message {node.get('message_id')}"
            try:
                replies = _replies(node, where)
            except AdaptError as e:
                out.append(e)
                continue
            ranked: list[tuple[dict, dict]] = []
            for i, child in enumerate(replies):
                if isinstance(child, dict) and child.get("deleted"):
                    # Skipped with its subtree; counted only when it takes a reply out of a ranking.
                    if self.emit_listwise and child.get("rank") is not None and path[-1]["role"] == USER:
                        out.append(
                            AdaptError(
                                "deleted_message", f"ranked reply {child.get('message_id')} of {where} is deleted"
                            )
                        )
                    continue
                try:
                    child_msg = _check_message(child, f"{where}.replies[{i}]")
                    if child_msg["role"] == path[-1]["role"]:
                        raise AdaptError("role_order", f"{where}.replies[{i}] has the same role as its parent")
                except AdaptError as e:
                    out.append(e)  # the subtree under a bad message goes with it
                    continue
                child_synth = synth or bool(child.get("synthetic"))
                stack.append((child, path + [child_msg], child_synth))
                if child_msg["role"] != ASSISTANT:
                    continue
                if self.emit_binary:
                    item = self._binary(child, child_msg, path, child_synth, tree_id)
                    if item is not None:
                        out.append(item)
                if child.get("rank") is not None:
                    ranked.append((child, child_msg))
            if self.emit_listwise:
                group = self._listwise(node, ranked, path, synth, tree_id)
                if group is not None:
                    out.append(group)
        return out

    @staticmethod
    def _binary(m: dict, m_msg: dict, path: list[dict], synth: bool, tree_id: Any) -> tuple | None:
        votes = _votes(m)
        if votes is None or votes[0] == votes[1]:
            return None
        up, down = votes
        meta = {
            "message_tree_id": tree_id,
            "parent_id": m.get("parent_id"),
            **{k: m[k] for k in _MESSAGE_META if k in m},
            "emojis": m.get("emojis"),
        }
        row = binary(
            path, [m_msg], label=up > down, score=up - down, origin="synthetic" if synth else "human", meta=meta
        )
        return ("binary", row)

    @staticmethod
    def _listwise(
        node: dict, ranked: list[tuple[dict, dict]], path: list[dict], synth: bool, tree_id: Any
    ) -> tuple | AdaptError | None:
        if len(ranked) < 2:
            return None
        bad = [c for c, _ in ranked if isinstance(c["rank"], bool) or not isinstance(c["rank"], (int, float))]
        if bad:
            return AdaptError(
                "wrong_type", f"rank {bad[0]['rank']!r} of message {bad[0].get('message_id')} is not a number"
            )
        # Best first, so the same ranking listed in another reply order gets the same record_id.
        ranked.sort(key=lambda cm: cm[0]["rank"])
        source_ranks = [c["rank"] for c, _ in ranked]
        any_synth = synth or any(c.get("synthetic") for c, _ in ranked)
        meta = {
            "message_tree_id": tree_id,
            "parent_id": node.get("message_id"),
            "message_ids": [c.get("message_id") for c, _ in ranked],
            "source_ranks": source_ranks,
            "lang": node.get("lang"),
        }
        models = [c.get("model_name") for c, _ in ranked]
        if any(models):
            meta["model_names"] = models
        row = listwise(
            path,
            [[m] for _, m in ranked],
            ranks=_dense(source_ranks),
            origin="synthetic" if any_synth else "human",
            meta=meta,
        )
        return ("listwise", row)
