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
from course_lib.progress import GracefulInterrupt
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
    base = dict(batch_size=2, max_steps=4, lr=3e-3, save_every=2, out_dir=out and str(out), device="cpu",
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
def test_ctrl_c_during_the_final_evaluation_still_saves(tmp_path, count, monkeypatch):
    monkeypatch.setattr(GracefulInterrupt, "SAME_SIGNAL_S", 0.0)     # the second signal is a second request
    t = Trainer(fresh(), data(), config(tmp_path, max_steps=3, save_every=0), eval_data=SignallingEval(data(6, 9), count))
    h = t.fit()
    assert t.step == 3 and latest_checkpoint(tmp_path).name == "step_3"
    assert h.interrupted and h.signal == "SIGINT"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ---------------------------------------------------------------- a second Ctrl-C inside an update
@POSIX
def test_second_ctrl_c_during_the_update_finishes_it_first(tmp_path, monkeypatch):
    monkeypatch.setattr(GracefulInterrupt, "SAME_SIGNAL_S", 0.0)
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


@POSIX
@pytest.mark.parametrize("window, saved", [(0.0, None), (60.0, "step_1")])
def test_a_signal_delivered_twice_at_once_is_one_request(tmp_path, monkeypatch, window, saved):
    # Under torchrun a terminal's Ctrl-C reaches each worker twice (directly, and forwarded by
    # torchrun). Both land while step 1 reads its batch: as one request, step 1 finishes and is
    # saved; as two (window 0), the second stops the run at once, before any step is complete.
    monkeypatch.setattr(GracefulInterrupt, "SAME_SIGNAL_S", window)
    t = Trainer(fresh(), SignallingEval(data(), count=2), config(tmp_path, max_steps=4, save_every=0))
    h = t.fit()
    assert h.interrupted
    assert (latest_checkpoint(tmp_path).name if latest_checkpoint(tmp_path) else None) == saved


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


# ================================================================ silently wrong -> a clear error
def test_non_finite_weights_are_refused_on_load(tmp_path):
    from course_lib.checkpoint import load_checkpoint, load_state_into

    model = fresh()
    with torch.no_grad():
        model.norm.weight[0] = float("nan")
    save_checkpoint(model, tmp_path / "ckpt")
    with pytest.raises(ValueError, match=r"non-finite.*norm\.weight"):
        load_checkpoint(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="non-finite"):
        load_state_into(fresh(), tmp_path / "ckpt")


@pytest.mark.parametrize("edit, field", [(lambda c: c.pop("causal"), "causal"),
                                         (lambda c: c.update(causal="false"), "causal"),
                                         (lambda c: c.update(rope_theta=float("inf")), "rope_theta"),
                                         (lambda c: c.update(dim=64.0), "dim"),
                                         (lambda c: c.update(n_layers=True), "n_layers")])
def test_a_stored_config_needs_every_field_with_its_type(tmp_path, edit, field):
    import json
    from course_lib.checkpoint import load_checkpoint

    save_checkpoint(fresh(), tmp_path / "ckpt")
    cfg = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    edit(cfg["course_lib"])                 # our ModelConfig inside the Hugging Face schema (format 2)
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=rf"config\.json.*\b{field}\b"):
        load_checkpoint(tmp_path / "ckpt")


def test_integer_weights_are_refused_not_cast(tmp_path):
    from safetensors.torch import save_file
    from course_lib.checkpoint import load_checkpoint

    save_checkpoint(fresh(), tmp_path / "ckpt")
    tensors, aliases = read_model_tensors(tmp_path / "ckpt")
    tensors["norm.weight"] = tensors["norm.weight"].to(torch.int8)
    import json
    save_file(tensors, str(tmp_path / "ckpt" / "model.safetensors"),
              metadata={"format": "pt", "course_lib.tied": json.dumps(aliases)})
    with pytest.raises(ValueError, match=r"dtype mismatch: norm\.weight .*int8"):
        load_checkpoint(tmp_path / "ckpt")


def test_sampling_distribution_refuses_non_finite_logits():
    from course_lib.sample import sampling_distribution

    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="NaN"):
            sampling_distribution(torch.tensor([[0.0, bad, 1.0]]))
    with pytest.raises(ValueError, match="all -inf"):
        sampling_distribution(torch.full((1, 3), float("-inf")))
    p = sampling_distribution(torch.tensor([[0.0, float("-inf"), 0.0]]))   # -inf = a forbidden token
    assert torch.allclose(p, torch.tensor([[0.5, 0.0, 0.5]]))


def test_zero_target_windows_and_eval_sets_are_errors(tmp_path):
    no_targets = [dict(item, labels=torch.full_like(item["labels"], -100)) for item in data(8)]
    model = fresh()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="no sample of this window has a target"):
        Trainer(model, no_targets, config(None, save_every=0)).fit()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))   # no decay step either
    t = Trainer(fresh(), data(), config(None, save_every=0), eval_data=no_targets)
    with pytest.raises(ValueError, match="eval_data has no target tokens"):
        t.evaluate()


def test_divergence_names_only_a_good_checkpoint(tmp_path):
    from course_lib.checkpoint import load_checkpoint
    from course_lib.data import collate
    from course_lib.train import TrainingDiverged

    t = Trainer(fresh(), data(), config(tmp_path, lr=1e9, max_steps=20, save_every=1, grad_clip=None, warmup_steps=0))
    with pytest.raises(TrainingDiverged) as info:
        t.fit()
    first = t.history.loss[0]
    named = info.value.last_checkpoint
    if named is None:
        assert "no checkpoint of this run is good" in str(info.value)
    else:                                    # judged independently: its weights give a sane loss
        batch = collate(data()[:8])
        loss = float(load_checkpoint(named)(batch["input_ids"], labels=batch["labels"]).loss)
        assert loss == loss and loss < 2 * first, (named, loss)


def test_cli_data_extension_case_conflicts_and_grad_clip(tmp_path, capsys):
    import json
    jsonl = tmp_path / "x.JSONL"
    jsonl.write_text("\n".join(json.dumps({"text": line}) for line in TEXT.split("\n\n")), encoding="utf-8")
    code = main([str(a) for a in cli_pretrain(jsonl, tmp_path / "run", "--max-steps", 1)[3:]])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    import re
    n_train, n_val = map(int, re.search(r"(\d+) train / (\d+) val documents", captured.out).groups())
    assert n_train + n_val == len(TEXT.split("\n\n"))          # one document per JSON line, not raw text
    code = main([str(a) for a in cli_pretrain(jsonl, tmp_path / "b", "--corpus", "peoples_daily")[3:]])
    assert code == 2 and "not both" in capsys.readouterr().err
    code = main([str(a) for a in cli_pretrain(jsonl, tmp_path / "c", "--grad-clip", "-1")[3:]])
    assert code == 2 and "--grad-clip -1" in capsys.readouterr().err


def test_resume_uses_the_checkpoints_tokenizer(tmp_path, text_file, capsys):
    run = tmp_path / "run"
    assert main([str(a) for a in cli_pretrain(text_file, run, "--max-steps", 2)[3:]]) == 0
    other = tmp_path / "other.txt"
    other.write_text("abcdefghij klmnopqrst uvwxyz 0123456789\n\n" * 40, encoding="utf-8")
    tok = tmp_path / "tok"
    assert main(["tokenizer", "--data", str(other), "--vocab-size", "300", "--out", str(tok)]) == 0
    capsys.readouterr()
    code = main([str(a) for a in cli_pretrain(other, run, "--max-steps", 3, "--tokenizer", tok, "--resume")[3:]])
    assert code == 2 and "not the tokenizer of the checkpoint" in capsys.readouterr().err
    code = main([str(a) for a in cli_pretrain(other, run, "--max-steps", 3, "--resume")[3:]])
    out = capsys.readouterr().out
    assert code == 0 and "tokenizer: the resumed checkpoint's" in out
    assert (run / "step_3" / "tokenizer.json").read_bytes() == (run / "step_2" / "tokenizer.json").read_bytes()


def test_position_ids_past_the_context_are_refused():
    model = fresh().eval()
    limit = model.config.context_length
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(ValueError, match=r"position_ids must lie in \[0, .*allow_longer"):
        model(ids, position_ids=torch.tensor([[0, 1, 10 * limit]]))
    with pytest.raises(ValueError, match="position_ids must lie"):
        model(ids, position_ids=torch.tensor([[-1, 0, 1]]))
    out = model(ids, position_ids=torch.tensor([[0, 1, 10 * limit]]), allow_longer=True)   # extrapolation asked for
    assert torch.isfinite(out.logits).all()


def test_a_tiny_temperature_or_penalty_samples_the_top_token():
    from course_lib.sample import generate, process_logits, sampling_distribution

    logits = torch.tensor([[1.0, 3.0, 2.0, -1.0]])
    for kw in ({"temperature": 1e-40}, {"temperature": 1e-300}, {"repetition_penalty": 1e-39}):
        seen = torch.ones_like(logits, dtype=torch.bool) if "repetition_penalty" in kw else None
        p = torch.softmax(process_logits(logits, seen=seen, **kw), -1)
        assert torch.equal(p, torch.tensor([[0.0, 1.0, 0.0, 0.0]])), kw
    assert torch.equal(sampling_distribution(-logits - 100, temperature=1e-40), torch.tensor([[0.0, 0.0, 0.0, 1.0]]))
    g = torch.Generator().manual_seed(0)
    out = generate(fresh().eval(), torch.tensor([[5, 6]]), max_new_tokens=3, temperature=1e-40, generator=g,
                   repetition_penalty=1e-38)
    assert out.shape == (1, 5)


# ================================================================ obscure failures -> a message naming the input
def test_bad_inputs_get_a_message_naming_them(tmp_path):
    from course_lib.device import pick_device

    with pytest.raises(ValueError, match="rope_theta='1e4' must be a finite number"):
        ModelConfig.nano(rope_theta="1e4")
    with pytest.raises(ValueError, match="device='gpu' is not a device name"):
        pick_device("gpu")
    with pytest.raises(ValueError, match=r"seed=.* must be an integer in \[0, 2\*\*32\)"):
        TrainConfig(seed=2**64)
    t = Trainer(fresh(), data(), config(tmp_path, max_steps=2))
    t.fit()
    t.step = 0                                               # a fresh model resuming it
    tensors = tmp_path / "step_2" / "train_state.safetensors"
    tensors.unlink()
    os.mkfifo(tensors)                                       # reading a pipe would block for ever
    with pytest.raises(ValueError, match="not a regular file"):
        Trainer(fresh(), data(), config(tmp_path / "b", max_steps=4)).fit(resume=tmp_path / "step_2")


def test_tokenizer_mismatches_and_corrupt_files_are_named(tmp_path, text_file, capsys):
    from course_lib.tokenizer import load_tokenizer

    run = tmp_path / "run"
    assert main([str(a) for a in cli_pretrain(text_file, run, "--max-steps", 1, "--vocab-size", 320)[3:]]) == 0
    small = tmp_path / "small"
    assert main(["tokenizer", "--data", str(text_file), "--vocab-size", "300", "--out", str(small)]) == 0
    capsys.readouterr()
    assert main(["generate", "--ckpt", str(run), "--tokenizer", str(small), "--max-new-tokens", "2"]) == 2
    assert "300 tokens but the model 320" in capsys.readouterr().err
    (small / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer_config.json: not valid JSON"):
        load_tokenizer(small)


def test_nano_preset_runs_without_vocab_size(tmp_path, text_file, capsys):
    argv = ["pretrain", "--preset", "nano", "--data", str(text_file), "--seq-len", "32", "--batch-size", "2",
            "--max-steps", "1", "--out", str(tmp_path / "run"), "--no-progress", "--device", "cpu",
            "--tokenizer-chars", "2000"]
    assert main(argv) == 0, capsys.readouterr().err


def test_killed_saves_leave_no_temp_folders_behind(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(done.stdout)                              # that process has exited
    dead = tmp_path / f".ckpt.tmp-{dead_pid}-abcd1234"
    alive = tmp_path / f".ckpt.tmp-{os.getpid()}-live0000"   # a save still running in this process
    for d in (dead, alive):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"half")
    save_checkpoint(fresh(), tmp_path / "ckpt")
    assert not dead.exists() and alive.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_load_checkpoint_on_a_missing_device_names_it(tmp_path):
    from course_lib.checkpoint import load_checkpoint

    save_checkpoint(fresh(), tmp_path / "ckpt")
    with pytest.raises(ValueError, match="CUDA is not available"):
        load_checkpoint(tmp_path / "ckpt", device="cuda")


def test_a_save_racing_another_process_gives_a_clear_error_and_no_leftovers(tmp_path, monkeypatch):
    import shutil
    from course_lib.checkpoint import load_checkpoint

    save_checkpoint(fresh(), tmp_path / "ckpt")
    shutil.copytree(tmp_path / "ckpt", tmp_path / "theirs")
    real_rename, calls = os.rename, []

    def racing(src, dst):
        real_rename(src, dst)
        calls.append(dst)
        if len(calls) == 1:           # right after this save moved the old folder aside, another lands
            real_rename(tmp_path / "theirs", tmp_path / "ckpt")

    monkeypatch.setattr(os, "rename", racing)
    with pytest.raises(FileExistsError, match="another process at the same time"):
        save_checkpoint(fresh(), tmp_path / "ckpt")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]      # no .tmp-/.old- folders left
    load_checkpoint(tmp_path / "ckpt")


def test_requests_larger_than_memory_are_refused_before_allocating():
    from course_lib.device import memory_bytes
    from course_lib.sample import generate

    ram = memory_bytes("cpu")
    if ram is None:
        pytest.skip("this platform does not report its memory")
    with pytest.raises(ValueError, match=r"vocab_size=.* more than this machine's memory"):
        Transformer(ModelConfig.nano(vocab_size=ram // 64))
    with pytest.raises(ValueError, match=r"max_new_tokens=.* needs a KV cache of"):
        generate(fresh().eval(), torch.tensor([[5, 6]]), max_new_tokens=ram // 256)


def test_an_sft_row_without_an_assistant_turn_names_file_and_line(tmp_path, capsys):
    import json
    rows = [{"conversations": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}]}] * 3
    rows.insert(2, {"conversations": [{"role": "user", "content": "只有问题"}]})
    sft = tmp_path / "sft.jsonl"
    sft.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    code = main(["sft", "--data", str(sft), "--tokenizer", str(tmp_path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "sft.jsonl" in err and "line 3" in err and "no assistant message" in err


def test_sft_truncation_that_leaves_no_target_is_an_error_or_a_counted_warning():
    from course_lib.data import SFTDataset
    from course_lib.tokenizer import ByteTokenizer

    tok = ByteTokenizer()
    short = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]
    long = [{"role": "user", "content": "x" * 80}, {"role": "assistant", "content": "yes"}]
    with pytest.raises(ValueError, match="truncates every conversation before its answer"):
        SFTDataset([long, long], tok, max_len=40, overflow="truncate")
    with pytest.warns(UserWarning, match="1 of 2 conversations keep no target token"):
        ds = SFTDataset([short, long], tok, max_len=40, overflow="truncate")
    assert len(ds) == 2
