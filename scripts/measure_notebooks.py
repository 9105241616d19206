#!/usr/bin/env python
"""Run notebooks under the fast budget, measure wall time and peak memory, update notebooks/README.md.

    python scripts/measure_notebooks.py                 # every notebooks/NN_*.ipynb
    python scripts/measure_notebooks.py 03 04           # by number, stem or path
    python scripts/measure_notebooks.py --no-write 03   # measure and print only
    python scripts/measure_notebooks.py --status-only   # refresh the status column, run nothing

Each notebook runs in its own process tree (``pytest --nbval-lax --nbval-current-env`` by default, or
``--runner nbclient``) with ``COURSE_BUDGET=fast MPLBACKEND=Agg``. Wall time covers the whole command
(kernel start included); peak memory is the largest resident set among the processes of that tree
(``getrusage(RUSAGE_CHILDREN)`` in a fresh wrapper process, so the kernel is included).
The table in notebooks/README.md between the markers is rewritten in place; rows that were not
measured keep their figures.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
README = NOTEBOOK_DIR / "README.md"
START, END = "<!-- notebook-table:start -->", "<!-- notebook-table:end -->"
HEADER = ("NB", "title", "question ids", "status", "fast: time (s)", "fast: CPU time (s)", "fast: peak memory (MB)")

_WRAPPER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
rc = subprocess.run(sys.argv[1:]).returncode
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
rss_mb = ru.ru_maxrss / 1e6 if sys.platform == "darwin" else ru.ru_maxrss / 1024  # bytes on macOS, KiB on Linux
print("@@MEASURE@@" + json.dumps({"rc": rc, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_mb": rss_mb}))
"""


def runner_command(nb: Path, runner: str, python: str) -> list[str]:
    if runner == "nbval":
        return [python, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
                "-q", str(nb)]
    if runner == "nbclient":
        code = ("import sys, nbformat; from nbclient import NotebookClient; "
                "nb = nbformat.read(sys.argv[1], as_version=4); "
                "NotebookClient(nb, timeout=600, kernel_name='python3', "
                "resources={'metadata': {'path': sys.argv[2]}}).execute()")
        return [python, "-c", code, str(nb), str(nb.parent)]
    raise ValueError(f"runner={runner!r} must be 'nbval' or 'nbclient'")


def measure(nb: Path, runner: str = "nbval", python: str = sys.executable, env_extra: dict | None = None) -> dict:
    """Run one notebook in a fresh process tree; return {"rc", "wall_s", "peak_mb", "tail"}."""
    env = dict(os.environ, COURSE_BUDGET="fast", MPLBACKEND="Agg")
    env.update(env_extra or {})
    cmd = [python, "-c", _WRAPPER] + runner_command(nb, runner, python)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    m = re.search(r"@@MEASURE@@(\{.*\})", proc.stdout)
    if not m:
        return {"rc": proc.returncode or 1, "wall_s": float("nan"), "cpu_s": float("nan"), "peak_mb": float("nan"),
                "tail": (proc.stdout + proc.stderr)[-3000:]}
    out = json.loads(m.group(1))
    out["tail"] = (proc.stdout.replace(m.group(0), "") + proc.stderr)[-3000:]
    return out


# ----------------------------------------------------------------------------- the README table

def split_row(line: str) -> list[str]:
    line = line.strip()
    if not line.startswith("|"):
        return []
    return [c.strip() for c in line.strip("|").split("|")]


def parse_table(block: str) -> list[list[str]]:
    """Rows of the README table as lists of ``len(HEADER)`` cells, mapped by column name (so a table
    written with fewer columns keeps its figures in the right places)."""
    rows, header = [], list(HEADER)
    for line in block.splitlines():
        cells = split_row(line)
        if not cells or set("".join(cells)) <= set("-: "):
            continue
        if cells[0] == HEADER[0]:
            header = cells
            continue
        by_name = dict(zip(header, cells))
        rows.append([by_name.get(col, "") for col in HEADER])
    return rows


def render_table(rows: list[list[str]], footer: str = "") -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(r[: len(HEADER)]) + " |" for r in rows]
    if footer:
        lines += ["", footer]
    return "\n".join(lines)


def update_readme(text: str, results: dict[str, dict], written: set[str], footer: str | None = None) -> str:
    """Rewrite the table between the markers: figures for measured notebooks, status from files."""
    if START not in text or END not in text:
        raise ValueError(f"README has no table markers {START} ... {END}")
    head, rest = text.split(START, 1)
    block, tail = rest.split(END, 1)
    old_footer = next((ln for ln in block.splitlines() if ln.startswith("_Measured")), "")
    rows = parse_table(block)
    for row in rows:
        num = row[0].strip()
        if num in written:
            row[3] = "written"
        if num in results:
            r = results[num]
            ok = r["rc"] == 0
            row[4] = f"{r['wall_s']:.0f}" + ("" if ok else " (failed)")
            row[5] = f"{r.get('cpu_s', float('nan')):.0f}"
            row[6] = f"{r['peak_mb']:.0f}"
    return head + START + "\n" + render_table(rows, footer if footer is not None else old_footer) + "\n" + END + tail


def written_notebooks() -> set[str]:
    """Numbers of the notebooks whose .py is committed (all .py files when git is unavailable)."""
    try:
        out = subprocess.run(["git", "ls-files", "notebooks"], capture_output=True, text=True, cwd=REPO, check=True)
        names = [Path(line).name for line in out.stdout.splitlines()]
    except (OSError, subprocess.CalledProcessError):
        names = [p.name for p in NOTEBOOK_DIR.glob("*.py")]
    return {n[:2] for n in names if re.match(r"^\d\d_.*\.py$", n)}


def resolve(args: list[str]) -> list[Path]:
    all_nbs = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not args:
        return all_nbs
    out = []
    for a in args:
        p = Path(a)
        if p.suffix == ".ipynb" and p.exists():
            out.append(p.resolve())
            continue
        hits = [nb for nb in all_nbs if nb.stem == a or nb.stem.startswith(a.zfill(2) + "_") or nb.stem == Path(a).stem]
        if not hits:
            raise SystemExit(f"no notebook matches {a!r}")
        out.extend(hits)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", help="numbers (03), stems or .ipynb paths; default: all")
    ap.add_argument("--runner", choices=("nbval", "nbclient"), default="nbval")
    ap.add_argument("--no-write", action="store_true", help="print the figures, leave the README alone")
    ap.add_argument("--status-only", action="store_true", help="only refresh the status column")
    ap.add_argument("--python", default=sys.executable, help="interpreter of the course environment")
    args = ap.parse_args(argv)

    written = written_notebooks()
    results: dict[str, dict] = {}
    failed = 0
    if not args.status_only:
        for nb in resolve(args.notebooks):
            print(f"running {nb.name} (COURSE_BUDGET=fast, {args.runner}) ...", flush=True)
            r = measure(nb, args.runner, args.python)
            results[nb.stem[:2]] = r
            status = "ok" if r["rc"] == 0 else f"FAILED (exit {r['rc']})"
            print(f"  {nb.name}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, peak {r['peak_mb']:.0f} MB, {status}")
            if r["rc"] != 0:
                failed += 1
                print(r["tail"])
    if not args.no_write:
        footer = None
        if results:
            footer = (f"_Measured {_dt.date.today().isoformat()} with `scripts/measure_notebooks.py` "
                      f"({os.cpu_count()} CPU cores, COURSE_BUDGET=fast, whole nbval run incl. kernel start; "
                      f"load average {os.getloadavg()[0]:.1f} at the end: on a busy machine wall time exceeds "
                      f"CPU time)._")
        README.write_text(update_readme(README.read_text(encoding="utf-8"), results, written, footer),
                          encoding="utf-8")
        print(f"updated {README.relative_to(REPO)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
