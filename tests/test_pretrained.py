"""The shipped pretrained checkpoint: present, small, loads, and has learned the corpus."""
import math

import pytest
import torch

import course_lib
from course_lib import checkpoint as pretrained
from course_lib.checkpoint import DEFAULT_PRETRAINED, load_pretrained, pretrained_metadata, pretrained_path


def test_shipped_checkpoint_is_small_and_complete():
    folder = pretrained_path()
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size <= 20 * 1024 * 1024
    meta = pretrained_metadata()
    for key in ("command", "steps", "corpus", "final_train_loss", "final_val_loss", "seed", "tokens_seen"):
        assert key in meta, key
    assert meta["corpus"] == "peoples_daily" and meta["steps"] > 0
    assert DEFAULT_PRETRAINED in pretrained.available_pretrained()


def test_load_pretrained_gives_a_trained_model_and_its_tokenizer():
    model, tok = course_lib.load_pretrained()
    assert model.config.vocab_size == tok.vocab_size == 6400
    assert not model.training
    text = "人民日报北京一月一日电，新年伊始，全国各地群众以各种方式庆祝新年。"
    ids = torch.tensor([tok.encode(text, add_special_tokens=True)])
    with torch.no_grad():
        loss = model(ids[:, :-1], labels=ids[:, 1:]).loss.item()
    # far below the uniform guess ln(6400) = 8.76: the model has learned the corpus
    assert loss < 0.75 * math.log(6400)
    assert loss == pytest.approx(pretrained_metadata()["final_val_loss"], abs=2.0)


def test_pretrained_model_continues_chinese_text():
    from course_lib.sample import generate

    model, tok = load_pretrained()
    prompt = tok.encode("今天", add_special_tokens=True)
    out = generate(model, [prompt], max_new_tokens=20, temperature=0)
    text = tok.decode(out[0, len(prompt):].tolist(), skip_special_tokens=True)
    assert sum("\u4e00" <= ch <= "\u9fff" for ch in text) >= 5


def test_missing_asset_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="make pretrained"):
        load_pretrained()
    with pytest.raises(ValueError, match="name"):
        pretrained_path("../etc")
