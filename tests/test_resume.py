"""Exact resume from step_<N> checkpoints, Ctrl-C, and the checkpoint layout (no pickle)."""
import json
import os
import signal

import pytest
import torch

from course_lib.config import ModelConfig
from course_lib.model import Transformer
from course_lib.checkpoint import latest_checkpoint, list_checkpoints
from course_lib.train import TrainConfig, Trainer


def data(n=40, seed=2):
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        t = int(torch.randint(6, 30, (1,), generator=g))
        ids = torch.randint(3, 256, (t + 1,), generator=g)
        labels = ids[1:].clone()
        labels[:2] = -100
        items.append({"input_ids": ids[:-1], "labels": labels, "attention_mask": torch.ones(t, dtype=torch.long)})
    return items


def config(out, **kw):
    base = dict(batch_size=2, grad_accum_steps=2, max_steps=12, lr=3e-3, warmup_steps=2, save_every=6,
                out_dir=str(out), device="cpu", dtype="float32", progress=False, log_every=0, seed=5)
    base.update(kw)
    return TrainConfig(**base)


def fresh(dropout=0.1):
    torch.manual_seed(0)
    return Transformer(ModelConfig.nano(dropout=dropout))


def assert_bitwise_equal(a, b):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


def test_resume_is_bit_exact(tmp_path):
    """12 uninterrupted steps == 6 steps, then a new process-like Trainer resuming step_6 to 12
    (dropout on, so the RNG state must be restored too)."""
    ds = data()
    full = fresh()
    h_full = Trainer(full, ds, config(tmp_path / "a")).fit()
    assert [p.name for p in list_checkpoints(tmp_path / "a")] == ["step_6", "step_12"]

    # a different random state before resuming proves nothing leaks from the current process
    torch.manual_seed(1234)
    resumed = Transformer(ModelConfig.nano(dropout=0.1))
    trainer = Trainer(resumed, ds, config(tmp_path / "b"))
    h = trainer.fit(resume=tmp_path / "a" / "step_6")
    assert trainer.step == 12
    assert_bitwise_equal(full, resumed)
    assert h.loss == h_full.loss and h.step == list(range(1, 13))


def test_resume_latest_and_run_folder(tmp_path):
    ds = data()
    Trainer(fresh(), ds, config(tmp_path, max_steps=6, save_every=3)).fit()
    assert latest_checkpoint(tmp_path).name == "step_6"
    t = Trainer(fresh(), ds, config(tmp_path, max_steps=8, save_every=3))
    t.fit(resume="latest")
    assert t.step == 8 and latest_checkpoint(tmp_path).name == "step_8"


def test_checkpoint_layout_has_no_pickle(tmp_path):
    ds = data()
    Trainer(fresh(), ds, config(tmp_path, max_steps=2, save_every=2)).fit()
    folder = tmp_path / "step_2"
    assert sorted(os.listdir(folder)) == ["config.json", "metadata.json", "model.safetensors",
                                          "train_state.json", "train_state.safetensors"]
    state = json.loads((folder / "train_state.json").read_text())
    assert state["step"] == 2 and state["samples_consumed"] == 8
    assert state["train_config"]["grad_accum_steps"] == 2 and len(state["history"]["loss"]) == 2
    from safetensors import safe_open
    with safe_open(str(folder / "train_state.safetensors"), "pt") as f:
        keys = list(f.keys())
        assert any(k.startswith("optim.") and k.endswith("exp_avg") for k in keys)
        assert f.get_tensor("rng.cpu.rank0").dtype == torch.uint8
    for p in folder.iterdir():         # no pickle protocol header anywhere
        assert not p.read_bytes().startswith(b"\x80")


def test_resume_from_another_config_is_a_clear_error(tmp_path):
    ds = data()
    Trainer(fresh(), ds, config(tmp_path, max_steps=2, save_every=2)).fit()
    other = Transformer(ModelConfig.nano(dim=32, n_heads=2, n_kv_heads=1))
    with pytest.raises(ValueError, match="another model config.*dim"):
        Trainer(other, ds, config(tmp_path)).fit(resume=tmp_path / "step_2")
    with pytest.raises(FileNotFoundError, match="no step_<N>"):
        Trainer(fresh(), ds, config(tmp_path / "empty")).fit(resume="latest")
    with pytest.raises(FileNotFoundError):
        Trainer(fresh(), ds, config(tmp_path)).fit(resume=tmp_path / "step_99")


def test_keyboard_interrupt_saves_a_resumable_checkpoint(tmp_path):
    """A KeyboardInterrupt raised mid-window (here from the collate function at step 4) saves step_3,
    returns the history, and resuming reaches the same weights as an uninterrupted run."""
    ds = data()
    from course_lib.data import collate
    calls = {"n": 0}

    def interrupting_collate(items):
        calls["n"] += 1
        if calls["n"] == 7:         # the 4th step's 1st micro-batch (2 per step)
            raise KeyboardInterrupt
        return collate(items)

    model = fresh()
    t = Trainer(model, ds, config(tmp_path / "run", max_steps=8, save_every=0), collate_fn=interrupting_collate)
    h = t.fit()
    assert h.interrupted and t.step == 3 and latest_checkpoint(tmp_path / "run").name == "step_3"
    assert all(p.grad is None for p in model.parameters())          # the half window was dropped
    with torch.no_grad():                                            # the model is still usable
        model(torch.tensor([[5, 6, 7]]))
    t2 = Trainer(fresh(), ds, config(tmp_path / "run", max_steps=8, save_every=0))
    t2.fit(resume="latest")
    ref = fresh()
    Trainer(ref, ds, config(tmp_path / "ref", max_steps=8, save_every=0)).fit()
    assert_bitwise_equal(ref, t2.model)


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
def test_sigint_stops_after_the_current_step(tmp_path):
    """Ctrl-C (SIGINT) during step 2 lets step 2 finish, then saves step_2 and returns."""
    ds = data()
    from course_lib.data import collate
    calls = {"n": 0}

    def signalling_collate(items):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return collate(items)

    t = Trainer(fresh(), ds, config(tmp_path, max_steps=8, save_every=0), collate_fn=signalling_collate)
    h = t.fit()
    assert h.interrupted and t.step == 2 and h.step == [1, 2]
    assert latest_checkpoint(tmp_path).name == "step_2"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_keep_last_checkpoints(tmp_path):
    Trainer(fresh(0.0), data(), config(tmp_path, max_steps=4, save_every=1, keep_last_checkpoints=2)).fit()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_3", "step_4"]
