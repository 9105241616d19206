"""Every snippet in README.md runs as written.

The Python snippets outside the command-line walkthrough each run alone in a scratch folder. The
walkthrough (between ``<!-- walkthrough:start -->`` and ``<!-- walkthrough:end -->``) runs as one
session, its blocks in order in one scratch folder, with one change: step counts are divided by 100
(``--max-steps 300`` -> 3), so the session takes a minute or two instead of ten. Everything else
(presets, corpus, flags, pipes, the Python that loads the export) is the README's own text.
"""
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from course_lib.checkpoint import read_config

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text(encoding="utf-8")
WALK_START, WALK_END = "<!-- walkthrough:start -->", "<!-- walkthrough:end -->"
WALKTHROUGH = TEXT[TEXT.index(WALK_START):TEXT.index(WALK_END)]
OUTSIDE = TEXT.replace(WALKTHROUGH, "")
SNIPPETS = re.findall(r"```python\n(.*?)```", OUTSIDE, flags=re.S)
WALK_BLOCKS = re.findall(r"```(bash|python)\n(.*?)```", WALKTHROUGH, flags=re.S)


def test_readme_has_snippets_and_a_walkthrough():
    assert SNIPPETS
    assert [kind for kind, _ in WALK_BLOCKS] == ["bash", "python"]


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(SNIPPETS[index], f"README.md snippet {index}", "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out.strip()   # each snippet shows its result


def shorten(script: str) -> str:
    """``--max-steps N`` -> ``--max-steps max(2, N // 100)``: the same session, a hundredth of the steps."""
    return re.sub(r"--max-steps (\d+)", lambda m: f"--max-steps {max(2, int(m.group(1)) // 100)}", script)


def test_walkthrough_runs_in_order(tmp_path, monkeypatch, capsys):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
               OMP_NUM_THREADS="1")
    for kind, block in WALK_BLOCKS:
        if kind == "bash":
            proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-x", "-c", shorten(block)], cwd=tmp_path,
                                  env=env, capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, proc.stderr[-3000:]
            assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        else:
            monkeypatch.chdir(tmp_path)
            exec(compile(block, "README.md walkthrough", "exec"), {"__name__": "__readme__"})
            assert capsys.readouterr().out.strip()

    runs = tmp_path / "runs"
    # what the walkthrough's comments promise is there
    assert (runs / "tiny" / "step_4" / "tokenizer.json").is_file()            # 3 steps, resumed to 4
    lines = [json.loads(l) for l in (runs / "tiny" / "metrics.jsonl").read_text().splitlines()]
    assert lines and lines[-1]["step"] == 4
    assert "pretrain" in (runs / "tiny" / "report.md").read_text(encoding="utf-8")
    alibi = read_config(runs / "alibi" / "step_3")
    assert alibi.pos == "alibi" and alibi.qk_norm
    assert (runs / "tiny-sft-hf" / "model.safetensors").is_file()
    assert list((runs / "tiny-ddp").glob("step_*"))
