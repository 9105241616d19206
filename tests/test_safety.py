"""Nothing lost, nothing silently wrong: saves never delete what is not theirs, signals save a
resumable checkpoint, a resume never overwrites newer checkpoints, bad output folders fail before
training. Signal cases use real signals (os.kill, or a child process sent SIGTERM)."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_lib.checkpoint import latest_checkpoint, list_checkpoints, read_model_tensors, save_checkpoint
from course_lib.cli import main
from course_lib.config import ModelConfig
from course_lib.export import export_hf_llama
from course_lib.model import Transformer
from course_lib.train import TrainConfig, Trainer

POSIX = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
ROOT = Path(__file__).resolve().parents[1]
TEXT = "\n\n".join(["今天天气很好，我们一起去公园散步。", "人民日报报道，今年粮食产量再创新高。",
                    "他说，科学技术是第一生产力。", "春节期间，各地举办了丰富多彩的文化活动。"] * 12)


def data(n=24, seed=2):
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        ids = torch.randint(3, 256, (17,), generator=g)
        items.append({"input_ids": ids[:-1], "labels": ids[1:].clone(), "attention_mask": torch.ones(16, dtype=torch.long)})
    return items


def config(out, **kw):
    base = dict(batch_size=2, max_steps=4, lr=3e-3, save_every=2, out_dir=str(out), device="cpu",
                dtype="float32", progress=False, log_every=0, seed=5)
    base.update(kw)
    return TrainConfig(**base)


def fresh():
    torch.manual_seed(0)
    return Transformer(ModelConfig.nano(dropout=0.0))


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def cli_env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "COURSE_THREADS": "1", "PYTHONPATH": str(ROOT)}


def cli_pretrain(text_file, out, *extra):
    return [sys.executable, "-m", "course_lib", "pretrain", "--preset", "nano", "--data", str(text_file),
            "--vocab-size", "300", "--seq-len", "32", "--batch-size", "4", "--out", str(out), "--no-progress",
            "--device", "cpu", "--threads", "1", *map(str, extra)]


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "tiny.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


# ---------------------------------------------------------------- 1. tokenizer --out on a run folder
def test_tokenizer_command_keeps_everything_else_in_out(tmp_path, text_file, capsys):
    run = tmp_path / "run"
    Trainer(fresh(), data(), config(run, max_steps=2)).fit()
    (run / "notes.txt").write_text("mine")
    before = snapshot(run)
    assert main(["tokenizer", "--data", str(text_file), "--vocab-size", "300", "--out", str(run)]) == 0
    after = snapshot(run)
    assert (run / "tokenizer.json").is_file()
    assert all(after.get(k) == v for k, v in before.items())       # step_2 and notes.txt untouched


# ---------------------------------------------------------------- 2. save/export never wipe a foreign folder
@pytest.mark.parametrize("save", [lambda m, p: save_checkpoint(m, p), lambda m, p: export_hf_llama(m, p)],
                         ids=["save_checkpoint", "export_hf_llama"])
def test_saves_refuse_to_replace_a_folder_that_is_not_ours(tmp_path, save):
    model = fresh()
    project = tmp_path / "project"
    project.mkdir()
    (project / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match=r"thesis\.tex.*overwrite=True"):
        save(model, project)
    assert (project / "thesis.tex").read_text() == "years of work" and len(os.listdir(project)) == 1
    run = tmp_path / "run"
    Trainer(fresh(), data(), config(run, max_steps=2)).fit()
    with pytest.raises(FileExistsError, match="step_2/"):
        save(model, run)
    assert [p.name for p in list_checkpoints(run)] == ["step_2"]
    save(model, tmp_path / "ours")             # a folder of ours is replaced as before
    save(model, tmp_path / "ours")


# ---------------------------------------------------------------- 3 + 5. resume from an older step
def test_resume_from_an_older_step_refuses_to_overwrite_newer_checkpoints(tmp_path):
    Trainer(fresh(), data(), config(tmp_path, max_steps=6)).fit()
    before = snapshot(tmp_path)
    t = Trainer(fresh(), data(), config(tmp_path, max_steps=6, lr=1e-3, keep_last_checkpoints=1))
    with pytest.raises(FileExistsError, match=r"step_4, step_6.*another out_dir"):
        t.fit(resume=tmp_path / "step_2")
    assert snapshot(tmp_path) == before and t.step == 2          # nothing trained, nothing written
    t = Trainer(fresh(), data(), config(tmp_path / "other", max_steps=6, lr=1e-3, keep_last_checkpoints=1))
    t.fit(resume=tmp_path / "step_2")                                # another folder: fine
    assert [p.name for p in list_checkpoints(tmp_path / "other")] == ["step_6"]


def test_cli_resume_from_an_older_step_is_refused_before_training(tmp_path, text_file, capsys):
    run = tmp_path / "run"
    argv = [str(a) for a in cli_pretrain(text_file, run, "--max-steps", 4, "--save-every", 2)[3:]]
    assert main(argv) == 0
    before = snapshot(run)
    code = main(argv + ["--resume", str(run / "step_2"), "--lr", "1e-4"])
    err = capsys.readouterr().err
    assert code == 2 and "step_4" in err and "--out" in err
    assert snapshot(run) == before


def test_pruning_never_deletes_the_checkpoint_just_written(tmp_path):
    Trainer(fresh(), data(), config(tmp_path, max_steps=4)).fit()
    t = Trainer(fresh(), data(), config(tmp_path, keep_last_checkpoints=1))
    t.step = 2
    path = t.save_checkpoint()
    assert path.is_dir() and (path / "model.safetensors").is_file()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_2", "step_4"]   # nothing beyond it pruned


# ---------------------------------------------------------------- 4. Ctrl-C during the final evaluation
class SignallingEval(list):
    """An eval set that sends this process ``count`` SIGINTs when its first item is read."""

    def __init__(self, items, count=1):
        super().__init__(items)
        self.count = count

    def __getitem__(self, i):
        while self.count:
            self.count -= 1
            os.kill(os.getpid(), signal.SIGINT)
        return super().__getitem__(i)


@POSIX
@pytest.mark.parametrize("count", [1, 2])
def test_ctrl_c_during_the_final_evaluation_still_saves(tmp_path, count):
    t = Trainer(fresh(), data(), config(tmp_path, max_steps=3, save_every=0), eval_data=SignallingEval(data(6, 9), count))
    h = t.fit()
    assert t.step == 3 and latest_checkpoint(tmp_path).name == "step_3"
    assert h.interrupted and h.signal == "SIGINT"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ---------------------------------------------------------------- a second Ctrl-C inside an update
@POSIX
def test_second_ctrl_c_during_the_update_finishes_it_first(tmp_path):
    t = Trainer(fresh(), data(), config(tmp_path, max_steps=6, save_every=0))
    real_step, calls = t.optimizer.step, {"n": 0}

    def step_then_two_signals(*a, **k):
        out = real_step(*a, **k)
        calls["n"] += 1
        if calls["n"] == 2:                 # both land after the weights changed, before the count
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return out

    t.optimizer.step = step_then_two_signals
    h = t.fit()
    assert h.interrupted and t.step == 2 and latest_checkpoint(tmp_path).name == "step_2"
    ref = fresh()
    ref_t = Trainer(ref, data(), config(tmp_path / "ref", max_steps=2, save_every=0))
    ref_t.lr_of = t.lr_of                    # the same schedule (over 6 steps) as the interrupted run
    ref_t.fit()
    saved, _ = read_model_tensors(tmp_path / "step_2")
    for name, p in ref.state_dict().items():
        if name in saved:
            assert torch.equal(saved[name], p), name   # step_2 holds exactly two updates


# ---------------------------------------------------------------- 6. SIGTERM, a closed stdout, a bad --out
@POSIX
def test_sigterm_saves_a_resumable_checkpoint(tmp_path, text_file):
    run = tmp_path / "run"
    proc = subprocess.Popen(cli_pretrain(text_file, run, "--max-steps", 100000, "--save-every", 0, "--log-every", 1),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=tmp_path)
    for line in proc.stdout:
        if line.startswith("step"):
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    newest = latest_checkpoint(run)
    assert newest is not None and "terminated after step" in out
    state = (newest / "train_state.json").read_text()
    assert f'"step": {newest.name.split("_")[1]}' in state


@POSIX
def test_closed_stdout_does_not_kill_the_run(tmp_path, text_file):
    run = tmp_path / "run"
    proc = subprocess.Popen(cli_pretrain(text_file, run, "--max-steps", 6, "--save-every", 0, "--log-every", 1),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(), cwd=tmp_path)
    proc.stdout.readline()
    proc.stdout.close()                      # like `| head -n 1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert latest_checkpoint(run).name == "step_6" and "BrokenPipe" not in err


def test_a_file_as_out_dir_fails_before_training(tmp_path, text_file, capsys):
    out = tmp_path / "out.txt"
    out.write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="is a file"):
        Trainer(fresh(), data(), config(out)).fit()
    tok = tmp_path / "tok"
    assert main(["tokenizer", "--data", str(text_file), "--vocab-size", "300", "--out", str(tok)]) == 0
    capsys.readouterr()
    code = main([str(a) for a in cli_pretrain(text_file, out, "--max-steps", 2, "--tokenizer", tok)[3:]])
    captured = capsys.readouterr()
    assert code == 2 and "is a file" in captured.err and "step" not in captured.out
    assert out.read_text() == "not a folder"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_out_dir_fails_before_training(tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        t = Trainer(fresh(), data(), config(out))
        with pytest.raises(PermissionError, match="not writable"):
            t.fit()
        assert t.step == 0
    finally:
        out.chmod(0o700)
