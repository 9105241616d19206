"""``python -m course_lib export`` as a subprocess: the folder it writes loads in transformers with our
logits (Llama, and Qwen3 for qk_norm), a model Llama cannot compute is refused in one line, and an
--out folder that is not an earlier export is never touched."""
import subprocess
import sys

import pytest
import torch

from course_lib.checkpoint import save_checkpoint
from course_lib.config import ModelConfig
from course_lib.model import Transformer
from course_lib.tokenizer import train_tokenizer

transformers = pytest.importorskip("transformers")

TEXTS = ["今天天气很好，我们一起去公园散步。", "人民日报报道，今年粮食产量再创新高。", "hello world, hello there"] * 20


@pytest.fixture(scope="module")
def bpe():
    return train_tokenizer(TEXTS, vocab_size=300)


def _checkpoint(path, tokenizer, **overrides):
    torch.manual_seed(0)
    model = Transformer(ModelConfig.nano(vocab_size=tokenizer.vocab_size, **overrides)).eval()
    with torch.no_grad():                       # non-trivial norm gains: a swapped or skipped norm would show
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    save_checkpoint(model, path, tokenizer=tokenizer)
    return model


def export(*args):
    proc = subprocess.run([sys.executable, "-m", "course_lib", "export", *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def _snapshot(folder):
    return {p.relative_to(folder): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("fmt,overrides", [("llama", dict(tie_embeddings=False)), ("qwen3", dict(qk_norm=True))])
def test_export_loads_in_transformers_with_our_logits(tmp_path, bpe, fmt, overrides):
    model = _checkpoint(tmp_path / "ckpt", bpe, **overrides)
    code, out, err = export("--ckpt", tmp_path / "ckpt", "--out", tmp_path / "hf", "--format", fmt)
    assert code == 0, err
    assert str(tmp_path / "hf") in out and "AutoModelForCausalLM.from_pretrained" in out
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert hf.config.model_type == fmt
    ids = torch.randint(0, bpe.vocab_size, (2, 29), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, model(ids).logits, atol=1e-5, rtol=0)
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert tok("今天天气")["input_ids"] == bpe.encode("今天天气", add_special_tokens=True)


def test_a_model_llama_cannot_compute_is_refused_in_one_line(tmp_path, bpe):
    _checkpoint(tmp_path / "ckpt", bpe, pos="alibi")
    code, out, err = export("--ckpt", tmp_path / "ckpt", "--out", tmp_path / "hf")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    assert "pos='alibi'" in lines[0]
    assert not (tmp_path / "hf").exists()


def test_a_foreign_out_folder_is_left_as_it_was(tmp_path, bpe):
    _checkpoint(tmp_path / "ckpt", bpe)
    out = tmp_path / "project"
    (out / "src").mkdir(parents=True)
    (out / "notes.txt").write_text("my notes", encoding="utf-8")
    (out / "config.json").write_text('{"mine": true}', encoding="utf-8")
    (out / "src" / "a.py").write_text("print(1)", encoding="utf-8")
    before = _snapshot(out)
    for extra in ([], ["--overwrite"]):
        code, _, err = export("--ckpt", tmp_path / "ckpt", "--out", out, *extra)
        assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err
        assert _snapshot(out) == before
    # an earlier export is replaced only with --overwrite
    assert export("--ckpt", tmp_path / "ckpt", "--out", tmp_path / "hf")[0] == 0
    code, _, err = export("--ckpt", tmp_path / "ckpt", "--out", tmp_path / "hf")
    assert code == 2 and "--overwrite" in err
    assert export("--ckpt", tmp_path / "ckpt", "--out", tmp_path / "hf", "--overwrite")[0] == 0
