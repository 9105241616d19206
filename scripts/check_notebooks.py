#!/usr/bin/env python
"""Check that every notebook pair is in sync, output-free and covers its catalogued questions.

The source of truth is ``notebooks/NN_slug.py`` (jupytext percent format); ``notebooks/NN_slug.ipynb``
is generated from it. This script regenerates each ``.ipynb`` in memory (one process, no file times)
and compares it with the committed one, ignoring only volatile metadata (cell ids, execution counts,
kernel and language info, timing metadata).

    python scripts/check_notebooks.py           # check; exit 1 listing every problem
    python scripts/check_notebooks.py --write   # regenerate every .ipynb from its .py
    python scripts/check_notebooks.py --write 03 04   # only these

Coverage: every question id that ``questions.md`` §8 assigns to a notebook must appear verbatim in that
notebook's ``.py``. The catalog is looked up at ``../shared/course/questions.md`` (relative to the repo
root) or ``--questions PATH`` / ``$COURSE_QUESTIONS``; when it is absent coverage is skipped with a note.
Only notebooks that exist are checked.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
DEFAULT_QUESTIONS = REPO.parent / "shared" / "course" / "questions.md"
NAME_RE = re.compile(r"^(\d\d)_[A-Za-z0-9_]+$")

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
VOLATILE_NB_META = ("language_info", "kernelspec", "widgets", "toc", "varInspector", "vscode")
VOLATILE_CELL_META = ("execution", "ExecuteTime", "scrolled", "collapsed", "id", "trusted", "vscode")


# ----------------------------------------------------------------------------- conversion

def py_to_notebook(text: str):
    """Parse a percent-format script into a notebook node (deterministic ids, kernelspec set)."""
    import jupytext

    nb = jupytext.reads(text, fmt="py:percent")
    for i, cell in enumerate(nb.cells):
        src = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        cell["id"] = hashlib.sha1(f"{i}:{cell.cell_type}:{src}".encode()).hexdigest()[:8]
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    jt = nb.metadata.get("jupytext")
    if jt is not None:
        for key in ("cell_metadata_filter", "notebook_metadata_filter"):
            if key in jt:
                jt[key] = canonical_filter(jt[key])
    return nb


def canonical_filter(value: str) -> str:
    """jupytext builds metadata filters from a set, so their order changes between processes
    (string hashing is randomised): sort the entries, keep "-all" last."""
    items = [x for x in str(value).split(",") if x]
    return ",".join(sorted(x for x in items if x != "-all") + (["-all"] if "-all" in items else []))


def py_to_ipynb_text(text: str) -> str:
    import jupytext
    return jupytext.writes(py_to_notebook(text), fmt="ipynb")


def _source(cell) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def normalize(nb: dict) -> dict:
    """The parts of a notebook that matter for the sync check."""
    nb = copy.deepcopy(dict(nb))
    meta = {k: v for k, v in dict(nb.get("metadata", {})).items() if k not in VOLATILE_NB_META}
    if "jupytext" in meta:
        jt = dict(meta["jupytext"])
        jt.pop("text_representation", None)
        for key in ("cell_metadata_filter", "notebook_metadata_filter"):
            if key in jt:
                jt[key] = canonical_filter(jt[key])
        meta["jupytext"] = jt
    cells = []
    for cell in nb.get("cells", []):
        cmeta = {k: v for k, v in dict(cell.get("metadata", {})).items() if k not in VOLATILE_CELL_META}
        cells.append({"cell_type": cell.get("cell_type"), "source": _source(cell).rstrip("\n"),
                      "metadata": json.loads(json.dumps(cmeta, sort_keys=True))})
    return {"metadata": json.loads(json.dumps(meta, sort_keys=True)), "cells": cells}


def has_outputs(nb: dict) -> bool:
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
            return True
    return False


def first_difference(a: dict, b: dict) -> str:
    """A short human description of where two normalized notebooks differ."""
    if a["metadata"] != b["metadata"]:
        return "notebook metadata differs"
    if len(a["cells"]) != len(b["cells"]):
        return f"{len(a['cells'])} cells from the .py vs {len(b['cells'])} in the .ipynb"
    for i, (x, y) in enumerate(zip(a["cells"], b["cells"])):
        if x != y:
            what = "type" if x["cell_type"] != y["cell_type"] else "metadata" if x["metadata"] != y["metadata"] else "source"
            first = (x["source"].splitlines() or [""])[0][:60]
            return f"cell {i} ({what}) differs, starting {first!r}"
    return "no difference"


# ----------------------------------------------------------------------------- catalog

def parse_catalog(text: str) -> dict[str, dict]:
    """``questions.md`` §8 -> {"01": {"title": ..., "ids": [...]}, ...}."""
    sec = re.search(r"^## 8\..*?$(.*?)(?=^## \d+\.|\Z)", text, flags=re.M | re.S)
    if not sec:
        raise ValueError("questions.md has no '## 8.' section")
    out: dict[str, dict] = {}
    for m in re.finditer(r"^### NB(\d\d):\s*(.+?)\s*$(.*?)(?=^### |\Z)", sec.group(1), flags=re.M | re.S):
        num, title, body = m.group(1), m.group(2), m.group(3)
        title = re.sub(r"\s*\*\(owner topic\)\*\s*$", "", title).strip()
        q = re.search(r"^\*\s*Questions:\s*(.+)$", body, flags=re.M)
        ids = [x.strip() for x in q.group(1).split(",")] if q else []
        out[num] = {"title": title, "ids": [x for x in ids if x], "owner": "owner topic" in m.group(0).split("\n")[0]}
    return out


def id_pattern(qid: str) -> re.Pattern:
    """Matches ``qid`` as a whole id: S000-Q1 does not match inside S000-Q1.1 or S001-Q1-guide."""
    return re.compile(r"(?<![\w.-])" + re.escape(qid) + r"(?![\w-]|\.\w)")


def missing_ids(source: str, ids: list[str]) -> list[str]:
    return [q for q in ids if not id_pattern(q).search(source)]


def find_questions(explicit: str | None = None) -> Path | None:
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    for cand in (os.environ.get("COURSE_QUESTIONS"), DEFAULT_QUESTIONS):
        if cand and Path(cand).is_file():
            return Path(cand)
    return None


# ----------------------------------------------------------------------------- the check

def notebook_pairs(nb_dir: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    pys = {p.stem: p for p in sorted(nb_dir.glob("[0-9][0-9]_*.py")) if NAME_RE.match(p.stem)}
    ipynbs = {p.stem: p for p in sorted(nb_dir.glob("[0-9][0-9]_*.ipynb")) if NAME_RE.match(p.stem)}
    return pys, ipynbs


def check(nb_dir: Path, catalog: dict[str, dict] | None) -> list[str]:
    problems: list[str] = []
    pys, ipynbs = notebook_pairs(nb_dir)
    for stem in sorted(set(pys) | set(ipynbs)):
        if stem not in ipynbs:
            problems.append(f"{stem}.py has no {stem}.ipynb (run: python scripts/check_notebooks.py --write)")
            continue
        if stem not in pys:
            problems.append(f"{stem}.ipynb has no {stem}.py twin (the .py is the source of truth)")
            continue
        try:
            committed = json.loads(ipynbs[stem].read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            problems.append(f"{stem}.ipynb is not valid JSON: {exc}")
            continue
        if has_outputs(committed):
            problems.append(f"{stem}.ipynb has stored outputs (regenerate it with --write)")
        text = pys[stem].read_text(encoding="utf-8")
        try:
            fresh = json.loads(py_to_ipynb_text(text))
        except Exception as exc:  # a .py jupytext cannot read
            problems.append(f"{stem}.py cannot be converted: {exc}")
            continue
        a, b = normalize(fresh), normalize(committed)
        if a != b:
            problems.append(f"{stem}.py and {stem}.ipynb are out of sync: {first_difference(a, b)}")
    numbers = {stem[:2]: stem for stem in pys}
    if len(numbers) != len(pys):
        problems.append("two notebooks share a number: " + ", ".join(sorted(pys)))
    if catalog is not None:
        for num, stem in sorted(numbers.items()):
            entry = catalog.get(num)
            if entry is None:
                problems.append(f"{stem}: notebook {num} is not in questions.md §8")
                continue
            miss = missing_ids(pys[stem].read_text(encoding="utf-8"), entry["ids"])
            if miss:
                problems.append(f"{stem}.py does not quote its question ids: {', '.join(miss)}")
    return problems


def write_all(nb_dir: Path, only: list[str] | None = None) -> list[Path]:
    """Regenerate the .ipynb of every .py (or of those whose stem or number is in ``only``)."""
    written = []
    pys, _ = notebook_pairs(nb_dir)
    for stem, py in pys.items():
        if only and not any(stem == o or stem.startswith(o.zfill(2) + "_") for o in only):
            continue
        target = py.with_suffix(".ipynb")
        text = py_to_ipynb_text(py.read_text(encoding="utf-8"))
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="regenerate every .ipynb from its .py")
    ap.add_argument("only", nargs="*", help="with --write: only these notebooks (numbers like 03, or stems)")
    ap.add_argument("--notebooks", default=str(NOTEBOOK_DIR), help="notebook folder (default: notebooks/)")
    ap.add_argument("--questions", default=None, help="path to questions.md (default: ../shared/course/questions.md)")
    args = ap.parse_args(argv)
    nb_dir = Path(args.notebooks)
    if args.write:
        for p in write_all(nb_dir, args.only):
            print(f"wrote {p.relative_to(nb_dir.parent) if nb_dir.parent in p.parents else p}")
    qpath = find_questions(args.questions)
    catalog = None
    if qpath is None:
        print("note: questions.md not found; question-id coverage not checked")
    else:
        catalog = parse_catalog(qpath.read_text(encoding="utf-8"))
    problems = check(nb_dir, catalog)
    pys, _ = notebook_pairs(nb_dir)
    if problems:
        print(f"{len(problems)} notebook problem(s):")
        for p in problems:
            print("  - " + p)
        return 1
    print(f"{len(pys)} notebook pair(s) in sync, without outputs"
          + (", every catalogued question id quoted" if catalog is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
