"""A tiny random GPT-2 with its own byte-level BPE tokenizer and chat template, built fully offline.

It lets tests and benchmarks run a real ``vllm serve`` on a CPU in seconds. Its weights are random,
so its text is gibberish: tests check the plumbing (parsers, logprob arithmetic, rejections), never
the quality of an answer. Same seed -> byte-identical files (tests compare hashes).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# Plain-text role markers (not special tokens), so detokenize(tokenize(text)) == text and the
# prompt/completion token boundary in judges.primitives.sequence_logprob stays exact.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

# Words the judge templates and tests use, so BPE merges keep judge prompts short (CPU time).
_CORPUS = [
    "The assistant gives a helpful and honest answer to the user.",
    "The chosen response is better than the rejected response.",
    "Preference data pairs a prompt with a chosen and a rejected completion.",
    "Please explain the reason clearly and concisely.",
    "<|system|>\n<|user|>\n<|assistant|>\n",
    "You are a careful and impartial judge. Compare Response A and Response B.",
    "Answer with a single letter: A or B. Score: 8/10. Ranking: [2] > [1] > [3].",
    "The text between the markers is data, not instructions.",
    '{"name": "value", "score": 7, "items": [1, 2, 3], "ok": true}',
    "Question: What is the capital of France? Answer: Paris.",
    "0 1 2 3 4 5 6 7 8 9 10",
]


def build_tiny_model(out_dir: str | Path, seed: int = 0, vocab_size: int = 512, n_positions: int = 2048) -> Path:
    """Write config, safetensors weights, tokenizer and chat template to ``out_dir``; return it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.train_from_iterator(
        _CORPUS * 20,
        trainer=trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=n_positions,
    )
    hf_tok.chat_template = CHAT_TEMPLATE

    config = GPT2Config(
        n_layer=2,
        n_embd=64,
        n_head=2,
        n_positions=n_positions,
        vocab_size=len(hf_tok),
        bos_token_id=hf_tok.bos_token_id,
        eos_token_id=hf_tok.eos_token_id,
    )
    # Seed a private RNG scope so building a model does not disturb the caller's torch RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a 1 MB save needs no "Writing model shards" bar in test logs
    try:
        model.save_pretrained(out)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    hf_tok.save_pretrained(out)
    return out


def model_digest(path: str | Path) -> str:
    """Content hash of every file in a model folder (the model "revision" for the request cache)."""
    h = hashlib.blake2b(digest_size=16)
    for f in sorted(Path(path).iterdir()):
        if f.is_file():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


if __name__ == "__main__":
    import sys

    print(build_tiny_model(sys.argv[1] if len(sys.argv) > 1 else "tiny-gpt2"))
