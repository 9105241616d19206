"""Data parallelism: 2 gloo processes x batch 2 reach the weights of 1 process x batch 4."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from course_lib.config import ModelConfig
from course_lib.model import Transformer
from course_lib.train import TrainConfig, Trainer


WORKER = textwrap.dedent('''
    import sys, torch
    from safetensors.torch import save_file
    sys.path.insert(0, {tests!r})
    from test_ddp import make_data, make_model, make_config
    from course_lib import distributed as D

    D.setup("cpu")
    model = make_model()
    trainer = __import__("course_lib.train", fromlist=["Trainer"]).Trainer(
        model, make_data(), make_config(batch_size=2, out_dir={out!r}))
    history = trainer.fit()
    if D.info().is_main:
        save_file({{k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}},
                  {weights!r})
        with open({losses!r}, "w") as f:
            f.write(repr(history.loss))
    D.cleanup()
''')


def make_data(n=32, seed=3):
    """Variable-length sequences with masked prefixes: the global token count matters."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        t = int(torch.randint(4, 32, (1,), generator=g))
        ids = torch.randint(3, 256, (t + 1,), generator=g)
        labels = ids[1:].clone()
        labels[: t // 2] = -100
        items.append({"input_ids": ids[:-1], "labels": labels, "attention_mask": torch.ones(t, dtype=torch.long)})
    return items


def make_model():
    torch.manual_seed(0)
    return Transformer(ModelConfig.nano())


def make_config(batch_size, out_dir=None):
    return TrainConfig(batch_size=batch_size, grad_accum_steps=2, max_steps=4, lr=0.3, optimizer="sgd",
                       momentum=0.9, grad_clip=1.0, device="cpu", dtype="float32", progress=False,
                       log_every=0, out_dir=out_dir, save_every=2, seed=7)


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_with_double_batch(tmp_path):
    script = tmp_path / "worker.py"
    weights, losses = tmp_path / "ddp.safetensors", tmp_path / "losses.txt"
    script.write_text(WORKER.format(tests=os.path.dirname(__file__), out=str(tmp_path / "run"),
                                    weights=str(weights), losses=str(losses)))
    env = dict(os.environ, OMP_NUM_THREADS="1", COURSE_DEVICE="cpu")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]

    single = make_model()
    history = Trainer(single, make_data(), make_config(batch_size=4)).fit()

    from safetensors.torch import load_file
    ddp = load_file(str(weights))
    for name, p in single.state_dict().items():
        if name in ddp:
            torch.testing.assert_close(ddp[name], p, rtol=0, atol=2e-6, msg=name)
    assert eval(losses.read_text()) == pytest.approx(history.loss, abs=1e-5)
    # rank 0 alone wrote the checkpoints and metrics.jsonl (log_every=0: the last step's line, once)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["metrics.jsonl", "step_2", "step_4"]
    assert [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()] == [4]


@pytest.mark.slow
def test_torchrun_command_line_matches_one_process(tmp_path):
    """`torchrun --nproc_per_node=2 -m course_lib pretrain --batch-size 2` == one process with --batch-size 4."""
    from safetensors.torch import load_file

    from course_lib.cli import main

    data = tmp_path / "d.txt"
    data.write_text("\n\n".join(f"第{i}天，人民日报报道了新的消息，天气很好。" for i in range(60)), encoding="utf-8")
    assert main(["tokenizer", "--data", str(data), "--vocab-size", "300", "--out", str(tmp_path / "tok")]) == 0
    common = ["pretrain", "--preset", "nano", "--data", str(data), "--tokenizer", str(tmp_path / "tok"),
              "--seq-len", "32", "--grad-accum", "2", "--max-steps", "3", "--optimizer", "sgd", "--lr", "0.5",
              "--no-progress", "--log-every", "0", "--device", "cpu", "--save-every", "3"]
    env = dict(os.environ, OMP_NUM_THREADS="1", COURSE_DEVICE="cpu")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "course_lib", *common, "--batch-size", "2", "--out", str(tmp_path / "ddp")],
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert main([*common, "--batch-size", "4", "--out", str(tmp_path / "one")]) == 0
    a = load_file(str(tmp_path / "ddp" / "step_3" / "model.safetensors"))
    b = load_file(str(tmp_path / "one" / "step_3" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=2e-6, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM to torchrun", "Ctrl-C to the process group"])
def test_a_signal_under_torchrun_saves_one_resumable_checkpoint(tmp_path, how):
    """Every rank stops after the same step and rank 0 saves it. A terminal's Ctrl-C reaches each
    worker twice (directly and forwarded by torchrun): that is still one request, not 'stop at once'."""
    import signal
    import time

    data = tmp_path / "d.txt"
    data.write_text("\n\n".join(f"第{i}天，人民日报报道了新的消息，天气很好。" for i in range(60)), encoding="utf-8")
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", COURSE_DEVICE="cpu")
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "course_lib", "pretrain", "--preset", "nano", "--data", str(data), "--vocab-size",
                             "300", "--seq-len", "32", "--batch-size", "2", "--max-steps", "100000", "--save-every",
                             "0", "--log-every", "1", "--no-progress", "--device", "cpu", "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    for line in proc.stdout:
        if line.startswith("step"):            # training is under way on every rank
            break
    time.sleep(0.5)
    if how == "SIGTERM to torchrun":
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    saved = [p.name for p in out.iterdir() if p.name.startswith("step_")]
    assert len(saved) == 1, (saved, stderr[-3000:])            # --save-every 0: the signal's save alone
    step = int(saved[0].split("_")[1])
    state = json.loads((out / saved[0] / "train_state.json").read_text())
    assert state["step"] == step >= 1 and state["world_size"] == 2
    assert f"after step {step}; saved" in stdout
    assert "Traceback" not in stdout
