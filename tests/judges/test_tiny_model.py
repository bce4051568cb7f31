import json

import pytest

from judges.tiny_model import CHAT_TEMPLATE, build_tiny_model, model_digest


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "m", seed=0)


def test_same_seed_same_files_other_seed_other_weights(tiny, tmp_path):
    again = build_tiny_model(tmp_path / "again", seed=0)
    assert model_digest(again) == model_digest(tiny)
    other = build_tiny_model(tmp_path / "other", seed=1)
    assert model_digest(other) != model_digest(tiny)
    assert (other / "tokenizer.json").read_bytes() == (tiny / "tokenizer.json").read_bytes()  # only weights differ


def test_config_fits_judge_prompts(tiny):
    cfg = json.loads((tiny / "config.json").read_text())
    assert cfg["architectures"] == ["GPT2LMHeadModel"]
    assert (cfg["n_layer"], cfg["n_embd"], cfg["n_head"]) == (2, 64, 2)
    assert cfg["n_positions"] >= 1024
    assert sum(f.stat().st_size for f in tiny.iterdir()) < 5_000_000


def test_tokenizer_round_trips_and_has_the_chat_template(tiny):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    text = 'Response A: naïve café 東京 <<<END>>> {"k": [1, 2]}'
    assert tok.decode(tok.encode(text)) == text  # byte-level: any text, no unknown tokens
    assert tok.chat_template == CHAT_TEMPLATE
    rendered = tok.apply_chat_template(
        [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert rendered == "<|system|>\ns\n<|user|>\nhi\n<|assistant|>\n"


def test_model_runs_in_transformers(tiny):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny).eval()
    ids = torch.tensor([tok.encode("The chosen response is better.")])
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tok))
    assert torch.isfinite(logits).all()
