"""Hugging Face both ways, checked against transformers itself (models built locally with random
weights and save_pretrained; nothing is downloaded): from_hf of a Llama and a Qwen3 folder, export of
a qk_norm model as Qwen3, the exported tokenizer (left padding, assistant-token mask, refusal of what
transformers cannot load), generate against transformers' generate, and each tool opening the other's
folder."""
import json

import pytest
import torch

from course_lib.checkpoint import load_checkpoint, save_checkpoint
from course_lib.config import ModelConfig
from course_lib.data import SFTDataset
from course_lib.export import export_hf_llama, from_hf
from course_lib.model import Transformer
from course_lib.sample import generate
from course_lib.tokenizer import CharTokenizer, train_tokenizer

transformers = pytest.importorskip("transformers")

TEXTS = ["今天天气很好，我们一起去公园散步。", "人民日报报道，今年粮食产量再创新高。", "hello world, hello there"] * 20
SMALL = dict(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, max_position_embeddings=128, rms_norm_eps=1e-6)


@pytest.fixture(scope="module")
def bpe():
    return train_tokenizer(TEXTS, vocab_size=300)


def _perturb_norms(module):
    with torch.no_grad():                       # non-trivial norm gains: a swapped or skipped norm would show
        for p in module.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return module


def _hf_model(kind, **overrides):
    torch.manual_seed(0)
    cls_config, cls_model = ((transformers.LlamaConfig, transformers.LlamaForCausalLM) if kind == "llama"
                             else (transformers.Qwen3Config, transformers.Qwen3ForCausalLM))
    return _perturb_norms(cls_model(cls_config(**{**SMALL, **overrides})).eval())


# ---------------------------------------------------------------- import
@pytest.mark.parametrize("kind,overrides", [
    ("llama", dict(tie_word_embeddings=False, rope_theta=10000.0)),
    ("llama", dict(tie_word_embeddings=True, num_key_value_heads=1)),
    ("qwen3", dict(tie_word_embeddings=True, rope_theta=1e6)),
    ("qwen3", dict(tie_word_embeddings=False)),
])
def test_from_hf_gives_transformers_logits(tmp_path, kind, overrides):
    hf = _hf_model(kind, **overrides)
    hf.save_pretrained(tmp_path / "hf")
    model = from_hf(tmp_path / "hf")
    assert model.config.qk_norm == (kind == "qwen3")
    assert model.config.tie_embeddings == hf.config.tie_word_embeddings
    ids = torch.randint(0, 300, (2, 33), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, hf(ids).logits, atol=1e-4, rtol=1e-4)


def test_from_hf_reads_sharded_weights(tmp_path):
    hf = _hf_model("qwen3")
    hf.save_pretrained(tmp_path / "hf", max_shard_size="100KB")
    assert len(list((tmp_path / "hf").glob("*.safetensors"))) > 1
    ids = torch.randint(0, 300, (1, 17))
    with torch.no_grad():
        torch.testing.assert_close(from_hf(tmp_path / "hf")(ids).logits, hf(ids).logits, atol=1e-4, rtol=1e-4)


def test_from_hf_names_what_it_cannot_compute(tmp_path):
    hf = _hf_model("llama", attention_bias=True)
    hf.save_pretrained(tmp_path / "hf")
    with pytest.raises(ValueError, match="attention_bias=True"):
        from_hf(tmp_path / "hf")
    with pytest.raises(FileNotFoundError, match="config.json"):
        from_hf(tmp_path / "nothing")


# ---------------------------------------------------------------- export
def test_qk_norm_model_exports_as_qwen3_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = _perturb_norms(Transformer(ModelConfig.nano(qk_norm=True)).eval())
    out = export_hf_llama(model, tmp_path / "hf", bos_token_id=1, eos_token_id=2)
    assert json.loads((out / "config.json").read_text())["model_type"] == "qwen3"
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(hf).__name__ == "Qwen3ForCausalLM"
    ids = torch.randint(0, model.config.vocab_size, (2, 40))
    back = from_hf(out)
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, model(ids).logits, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(back(ids).logits, model(ids).logits, atol=0, rtol=0)
    with pytest.raises(ValueError, match="qk_norm"):
        export_hf_llama(model, tmp_path / "as_llama", format="llama")


def test_exported_tokenizer_pads_left_and_masks_assistant_tokens(tmp_path, bpe):
    out = export_hf_llama(Transformer(ModelConfig.nano(vocab_size=bpe.vocab_size)), tmp_path / "hf", tokenizer=bpe)
    tok = transformers.AutoTokenizer.from_pretrained(out)
    assert tok.padding_side == "left"
    batch = tok(["今天", "人民日报报道，今年"], padding=True)
    assert batch["attention_mask"][0][0] == 0 and batch["attention_mask"][0][-1] == 1
    conv = [{"role": "system", "content": "简短"}, {"role": "user", "content": "你好"},
            {"role": "assistant", "content": "你好！"}, {"role": "user", "content": "天气？"},
            {"role": "assistant", "content": "很好"}]
    enc = tok.apply_chat_template(conv, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    assert tok.decode([t for t, m in zip(ids, mask) if m]) == "你好！<|im_end|>很好<|im_end|>"
    # the same tokens are SFT targets in course_lib (labels are the next tokens, so shift back by one)
    item = SFTDataset([conv], bpe, max_len=256)[0]
    assert item["input_ids"].tolist() == ids[:-1]
    ours = [0] + [int(v != -100) for v in item["labels"].tolist()]
    assert ours == mask


def test_export_refuses_a_tokenizer_transformers_cannot_load(tmp_path):
    tok = CharTokenizer.from_texts(TEXTS)
    with pytest.raises(ValueError, match="transformers cannot load"):
        export_hf_llama(Transformer(ModelConfig.nano(vocab_size=tok.vocab_size)), tmp_path / "hf", tokenizer=tok)
    assert not (tmp_path / "hf").exists()


@pytest.mark.parametrize("qk_norm", [False, True])
def test_generate_equals_transformers_generate_on_the_export(tmp_path, bpe, qk_norm):
    torch.manual_seed(0)
    model = _perturb_norms(Transformer(ModelConfig.nano(vocab_size=bpe.vocab_size, qk_norm=qk_norm)).eval())
    out = export_hf_llama(model, tmp_path / "hf", tokenizer=bpe)
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    tok = transformers.AutoTokenizer.from_pretrained(out)
    prompts = ["今天", "人民日报报道，今年粮食"]
    batch = tok(prompts, return_tensors="pt", padding=True)
    common = dict(max_new_tokens=12, pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        hf_greedy = hf.generate(**batch, do_sample=False, **common)
        ours = generate(model, [bpe.encode(p, add_special_tokens=True) for p in prompts], 12, temperature=0)
        assert torch.equal(ours, hf_greedy)              # left padding with 0 on both sides
        for seed in (0, 1):
            torch.manual_seed(seed)
            hf_sampled = hf.generate(**batch, do_sample=True, temperature=0.9, top_k=40, top_p=0.95, **common)
            sampled = generate(model, batch["input_ids"], 12, temperature=0.9, top_k=40, top_p=0.95,
                               attention_mask=batch["attention_mask"], generator=torch.Generator().manual_seed(seed))
            assert torch.equal(sampled, hf_sampled), seed


# ---------------------------------------------------------------- each tool, the other's folder
def test_each_loader_opens_the_other_folder_or_says_what_to_run(tmp_path):
    hf = _hf_model("llama")
    hf.save_pretrained(tmp_path / "hf")
    ids = torch.randint(0, 300, (2, 21), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():                                   # load_checkpoint on a Hugging Face folder: the model
        torch.testing.assert_close(load_checkpoint(tmp_path / "hf")(ids).logits, hf(ids).logits, atol=1e-5, rtol=0)
    other = tmp_path / "gpt2"
    transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=300).save_pretrained(other)
    with pytest.raises(ValueError, match=r"model_type='gpt2'; from_hf reads \('llama', 'qwen3'\)"):
        load_checkpoint(other)
    torch.manual_seed(0)
    model = _perturb_norms(Transformer(ModelConfig.nano(vocab_size=300)).eval())
    ours = save_checkpoint(model, tmp_path / "ours")
    assert from_hf(ours).config == model.config             # from_hf on our folder: the model, its exact config
    with torch.no_grad():                                   # transformers on our folder: the model
        loaded = transformers.AutoModelForCausalLM.from_pretrained(ours).eval()
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=1e-5, rtol=0)
    alibi = save_checkpoint(Transformer(ModelConfig.nano(pos="alibi")), tmp_path / "alibi")
    with pytest.raises(ValueError) as err:                  # a model Llama cannot compute: a message, not a model
        transformers.AutoModelForCausalLM.from_pretrained(alibi)
    assert "model_type" in str(err.value)
