"""Files and habits of MiniMind and Hugging Face users: their tokenizer folder, their SFT and
pretraining jsonl, ``labels=input_ids``, a checkpoint without a BPE tokenizer, ``sft --init``.

The MiniMind-style fixtures are written here (small files shaped like MiniMind's: a tokenizer_config
whose ``additional_special_tokens`` repeats BOS/EOS and a tokenizer.json without a BOS template, SFT rows
with tool calls and ``reasoning_content``, pretraining text that carries ``<|im_start|>…<|im_end|>``).
"""
import json
import warnings

import pytest
import torch
import torch.nn.functional as F

from course_lib.checkpoint import save_checkpoint
from course_lib.cli import _nearest_preset, main
from course_lib.config import ModelConfig
from course_lib.corpus import read_jsonl_sft
from course_lib.data import PackedDataset
from course_lib.model import Transformer
from course_lib.tokenizer import CharTokenizer, load_tokenizer, train_tokenizer

TEXTS = ["今天天气很好，我们一起去公园散步。", "人民日报报道，今年粮食产量再创新高。", "hello world, hello there"] * 20


@pytest.fixture(scope="module")
def bpe():
    return train_tokenizer(TEXTS, vocab_size=300)


def _nano(vocab_size: int) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig.nano(vocab_size=vocab_size))


# ---------------------------------------------------------------- generate / save_checkpoint
def test_generate_uses_the_given_tokenizer_when_the_checkpoint_has_none(tmp_path, bpe, capsys):
    save_checkpoint(_nano(bpe.vocab_size), tmp_path / "ckpt")
    bpe.save(tmp_path / "tok")
    code = main(["generate", "--ckpt", str(tmp_path / "ckpt"), "--tokenizer", str(tmp_path / "tok"),
                 "--prompt", "今天", "--max-new-tokens", "3", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("今天")


def test_save_checkpoint_stores_a_char_tokenizer_and_generate_finds_it(tmp_path, capsys):
    tok = CharTokenizer.from_texts(TEXTS)
    folder = save_checkpoint(_nano(tok.vocab_size), tmp_path / "ckpt", tokenizer=tok, step=0)
    assert (folder / "simple_tokenizer.json").is_file()
    assert "tokenizer" not in json.loads((folder / "metadata.json").read_text())   # the object, not metadata
    assert load_tokenizer(folder).chars == tok.chars
    code = main(["generate", "--ckpt", str(folder), "--prompt", "今天", "--max-new-tokens", "3", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("今天")
    # a plain metadata value named tokenizer still goes to metadata.json
    save_checkpoint(_nano(tok.vocab_size), tmp_path / "c2", tokenizer="char")
    assert json.loads((tmp_path / "c2" / "metadata.json").read_text())["tokenizer"] == "char"


# ---------------------------------------------------------------- MiniMind's tokenizer folder
def _minimind_style_folder(bpe, folder):
    bpe.save(folder)
    cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg["additional_special_tokens"] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]   # repeats, as MiniMind's
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
    raw = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    raw["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                             "use_regex": True}                     # no BOS template, as MiniMind's
    (folder / "tokenizer.json").write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    return folder


def test_minimind_tokenizer_folder_loads_and_adds_bos_by_id(tmp_path, bpe):
    tok = load_tokenizer(_minimind_style_folder(bpe, tmp_path / "mm"))
    assert tok.special_tokens == ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    plain = bpe.encode("今天天气很好")
    assert tok.encode("今天天气很好") == plain
    assert tok.encode("今天天气很好", add_special_tokens=True) == [1] + plain
    assert tok.encode_batch(["今天", "hello"], add_special_tokens=True) == [[1] + bpe.encode("今天"),
                                                                            [1] + bpe.encode("hello")]
    # our own tokenizer (with a BOS template) still gives exactly one BOS
    assert bpe.encode("今天", add_special_tokens=True) == [1] + bpe.encode("今天")


# ---------------------------------------------------------------- MiniMind SFT and pretraining files
def test_sft_rows_with_tool_calls_are_skipped_and_reasoning_flattened(tmp_path):
    rows = [
        {"conversations": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}]},
        {"conversations": [{"role": "system", "content": "tools: weather", "tools": "[...]"},
                           {"role": "user", "content": "天气？"},
                           {"role": "assistant", "content": "", "tool_calls": [{"name": "weather"}]},
                           {"role": "tool", "content": "晴"},
                           {"role": "assistant", "content": "晴天。"}]},
        {"conversations": [{"role": "user", "content": "1+1?"},
                           {"role": "assistant", "content": "2", "reasoning_content": "一加一等于二"}]},
    ]
    p = tmp_path / "sft_mini.jsonl"
    p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    with pytest.warns(UserWarning, match=r"skipped 1 conversations with tool calls.*in 1") as record:
        convs = read_jsonl_sft(p)
    assert len(record) == 1                                   # one warning for the whole file
    assert convs[0] == rows[0]["conversations"]
    assert len(convs) == 2
    assert convs[1][1] == {"role": "assistant", "content": "<think>\n一加一等于二\n</think>\n\n2"}
    # an unknown role that is not tool use is still an error naming the line
    p.write_text(json.dumps({"conversations": [{"role": "robot", "content": "x"}]}), encoding="utf-8")
    with pytest.raises(ValueError, match="line 1.*robot"):
        read_jsonl_sft(p)


def test_pretraining_text_with_chatml_markers_gets_no_second_bos_or_eos(bpe):
    ds = PackedDataset(["<|im_start|>今天天气很好<|im_end|>", "人民日报报道"], bpe, block_size=8, drop_last=False)
    stream = ds.tokens.tolist()
    body_a, body_b = bpe.encode("今天天气很好"), bpe.encode("人民日报报道")
    assert stream == [1, *body_a, 2, 1, *body_b, 2]


# ---------------------------------------------------------------- labels the Hugging Face way
def test_labels_equal_to_input_ids_warn_and_shift_labels_matches_the_reference():
    model = _nano(64)
    x = torch.randint(3, 64, (2, 10), generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match="shift_labels=True"):
        model(x, labels=x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = model(x, labels=x, shift_labels=True)
        aligned = torch.cat([x[:, 1:], torch.full_like(x[:, :1], -100)], dim=1)
        model(x, labels=aligned)                          # the course's own convention: no warning
    reference = F.cross_entropy(out.logits[:, :-1].reshape(-1, 64).double(), x[:, 1:].reshape(-1))
    assert torch.allclose(out.loss.double(), reference, atol=1e-5)


# ---------------------------------------------------------------- sft --init
def test_sft_init_takes_training_defaults_from_the_checkpoint_size(tmp_path):
    save_checkpoint(_nano(300), tmp_path / "nano")
    assert _nearest_preset(str(tmp_path / "nano")) == "nano"
    # a checkpoint of MiniMind's size (config only: the preset choice reads nothing else)
    big = tmp_path / "big"
    save_checkpoint(_nano(300), big)
    cfg = json.loads((big / "config.json").read_text())
    cfg["course_lib"].update({k: v for k, v in ModelConfig.minimind_26m().to_dict().items() if k in ("dim", "n_layers")})
    (big / "config.json").write_text(json.dumps(cfg))
    assert _nearest_preset(str(big)) == "minimind_26m"


def test_sft_init_logs_the_checkpoint_presets_learning_rate(tmp_path, bpe, capsys):
    folder = save_checkpoint(_nano(bpe.vocab_size), tmp_path / "nano", tokenizer=bpe)
    sft = tmp_path / "sft.jsonl"
    sft.write_text("\n".join(json.dumps({"conversations": [{"role": "user", "content": f"你好{i}"},
                                                           {"role": "assistant", "content": "你好"}]},
                                        ensure_ascii=False) for i in range(8)), encoding="utf-8")
    code = main(["sft", "--init", str(folder), "--data", str(sft), "--seq-len", "32", "--batch-size", "2",
                 "--max-steps", "1", "--out", str(tmp_path / "sft"), "--no-progress", "--device", "cpu",
                 "--val-fraction", "0", "--log-every", "0"])
    out, err = capsys.readouterr()
    assert code == 0, err
    from course_lib.config import PRESET_RECIPES
    assert f"lr {PRESET_RECIPES['nano']['lr']:g}" in out + err


def test_a_run_trained_with_the_character_tokenizer_generates(tmp_path, capsys):
    from course_lib.train import TrainConfig, Trainer

    tok = CharTokenizer.from_texts(TEXTS)
    data = PackedDataset(TEXTS, tok, block_size=16)
    cfg = TrainConfig(batch_size=2, max_steps=2, device="cpu", progress=False, out_dir=str(tmp_path / "run"),
                      log_every=0)
    Trainer(_nano(tok.vocab_size), data, cfg, tokenizer=tok).fit()
    code = main(["generate", "--ckpt", str(tmp_path / "run"), "--prompt", "今天", "--max-new-tokens", "3",
                 "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("今天")
