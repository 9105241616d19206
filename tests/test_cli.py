"""Command line: --help, bad input (one clean line, non-zero exit, nothing lost), pretrain -> generate."""
import subprocess
import sys

import pytest

from course_lib.cli import main

TEXT = "\n\n".join([
    "今天天气很好，我们一起去公园散步。",
    "人民日报报道，今年粮食产量再创新高，农民的收入继续增加。",
    "他说，科学技术是第一生产力，教育是国家发展的基础。",
    "春节期间，各地举办了丰富多彩的文化活动，群众欢度佳节。",
] * 12)


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "tiny.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def small_pretrain(data, out, *extra):
    return ["pretrain", "--preset", "nano", "--data", data, "--vocab-size", 300, "--seq-len", 32,
            "--batch-size", 4, "--max-steps", 4, "--save-every", 2, "--out", out, "--no-progress",
            "--log-every", 0, "--device", "cpu", *extra]


# ---------------------------------------------------------------- help
@pytest.mark.parametrize("command", ["pretrain", "sft", "generate", "tokenizer"])
def test_help_for_every_subcommand(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage:" in out
    flags = {"pretrain": ["--preset", "--corpus", "--data", "--max-steps", "--batch-size", "--grad-accum", "--lr",
                          "--save-every", "--out", "--resume", "--seed", "--device", "--seq-len", "--dtype"],
             "sft": ["--init", "--data", "--resume"],
             "generate": ["--ckpt", "--prompt", "--max-new-tokens", "--temperature", "--top-p", "--top-k"],
             "tokenizer": ["--corpus", "--vocab-size", "--out"]}[command]
    for flag in flags:
        assert flag in out, flag


def test_module_entry_point_help():
    proc = subprocess.run([sys.executable, "-m", "course_lib", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "pretrain" in proc.stdout and "generate" in proc.stdout


# ---------------------------------------------------------------- bad input
def bad_inputs(tmp_path, text_file):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n", encoding="utf-8")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "好"}\n{"text": oops}\n', encoding="utf-8")
    out = tmp_path / "o"
    return {
        "missing data": (small_pretrain(tmp_path / "nope.txt", out), "nope.txt"),
        "empty data": (small_pretrain(empty, out), "empty"),
        "malformed jsonl": (small_pretrain(broken, out), "broken.jsonl, line 2"),
        "unknown corpus": (["pretrain", "--corpus", "klingon", "--out", out], "klingon"),
        "unknown preset": (["pretrain", "--preset", "huge", "--out", out], "huge"),
        "sequence too long": (small_pretrain(text_file, out, "--seq-len", 1000), "1000"),
        "grad accum 0": (small_pretrain(text_file, out, "--grad-accum", 0), "grad_accum"),
        "lr 0": (small_pretrain(text_file, out, "--lr", 0), "lr"),
        "missing checkpoint": (["generate", "--ckpt", tmp_path / "no_such_run", "--prompt", "x"], "no_such_run"),
        "resume without checkpoint": (small_pretrain(text_file, tmp_path / "fresh", "--resume"), "--resume"),
    }


@pytest.mark.parametrize("case", ["missing data", "empty data", "malformed jsonl", "unknown corpus", "unknown preset",
                                  "sequence too long", "grad accum 0", "lr 0", "missing checkpoint",
                                  "resume without checkpoint"])
def test_bad_input_is_one_clean_line(case, tmp_path, text_file, capsys):
    argv, needle = bad_inputs(tmp_path, text_file)[case]
    code, out, err = run(argv, capsys)
    assert code != 0
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert needle in lines[0]
    assert "Traceback" not in err + out


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "course_lib", "pretrain", "--corpus", "klingon", "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: argument --corpus: invalid choice: 'klingon'")


# ---------------------------------------------------------------- end to end
def test_pretrain_generate_resume_and_protection(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    code, stdout, err = run(small_pretrain(text_file, out), capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl", "report.md", "step_2", "step_4", "tokenizer"]
    assert (out / "step_4" / "tokenizer.json").is_file()
    assert "generate --ckpt" in stdout

    # generate needs only --ckpt (run folder -> newest step) and prints a continuation of the prompt
    code, stdout, err = run(["generate", "--ckpt", out, "--prompt", "今天", "--max-new-tokens", 8, "--seed", 1],
                            capsys)
    assert code == 0, err
    assert stdout.startswith("今天") and len(stdout.strip()) > 2
    code, stdout2, _ = run(["generate", "--ckpt", out / "step_2", "--prompt", "今天", "--temperature", 0,
                            "--max-new-tokens", 8], capsys)
    assert code == 0 and stdout2.startswith("今天")

    # a fresh run on top of the old one is refused, and nothing is changed
    before = (out / "step_4" / "model.safetensors").read_bytes()
    code, _, err = run(small_pretrain(text_file, out), capsys)
    assert code != 0 and "--resume" in err and "Traceback" not in err
    assert (out / "step_4" / "model.safetensors").read_bytes() == before

    # --resume alone continues from the newest checkpoint
    code, _, err = run(small_pretrain(text_file, out, "--max-steps", 6, "--resume"), capsys)
    assert code == 0 and (out / "step_6").is_dir(), err

    # resuming with another model config is a one-line error; the run is intact
    code, _, err = run(small_pretrain(text_file, out, "--max-steps", 8, "--resume", "--max-seq-len", 64), capsys)
    assert code != 0 and "another model config" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl", "report.md", "step_2", "step_4", "step_6",
                                                     "tokenizer"]


def test_tokenizer_command(tmp_path, text_file, capsys):
    code, stdout, err = run(["tokenizer", "--data", text_file, "--vocab-size", 300, "--out", tmp_path / "tok"], capsys)
    assert code == 0, err
    assert (tmp_path / "tok" / "tokenizer.json").is_file() and "300-token" in stdout
    from course_lib.tokenizer import load_tokenizer
    tok = load_tokenizer(tmp_path / "tok")
    assert tok.decode(tok.encode("今天天气很好")) == "今天天气很好"


def test_sft_from_a_pretrained_run(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    assert run(small_pretrain(text_file, out), capsys)[0] == 0
    sft = tmp_path / "sft.jsonl"
    import json
    convs = [{"conversations": [{"role": "user", "content": f"你好{i}"}, {"role": "assistant", "content": "你好！"}]}
             for i in range(20)]
    sft.write_text("\n".join(json.dumps(c, ensure_ascii=False) for c in convs), encoding="utf-8")
    code, _, err = run(["sft", "--init", out, "--data", sft, "--seq-len", 32, "--batch-size", 4, "--max-steps", 2,
                        "--out", tmp_path / "sft", "--no-progress", "--device", "cpu", "--val-fraction", 0], capsys)
    assert code == 0, err
    code, stdout, err = run(["generate", "--ckpt", tmp_path / "sft", "--prompt", "你好", "--chat",
                             "--max-new-tokens", 4], capsys)
    assert code == 0, err


def test_ckpt_pretrained_names_the_shipped_model(tmp_path, monkeypatch, capsys):
    import torch

    from course_lib import generate, load_pretrained

    monkeypatch.chdir(tmp_path)
    code, out, err = run(["generate", "--ckpt", "pretrained", "--prompt", "今天", "--max-new-tokens", 8,
                          "--temperature", 0, "--device", "cpu"], capsys)
    assert code == 0, err
    model, tok = load_pretrained()
    ids = tok.encode("今天", add_special_tokens=True)
    new = generate(model, torch.tensor([ids]), max_new_tokens=8, temperature=0, eos_token_id=tok.eos_id)[0, len(ids):]
    assert out == "今天" + tok.decode(new.tolist(), skip_special_tokens=True) + "\n"
    # a folder of that name here is what the user means
    (tmp_path / "pretrained").mkdir()
    code, out, err = run(["generate", "--ckpt", "pretrained", "--device", "cpu"], capsys)
    assert code == 2 and "pretrained" in err and "Traceback" not in err
