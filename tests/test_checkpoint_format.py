"""Checkpoint format 2: a Llama-shaped model's checkpoint is also a Hugging Face folder (transformers
opens it with our logits, AutoTokenizer reads its tokenizer), course_lib reads it back bit-exact with
its full config; format-1 folders (written here by hand, as the old writer did) still load bit-exact;
any other model keeps our own layout; load_checkpoint of a Hugging Face folder gives the model."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from course_lib.checkpoint import load_checkpoint, load_state_into, pretrained_path, read_config, save_checkpoint
from course_lib.config import ModelConfig
from course_lib.export import export_hf_llama, from_hf, hf_llama_state_dict
from course_lib.model import Transformer
from course_lib.tokenizer import train_tokenizer

transformers = pytest.importorskip("transformers")

TEXTS = ["今天天气很好，我们一起去公园散步。", "人民日报报道，今年粮食产量再创新高。", "hello world, hello there"] * 20


@pytest.fixture(scope="module")
def bpe():
    return train_tokenizer(TEXTS, vocab_size=300)


def _model(**overrides):
    torch.manual_seed(0)
    model = Transformer(ModelConfig.nano(vocab_size=300, **overrides)).eval()
    with torch.no_grad():                       # non-trivial norm gains: a swapped or skipped norm would show
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model


def _ids():
    return torch.randint(0, 300, (2, 23), generator=torch.Generator().manual_seed(3))


def _assert_same_tensors(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


# dropout is a field Hugging Face's config does not carry: reading it back proves our config is the one used
@pytest.mark.parametrize("overrides", [dict(dropout=0.1), dict(qk_norm=True, tie_embeddings=False, dropout=0.1)])
def test_transformers_opens_a_fresh_checkpoint_and_course_lib_reads_it_bit_exact(tmp_path, bpe, overrides):
    model = _model(**overrides)
    folder = save_checkpoint(model, tmp_path / "ck", tokenizer=bpe, step=3)
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    assert hf.config.model_type == ("qwen3" if model.config.qk_norm else "llama")
    with torch.no_grad():
        torch.testing.assert_close(hf(_ids()).logits, model(_ids()).logits, atol=1e-5, rtol=0)
    # the stored names are exactly transformers' own (lm_head only when untied)
    expected = set(hf.state_dict()) - ({"lm_head.weight"} if model.config.tie_embeddings else set())
    assert set(load_file(str(folder / "model.safetensors"))) == expected
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    assert tok("今天天气")["input_ids"] == bpe.encode("今天天气", add_special_tokens=True)
    assert hf.config.eos_token_id == bpe.eos_id and hf.config.bos_token_id == bpe.bos_id   # generate stops at EOS
    for loaded in (load_checkpoint(folder), from_hf(folder)):
        assert loaded.config == model.config
        _assert_same_tensors(loaded, model)
    target = Transformer(model.config)                      # resume reads the weights into an existing model
    _assert_same_tensors(load_state_into(target, folder), model)


def test_a_training_runs_step_folder_opens_in_transformers(tmp_path):
    from course_lib.train import TrainConfig, Trainer

    g = torch.Generator().manual_seed(0)
    items = [{"input_ids": ids[:-1], "labels": ids[1:]} for ids in torch.randint(3, 300, (8, 17), generator=g)]
    model = _model()
    config = TrainConfig(batch_size=4, max_steps=2, lr=1e-2, warmup_steps=0, save_every=2, out_dir=str(tmp_path),
                         device="cpu", dtype="float32", progress=False, log_every=0, seed=1)
    Trainer(model, items, config).fit()
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "step_2").eval()
    with torch.no_grad():
        torch.testing.assert_close(hf(_ids()).logits, model.eval()(_ids()).logits, atol=1e-5, rtol=0)


def test_our_checkpoint_saved_again_by_transformers_loads_with_its_exact_config(tmp_path):
    model = _model(dropout=0.1)
    hf = transformers.AutoModelForCausalLM.from_pretrained(save_checkpoint(model, tmp_path / "ck"))
    hf.save_pretrained(tmp_path / "again")
    loaded = load_checkpoint(tmp_path / "again")
    assert loaded.config == model.config                    # dropout too, which Hugging Face's schema lacks
    with torch.no_grad():
        assert torch.equal(loaded(_ids()).logits, model(_ids()).logits)


def test_a_tied_checkpoint_stays_tied(tmp_path):
    loaded = load_checkpoint(save_checkpoint(_model(), tmp_path / "ck"))
    assert loaded.lm_head.weight is loaded.embed_tokens.weight


def _write_format_1(model, folder):
    """The folder the format-1 writer produced: our state-dict names (a tied weight once), flat config."""
    folder.mkdir()
    state = model.state_dict()
    tied = {"lm_head.weight": "embed_tokens.weight"} if model.config.tie_embeddings else {}
    save_file({k: v.contiguous() for k, v in state.items() if k not in tied}, str(folder / "model.safetensors"),
              metadata={"format": "pt", "course_lib.format_version": "1", "course_lib.tied": json.dumps(tied)})
    (folder / "config.json").write_text(json.dumps(model.config.to_dict()), encoding="utf-8")
    (folder / "metadata.json").write_text(json.dumps({"format_version": 1}), encoding="utf-8")
    return folder


@pytest.mark.parametrize("overrides", [dict(), dict(qk_norm=True, tie_embeddings=False), dict(pos="alibi")])
def test_a_format_1_folder_still_loads_bit_exact(tmp_path, overrides):
    model = _model(**overrides)
    folder = _write_format_1(model, tmp_path / "old")
    loaded = load_checkpoint(folder)
    assert loaded.config == model.config
    _assert_same_tensors(loaded, model)
    assert torch.equal(loaded(_ids()).logits, model(_ids()).logits)
    fresh = Transformer(model.config)
    _assert_same_tensors(load_state_into(fresh, folder), model)


def test_the_shipped_model_loads_bit_exact():
    # shipped in format 1 (our names); `make pretrained` would rebuild it in format 2 (Hugging Face names)
    folder = pretrained_path()
    stored = load_file(str(folder / "model.safetensors"))
    model = load_checkpoint(folder)
    hf_names = "model_type" in json.loads((folder / "config.json").read_text())
    state = hf_llama_state_dict(model) if hf_names else model.state_dict()
    assert stored
    for name, t in stored.items():
        assert torch.equal(state[name], t), name


def test_a_model_transformers_cannot_compute_keeps_our_layout(tmp_path):
    model = _model(pos="alibi")
    folder = save_checkpoint(model, tmp_path / "ck")
    assert "model_type" not in json.loads((folder / "config.json").read_text())
    assert set(load_file(str(folder / "model.safetensors"))) == set(model.state_dict()) - {"lm_head.weight"}
    _assert_same_tensors(load_checkpoint(folder), model)


def test_load_checkpoint_of_an_export_gives_the_model(tmp_path, bpe):
    model = _model(qk_norm=True)
    out = export_hf_llama(model, tmp_path / "hf", tokenizer=bpe)
    loaded = load_checkpoint(out)
    assert read_config(out) == loaded.config
    with torch.no_grad():
        assert torch.equal(loaded(_ids()).logits, model(_ids()).logits)


def test_a_renamed_tensor_is_named_in_the_error(tmp_path):
    folder = save_checkpoint(_model(), tmp_path / "ck")
    from safetensors import safe_open
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        header = f.metadata()
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["model.layers.0.mlp.extra.weight"] = tensors.pop("model.layers.0.mlp.up_proj.weight")
    save_file(tensors, str(folder / "model.safetensors"), metadata=header)
    with pytest.raises(ValueError, match=r"no course_lib name: model\.layers\.0\.mlp\.extra\.weight"):
        load_checkpoint(folder)
