"""Reject rows whose text contains a literal chat-template special token such as ``</s>`` or ``<|im_end|>``.

A tokenizer turns such a string into the real control token (Hugging Face tokenizers parse special tokens
in text by default), so a ``</s>`` in the middle of a chosen response ends the sequence there for a Llama
model and the rest of the turn trains on garbage. Real exports carry them (a LLaMA-Factory KTO demo row,
UltraFeedback rows). The check is vectorised over the message contents of every conversation column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.registry import STEPS
from schemas.step import Step, StepResult, reject_rows

# DEFAULT: the end/turn markers of the common chat templates (Llama 2/3, ChatML, Gemma, Phi, Mistral, GPT-2).
DEFAULT_TOKENS: tuple[str, ...] = (
    "</s>",
    "<|im_start|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|endoftext|>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<|end|>",
    "[INST]",
    "[/INST]",
)
# Columns that hold conversations (lists of {role, content}) or lists of them, per shape.
CONVERSATIONS = ("prompt", "chosen", "rejected", "completion")
CONVERSATION_LISTS = ("completions",)
REASON = "special_token"


@dataclass(frozen=True)
class SpecialTokenConfig:
    tokens: tuple[str, ...] = DEFAULT_TOKENS


@STEPS.register(
    "special_tokens",
    config=SpecialTokenConfig,
    shapes=("pairwise", "binary", "listwise", "ratings"),
    tags=("special-token-free",),
    extra={"stage": "ingest", "default": True},
)
class SpecialTokenCheck(Step):
    """Reject rows whose text contains a literal special token (</s>, <|im_end|>, <|eot_id|>, ...)."""

    name = "special_tokens"

    def __init__(self, config: SpecialTokenConfig | None = None):
        super().__init__()
        self.config = config or SpecialTokenConfig()
        self.pattern = "|".join(re.escape(t) for t in self.config.tokens)

    def process(self, batch: pa.Table) -> StepResult:
        if not self.config.tokens or batch.num_rows == 0:
            return StepResult(batch)
        hit = np.zeros(batch.num_rows, dtype=bool)
        where: dict[int, str] = {}
        for name in CONVERSATIONS + CONVERSATION_LISTS:
            if name not in batch.column_names:
                continue
            offset = 0
            for chunk in batch.column(name).chunks:
                self._scan(chunk, name, offset, hit, where)
                offset += len(chunk)
        if not hit.any():
            return StepResult(batch)
        bad = batch.filter(pa.array(hit))
        details = [where[int(i)] for i in np.flatnonzero(hit)]
        return StepResult(
            batch.filter(pa.array(~hit)), reject_rows(bad, self.name, REASON, detail=details, shape=self.shape)
        )

    def _scan(self, chunk: pa.Array, name: str, offset: int, hit: np.ndarray, where: dict[int, str]) -> None:
        """Mark the rows of one column chunk whose messages contain a token. One RE2 pass over the flattened
        contents; row indices are only worked out when something matched (rare)."""
        nested = name in CONVERSATION_LISTS
        msgs = pc.list_flatten(chunk)
        if nested:
            msgs = pc.list_flatten(msgs)
        texts = pc.struct_field(msgs, "content")
        match = pc.fill_null(pc.match_substring_regex(texts, self.pattern), False)
        if not pc.any(match).as_py():
            return
        rows = pc.list_parent_indices(chunk).to_numpy()
        if nested:
            rows = rows[pc.list_parent_indices(pc.list_flatten(chunk)).to_numpy()]
        found = match.to_numpy(zero_copy_only=False).astype(bool)
        for r, text in zip(rows[found] + offset, texts.filter(match).to_pylist()):
            hit[r] = True
            if int(r) not in where:
                token = re.search(self.pattern, text)
                where[int(r)] = f"{name} contains the literal special token {token.group(0)!r}" if token else name
