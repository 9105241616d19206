"""Checkpoints: exact round trip, tied weights, strict mismatch errors, no pickle, atomic writes."""
import json
import os
import pickle

import pytest
import torch

from course_lib import checkpoint as ck
from course_lib.checkpoint import (atomic_write_dir, atomic_write_json, load_checkpoint, load_checkpoint_metadata,
                                   load_state_into, save_checkpoint)
from course_lib.config import ModelConfig
from course_lib.model import Transformer


def _ids():
    return torch.randint(0, 256, (2, 11), generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("overrides", [dict(), dict(tie_embeddings=False), dict(pos="learned", qk_norm=True),
                                       dict(moe_experts=2, moe_top_k=1)])
def test_round_trip_is_bitwise(tmp_path, overrides):
    model = Transformer(ModelConfig.nano(**overrides)).eval()
    path = save_checkpoint(model, tmp_path / "ck", step=12, loss=torch.tensor(1.5), note="hi")
    loaded = load_checkpoint(path)
    assert loaded.config == model.config
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(model(_ids()).logits, loaded(_ids()).logits)
    meta = load_checkpoint_metadata(path)
    assert meta["step"] == 12 and meta["loss"] == 1.5 and meta["note"] == "hi" and meta["format_version"] == 2
    assert sorted(os.listdir(path)) == ["config.json", "metadata.json", "model.safetensors"]


def test_tied_embeddings_are_stored_once_and_stay_tied(tmp_path):
    model = Transformer(ModelConfig.nano())
    save_checkpoint(model, tmp_path / "ck")
    tensors, aliases = ck.read_model_tensors(tmp_path / "ck")
    assert "lm_head.weight" not in tensors and aliases == {"lm_head.weight": "embed_tokens.weight"}
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.lm_head.weight is loaded.embed_tokens.weight
    with torch.no_grad():                                   # still one tensor: editing one edits both
        loaded.embed_tokens.weight[0, 0] = 123.0
    assert loaded.lm_head.weight[0, 0] == 123.0


def test_bf16_checkpoint_keeps_its_dtype(tmp_path):
    model = Transformer(ModelConfig.nano()).to(torch.bfloat16)
    save_checkpoint(model, tmp_path / "ck")
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.dtype == torch.bfloat16
    assert torch.equal(loaded.embed_tokens.weight, model.embed_tokens.weight)


def test_mismatch_lists_tensors_and_config_fields(tmp_path):
    save_checkpoint(Transformer(ModelConfig.nano()), tmp_path / "ck")
    other = Transformer(ModelConfig.nano(n_layers=3, ffn_dim=128))
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(ValueError) as err:
        load_state_into(other, tmp_path / "ck")
    msg = str(err.value)
    assert "different config" in msg and "missing in checkpoint: layers.2.attn.q_proj.weight (64, 64)" in msg
    assert "shape mismatch: layers.0.ffn.up_proj.weight checkpoint (176, 64) vs model (128, 64)" in msg
    assert "n_layers: model 3 vs checkpoint 2" in msg
    # nothing was half-loaded
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())
    untied = Transformer(ModelConfig.nano(tie_embeddings=False))
    with pytest.raises(ValueError, match="missing in checkpoint: lm_head.weight"):
        load_state_into(untied, tmp_path / "ck")


def test_load_state_into_resumes_into_existing_parameters(tmp_path):
    source = Transformer(ModelConfig.nano())
    save_checkpoint(source, tmp_path / "ck")
    target = Transformer(ModelConfig.nano())
    params = [id(p) for p in target.parameters()]
    load_state_into(target, tmp_path / "ck")
    assert [id(p) for p in target.parameters()] == params    # optimizer references stay valid
    assert torch.equal(target(_ids()).logits, source(_ids()).logits)


def test_checkpoint_that_does_not_fit_its_config(tmp_path):
    save_checkpoint(Transformer(ModelConfig.nano()), tmp_path / "ck")
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    cfg["course_lib"].update(dim=32, head_dim=8)          # our config inside the Hugging Face schema
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="(?s)does not fit its own config.json.*embed_tokens.weight"):
        load_checkpoint(tmp_path / "ck")


def test_loading_never_unpickles(tmp_path, monkeypatch):
    save_checkpoint(Transformer(ModelConfig.nano()), tmp_path / "ck")

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle/torch.load used while loading a checkpoint")

    for target, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(target, name, forbidden)
    load_checkpoint(tmp_path / "ck")
    load_checkpoint_metadata(tmp_path / "ck")
    load_state_into(Transformer(ModelConfig.nano()), tmp_path / "ck")


def test_missing_and_corrupt_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_checkpoint(tmp_path / "nowhere")
    save_checkpoint(Transformer(ModelConfig.nano()), tmp_path / "ck")
    weights = tmp_path / "ck" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])                # truncated
    with pytest.raises(ValueError, match="model.safetensors.*corrupt"):
        load_checkpoint(tmp_path / "ck")
    weights.write_bytes(b"\x00" * 64)                          # garbage
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(tmp_path / "ck")
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json.*not valid JSON"):
        load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "metadata.json").unlink()
    with pytest.raises(FileNotFoundError, match="metadata.json"):
        load_checkpoint_metadata(tmp_path / "ck")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        load_checkpoint(tmp_path / "file")


def test_bad_metadata_is_rejected_before_writing(tmp_path):
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(Transformer(ModelConfig.nano()), tmp_path / "ck", thing=object())
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(Transformer(ModelConfig.nano()), tmp_path / "ck", format_version=3)
    assert not (tmp_path / "ck").exists() and os.listdir(tmp_path) == []


def test_crash_while_writing_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    old = Transformer(ModelConfig.nano())
    save_checkpoint(old, tmp_path / "ck", step=1)
    new = Transformer(ModelConfig.nano())

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("simulated crash half-way through the weights")

    monkeypatch.setattr(ck, "write_model_files", lambda model, folder, *rest: (
        (folder / "model.safetensors").write_bytes(b"partial"), crash()))
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(new, tmp_path / "ck", step=2)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ck"]                      # no temp folder left behind
    assert load_checkpoint_metadata(tmp_path / "ck")["step"] == 1
    assert torch.equal(load_checkpoint(tmp_path / "ck").embed_tokens.weight, old.embed_tokens.weight)
    save_checkpoint(new, tmp_path / "ck", step=2)              # a successful overwrite replaces it
    assert load_checkpoint_metadata(tmp_path / "ck")["step"] == 2
    assert os.listdir(tmp_path) == ["ck"]


def test_crash_between_the_renames_leaves_the_old_folder_aside(tmp_path, monkeypatch):
    save_checkpoint(Transformer(ModelConfig.nano()), tmp_path / "ck", step=1)
    real_rename = os.rename
    calls = []

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:                                    # the process "dies" before renaming in
            raise SystemExit("power cut")
        return real_rename(src, dst)

    monkeypatch.setattr(ck.os, "rename", rename)
    with pytest.raises(SystemExit):
        save_checkpoint(Transformer(ModelConfig.nano()), tmp_path / "ck", step=2)
    monkeypatch.undo()
    aside = [p for p in os.listdir(tmp_path) if p.startswith(".ck.old-")]
    assert len(aside) == 1
    with pytest.raises(FileNotFoundError, match=r"previous checkpoint is intact in .*\.ck\.old-"):
        load_checkpoint(tmp_path / "ck")
    assert load_checkpoint_metadata(tmp_path / aside[0])["step"] == 1


def test_atomic_helpers(tmp_path):
    with atomic_write_dir(tmp_path / "step_5") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".step_5.tmp-")
        (tmp / "a.txt").write_text("1")
    assert (tmp_path / "step_5" / "a.txt").read_text() == "1"
    with pytest.raises(FileExistsError):
        with atomic_write_dir(tmp_path / "step_5", overwrite=False):
            pass
    with pytest.raises(RuntimeError):
        with atomic_write_dir(tmp_path / "step_5") as tmp:
            (tmp / "a.txt").write_text("2")
            raise RuntimeError("boom")
    assert (tmp_path / "step_5" / "a.txt").read_text() == "1"
    atomic_write_json(tmp_path / "state.json", {"step": 5, "path": tmp_path, "lr": torch.tensor(0.5)})
    assert json.loads((tmp_path / "state.json").read_text()) == {"step": 5, "path": str(tmp_path), "lr": 0.5}
    with pytest.raises(ValueError, match="state.json"):
        atomic_write_json(tmp_path / "state.json", {"x": object()})
    assert json.loads((tmp_path / "state.json").read_text())["step"] == 5
    assert sorted(os.listdir(tmp_path)) == ["state.json", "step_5"]
