"""The command line's options: every ModelConfig switch through --set / --config, choices and defaults
in --help, --version, exit codes in --help, and a --help that imports no torch."""
import importlib.metadata
import json
import subprocess
import sys

import pytest

from course_lib import ModelConfig
from course_lib.checkpoint import read_config
from course_lib.cli import build_parser, main
from course_lib.cli import model_options, training

TEXT = "\n\n".join(["今天天气很好，我们一起去公园散步。", "人民日报报道，今年粮食产量再创新高。",
                    "他说，科学技术是第一生产力。", "春节期间，各地举办了文化活动。"] * 10)
COMMANDS = sorted(build_parser().subcommands)


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "tiny.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


def pretrain(data, out, *extra):
    return ["pretrain", "--preset", "nano", "--data", str(data), "--vocab-size", "300", "--seq-len", "16",
            "--batch-size", "2", "--max-steps", "1", "--out", str(out), "--no-progress", "--log-every", "0",
            "--device", "cpu", "--threads", "1", *map(str, extra)]


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------- help, version, speed
def test_help_imports_no_torch_and_lists_exit_codes():
    code = ("import sys\nfrom course_lib.cli import main\n"
            f"for c in {COMMANDS!r} + [None]:\n"
            "    assert main([c, '--help'] if c else ['--help']) == 0\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"       # no torch was imported to print help
    for status in ("0 ", "1 ", "2 ", "130", "143"):
        assert f"\n  {status}" in proc.stdout


def test_version_is_the_installed_distribution_version():
    proc = subprocess.run([sys.executable, "-m", "course_lib", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"course_lib {importlib.metadata.version('course_lib')}"


def test_help_shows_choices_defaults_and_every_model_switch(capsys):
    assert main(["pretrain", "--help"]) == 0
    out = capsys.readouterr().out
    assert "{adamw,sgd}" in out and "cosine" in out and "(default: 0.1)" in out      # --weight-decay
    switches = out[out.index("model switches"):]
    for field in ModelConfig.__dataclass_fields__:
        assert (f"  {field} " in switches) == (field != "vocab_size"), field
    assert "rope|none|learned|sinusoidal|alibi" in switches


def test_cli_choices_are_the_library_constants():
    from course_lib import train

    assert training.OPTIMIZERS == train.OPTIMIZERS
    assert set(training.DTYPES) == set(train.DTYPES)


# ---------------------------------------------------------------- --set
def test_parse_set_reads_each_field_by_its_type():
    got = model_options.parse_set(["pos=alibi", "qk_norm=true", "n_kv_heads=none", "dropout=0.1", "dim=96",
                                   "attn_scale=one", "tie-embeddings=false", "attn_scale=0.25"])
    assert got == {"pos": "alibi", "qk_norm": True, "n_kv_heads": None, "dropout": 0.1, "dim": 96,
                   "attn_scale": 0.25, "tie_embeddings": False}


@pytest.mark.parametrize("item, needle", [("positions=alibi", "did you mean pos"), ("qk_norm=maybe", "true or false"),
                                          ("dim=big", "expected int"), ("vocab_size=100", "--vocab-size"),
                                          ("pos", "KEY=VALUE")])
def test_bad_set_is_one_error_line(item, needle, tmp_path, text_file, capsys):
    assert main(pretrain(text_file, tmp_path / "o", "--set", item)) == 2
    assert needle in error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_contradictory_switches_are_refused_before_any_work(tmp_path, text_file, capsys):
    assert main(pretrain(text_file, tmp_path / "o", "--set", "pos=alibi", "--set", "attn_impl=linear")) == 2
    assert "ALiBi" in error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_set_reaches_the_trained_model(tmp_path, text_file, capsys):
    out = tmp_path / "o"
    assert main(pretrain(text_file, out, "--set", "pos=alibi", "--set", "qk_norm=true", "--set", "n_layers=1")) == 0
    cfg = read_config(out / "step_1")
    assert cfg == ModelConfig.preset("nano", vocab_size=cfg.vocab_size).replace(pos="alibi", qk_norm=True, n_layers=1)


# ---------------------------------------------------------------- --config run files
def test_run_file_sets_model_and_options_and_the_command_line_wins(tmp_path, text_file, capsys):
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"model": {"norm_type": "layernorm", "n_layers": 3},
                               "train": {"max-steps": 2, "lr": 0.01, "schedule": "constant"}}))
    out = tmp_path / "o"
    argv = pretrain(text_file, out, "--config", run, "--set", "n_layers=1")
    argv = argv[:argv.index("--max-steps")] + argv[argv.index("--max-steps") + 2:]       # steps from the file
    assert main(argv) == 0
    cfg = read_config(out / "step_2")                                   # max_steps 2 came from the file
    assert cfg.norm_type == "layernorm" and cfg.n_layers == 1           # --set beat the file's n_layers
    state = json.loads((out / "step_2" / "train_state.json").read_text())
    assert state["train_config"]["lr"] == 0.01 and state["train_config"]["schedule"] == "constant"

    out2 = tmp_path / "o2"
    assert main(pretrain(text_file, out2, "--config", run, "--lr", "0.002")) == 0    # typed option beats the file
    state = json.loads((out2 / "step_1" / "train_state.json").read_text())
    assert state["train_config"]["lr"] == 0.002 and state["train_config"]["max_steps"] == 1


@pytest.mark.parametrize("content, needle", [({"train": {"max_stepz": 3}}, "max_steps"),
                                             ({"model": {"poss": "alibi"}}, "pos"),
                                             ({"train": {"schedule": "zigzag"}}, "must be one of"),
                                             ({"train": {"max_steps": 0}}, "max_steps"),
                                             ({"optimizer": {}}, "\"model\" and/or \"train\"")])
def test_bad_run_file_is_one_error_line(content, needle, tmp_path, text_file, capsys):
    run = tmp_path / "run.json"
    run.write_text(json.dumps(content))
    assert main(pretrain(text_file, tmp_path / "o", "--config", run)) == 2
    assert needle in error_line(capsys)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- sft --init keeps the architecture
def test_sft_init_allows_only_runtime_switches(tmp_path, text_file, capsys):
    base = tmp_path / "base"
    assert main(pretrain(text_file, base)) == 0
    sft = tmp_path / "sft.jsonl"
    sft.write_text("\n".join(json.dumps({"conversations": [{"role": "user", "content": f"你好{i}"},
                                                           {"role": "assistant", "content": "你好！"}]})
                             for i in range(8)), encoding="utf-8")
    common = ["sft", "--init", base, "--data", sft, "--max-steps", "1", "--batch-size", "2", "--seq-len", "32",
              "--no-progress", "--log-every", "0", "--device", "cpu", "--threads", "1"]
    capsys.readouterr()
    assert main([str(a) for a in common + ["--out", tmp_path / "s1", "--set", "pos=alibi"]]) == 2
    assert "only dropout, attn_impl" in error_line(capsys)
    assert main([str(a) for a in common + ["--out", tmp_path / "s2", "--set", "attn_impl=naive"]]) == 0
    tuned, before = read_config(tmp_path / "s2" / "step_1"), read_config(base / "step_1")
    assert tuned == before.replace(attn_impl="naive")
