"""Run every benchmark script and collect their tables (``make benchmarks``).

Each script prints its own markdown table of ratios measured in the same run; this runner executes
them one after the other (never in parallel: they would slow each other down), saves the output
under ``benchmarks/results/`` and, with ``--update-readme``, copies the tables into README.md
between the ``PERF-TABLE`` markers.

    python benchmarks/run_all.py                  # full CPU benchmarks (tens of minutes on 2 cores)
    python benchmarks/run_all.py --quick          # smoke run
    python benchmarks/run_all.py --update-readme  # also refresh the README's performance section
"""
from __future__ import annotations

import argparse
import datetime
import platform
import re
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCRIPTS = ("bench_model.py", "bench_trainer.py")
BEGIN, END = "<!-- PERF-TABLE -->", "<!-- /PERF-TABLE -->"


def run_script(name: str, extra: list[str]) -> str:
    cmd = [sys.executable, str(HERE / name), *extra]
    print(f">> {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"{name} failed with exit code {proc.returncode}")
    return proc.stdout


def markdown_only(text: str) -> str:
    """Keep table rows, headings and notes; drop progress chatter."""
    keep = [line for line in text.splitlines() if line.startswith(("|", "#", "-", "*")) or not line.strip()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(keep)).strip()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for every script")
    parser.add_argument("--update-readme", action="store_true", help="copy the tables into README.md")
    args = parser.parse_args(argv)

    extra = (["--quick"] if args.quick else []) + ([f"--threads={args.threads}"] if args.threads else [])
    outputs = {name: run_script(name, extra) for name in SCRIPTS}

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    header = (f"Measured {stamp} on {platform.processor() or platform.machine()}, "
              f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
              f"{' (quick run)' if args.quick else ''}.")
    report = header + "\n\n" + "\n\n".join(markdown_only(out) for out in outputs.values()) + "\n"
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "latest.md").write_text(report, encoding="utf-8")
    print(f">> wrote {results / 'latest.md'}")

    if args.update_readme:
        readme = ROOT / "README.md"
        text = readme.read_text(encoding="utf-8")
        if BEGIN not in text or END not in text:
            raise SystemExit(f"README.md has no {BEGIN} ... {END} markers")
        before, rest = text.split(BEGIN, 1)
        _, after = rest.split(END, 1)
        readme.write_text(before + BEGIN + "\n" + report + END + after, encoding="utf-8")
        print(">> updated the performance section of README.md")


if __name__ == "__main__":
    main()
