"""A run's record: ``<out>/metrics.jsonl`` (the trainer, one line per log step, resumes included)
and ``<out>/report.md`` (the command line's report card)."""
import json
import subprocess
import sys

import torch

from adapters import reference_greedy_text
from course_lib import distributed as D
from course_lib.config import ModelConfig
from course_lib.data import collate
from course_lib.model import Transformer
from course_lib.progress import read_metrics
from course_lib.train import TrainConfig, Trainer

from test_resume import data


def config(out, **kw):
    base = dict(batch_size=2, grad_accum_steps=1, max_steps=6, lr=3e-3, warmup_steps=1, out_dir=str(out),
                device="cpu", dtype="float32", progress=False, log_every=2, seed=5)
    base.update(kw)
    return TrainConfig(**base)


def fresh():
    torch.manual_seed(0)
    return Transformer(ModelConfig.nano(dropout=0.0))


def lines(path):
    """The file's lines parsed with the standard library alone (each must be valid JSON)."""
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def test_one_line_per_log_step_equal_to_the_history(tmp_path):
    h = Trainer(fresh(), data(), config(tmp_path)).fit()
    got = lines(tmp_path)
    assert [r["step"] for r in got] == [2, 4, 6]
    for r in got:
        i = h.step.index(r["step"])
        assert (r["loss"], r["lr"], r["grad_norm"], r["tokens"]) == (h.loss[i], h.lr[i], h.grad_norm[i], h.tokens[i])
        assert r["clipped"] == h.clipped[i] and "eval_loss" not in r
    assert got[1]["tokens_per_s"] > 0 and got[1]["elapsed"] >= got[0]["elapsed"]


def test_log_every_0_writes_the_eval_steps_and_the_last_step(tmp_path):
    """No log lines asked for: still a line where an evaluation ran and one for the final step,
    which carries the final evaluation (run after the loop)."""
    ds = data()
    h = Trainer(fresh(), ds[:30], config(tmp_path, log_every=0, eval_every=4, eval_batches=2), eval_data=ds[30:]).fit()
    got = lines(tmp_path)
    assert [r["step"] for r in got] == [4, 6] == h.eval_step
    assert [r["eval_loss"] for r in got] == h.eval_loss


def test_a_resumed_run_reads_as_one_run(tmp_path):
    """Interrupted in step 5 (after step_4 was saved), a crash having left lines for steps 5-6 and
    half a line: resuming from step_4 drops them and writes steps 5 and 6 once, with the losses of an
    uninterrupted run."""
    ds = data()
    ref = Trainer(fresh(), ds, config(tmp_path / "ref", log_every=1)).fit()
    calls = {"n": 0}

    def interrupting_collate(items):
        calls["n"] += 1
        if calls["n"] == 5:                   # step 5's window (one micro-batch per step)
            raise KeyboardInterrupt
        return collate(items)

    run = tmp_path / "run"
    t = Trainer(fresh(), ds, config(run, log_every=1, save_every=2), collate_fn=interrupting_collate)
    assert t.fit().interrupted and t.step == 4
    assert [r["step"] for r in lines(run)] == [1, 2, 3, 4]
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:     # what a crashed run leaves behind
        f.write('{"step": 5, "loss": 9.0}\n{"step": 6, "loss": 9.0}\n{"step": 7, "lo')
    Trainer(fresh(), ds, config(run, log_every=1, save_every=2)).fit(resume="latest")
    got = lines(run)
    assert [r["step"] for r in got] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in got] == ref.loss == [r["loss"] for r in lines(tmp_path / "ref")]
    assert read_metrics(run) == got


def test_only_rank_0_writes(tmp_path):
    """A process that is not rank 0 writes no metrics (nor checkpoints). One process stands in for
    rank 1; tests/test_ddp.py checks a real two-process run leaves a single copy of each line."""
    t = Trainer(fresh(), data(), config(tmp_path / "r1", max_steps=2))
    t.dist = D.DistInfo(rank=1, world_size=1)
    t.fit()
    assert not (tmp_path / "r1" / "metrics.jsonl").exists() and len(t.history) == 2


def test_command_line_run_writes_a_report(tmp_path):
    text = tmp_path / "small.txt"
    text.write_text("\n\n".join(f"第{i}天，人民日报报道了新的消息，天气很好。" for i in range(40)), encoding="utf-8")
    out = tmp_path / "run"
    argv = ["pretrain", "--preset", "nano", "--data", str(text), "--vocab-size", "300", "--seq-len", "32",
            "--batch-size", "4", "--max-steps", "4", "--log-every", "2", "--out", str(out), "--device", "cpu",
            "--no-progress", "--threads", "1"]
    proc = subprocess.run([sys.executable, "-m", "course_lib", *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = lines(out)
    assert [r["step"] for r in metrics] == [2, 4]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "python -m course_lib " + " ".join(argv) in report
    final = f"{metrics[-1]['loss']:.4f}"
    assert f"/ {final} /" in report                                   # results: first / final / lowest
    assert f"| 4 | {final} |" in report                               # the loss table's last row
    assert "## Samples" in report and report.count("````text") == 3
    assert f"report {out / 'report.md'}" in proc.stdout

    # a resumed run rewrites the report for the whole run
    proc = subprocess.run([sys.executable, "-m", "course_lib", *argv, "--max-steps", "6", "--resume"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = lines(out)
    assert [r["step"] for r in metrics] == [2, 4, 6]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| steps | 6 of 6 |" in report and f"| 2 | {metrics[0]['loss']:.4f} |" in report


def test_samples_are_greedy_continuations():
    """The report's samples equal an argmax loop over full forward passes (no cache); chat runs wrap
    the prompt in the chat template."""
    from course_lib.cli.generate import CHAT_PROMPTS, SAMPLE_PROMPTS
    from course_lib.cli.report import greedy_samples
    from course_lib.tokenizer import train_tokenizer

    tok = train_tokenizer(["今天天气很好，人工智能是一个新的方向。Once upon a time there was a cat."] * 20,
                          vocab_size=300)
    torch.manual_seed(1)
    model = Transformer(ModelConfig.nano(vocab_size=tok.vocab_size)).eval()
    for chat, language in ((False, "zh"), (True, "zh"), (False, "en"), (True, "en")):
        prompts = (CHAT_PROMPTS if chat else SAMPLE_PROMPTS)[language]
        got = greedy_samples(model, tok, chat=chat, language=language, max_new_tokens=6)
        assert [p for p, _ in got] == list(prompts)
        for prompt, text in got:
            ids = (tok.encode(tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True))
                   if chat else tok.encode(prompt, add_special_tokens=True))
            assert text == reference_greedy_text(model, tok, ids, 6)


def test_a_report_md_that_is_not_ours_is_left_alone(tmp_path):
    text = tmp_path / "small.txt"
    text.write_text("\n\n".join(f"第{i}天，人民日报报道了新的消息。" for i in range(30)), encoding="utf-8")
    out = tmp_path / "run"
    out.mkdir()
    (out / "report.md").write_text("my own notes\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "course_lib", "pretrain", "--preset", "nano", "--data", str(text),
                           "--vocab-size", "300", "--seq-len", "32", "--batch-size", "4", "--max-steps", "2",
                           "--out", str(out), "--device", "cpu", "--no-progress", "--threads", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]                 # the run itself is done and saved
    assert (out / "report.md").read_text(encoding="utf-8") == "my own notes\n"
    assert "report not written" in proc.stdout and (out / "step_2").is_dir()

