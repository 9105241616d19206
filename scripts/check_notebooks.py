#!/usr/bin/env python
"""Check that every notebook pair is in sync, output-free and follows the course's notebook standard.

The source of truth is ``notebooks/NN_slug.py`` (jupytext percent format); ``notebooks/NN_slug.ipynb``
is generated from it. This script regenerates each ``.ipynb`` in memory (one process, no file times)
and compares it with the committed one, ignoring only volatile metadata (cell ids, execution counts,
kernel and language info, timing metadata).

    python scripts/check_notebooks.py              # check; exit 1 listing every problem; print the report
    python scripts/check_notebooks.py --markdown   # the same report as a markdown table
    python scripts/check_notebooks.py --readme     # ... written into notebooks/README.md between its markers
    python scripts/check_notebooks.py --write      # regenerate every .ipynb from its .py
    python scripts/check_notebooks.py --write 03 04   # only these

The question catalog is ``notebooks/questions.json`` (``course_lib.lab.catalog``; ``--catalog PATH``).
It assigns every question id to one notebook, which *owns* it. Only notebooks that exist are checked;
each ``.py`` must:

1. quote every owned id (as a whole id: ``S000-Q1`` does not count inside ``S000-Q1.1``);
2. for every owned id, have a ``Claim("<id> ...", ...)`` whose source names the id, or a markdown line
   ``no-claim <id>[, <id> ...]: <reason>`` (reason at least 20 characters; a leading ``-``/``*`` is
   allowed), for ids whose document makes no checkable claim, e.g.
   ``no-claim S001-Q1-hint3: a hint that points at the guide question; it asserts nothing itself``;
3. never write ``holds=True`` / ``holds=False`` as a literal (compute it from the measurement);
4. keep markdown headings out of code cells (a comment line like ``# ## 3. Title`` in a code cell);
5. define no function or class longer than 6 code lines (blank lines, comments and the docstring not
   counted) outside solution cells: longer helpers belong in ``course_lib`` with a test;
6. give every exercise a runnable solution. The exercises are the markdown paragraphs starting with
   ``**1.**``, ``**Exercise 1.**``, ``**Exercise 2 (GPU).**`` or a sub-heading ``### Exercise 1``, under a
   heading ``Exercises`` (until the next heading of that level); the solution is the next code cell
   tagged ``solution`` with its source hidden (``# %% tags=["solution"] jupyter={"source_hidden": true}``),
   and it must contain an ``assert`` on the answer;
7. key every ``predict(...)`` by owned ids: its key names at least one question id and only owned ones
   (``predict("S000-Q3.2 waste", ...)``).

Besides the problems, it prints a per-notebook report: owned ids quoted (and in the header form
``**ID** 「…」``), predictions, asserts outside solutions, Claim rows, no-claim markers, exercises with
a solution.
"""
from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
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


# ----------------------------------------------------------------------------- the standard's rules

SOLUTION_TAG = "solution"
MAX_DEF_LINES = 6
ID_TOKEN_RE = re.compile(r"S\d{3}-[A-Za-z0-9]+(?:[.-][A-Za-z0-9]+)*")
NO_CLAIM_RE = re.compile(r"^\s*(?:[-*]\s+)?no-claim\s+([^:]+?)\s*:\s*(.*?)\s*$")
MIN_REASON_CHARS = 20
EXERCISES_HEADING_RE = re.compile(r"^(#{1,6})\s+Exercises?\b", re.I)
HEADING_RE = re.compile(r"^(#{1,6})\s+\S")
EXERCISE_START_RE = re.compile(r"^(?:\*\*(?:Exercise\b|\d+\b)[^*]*\*\*|#{1,6}\s+Exercise\b)", re.I)
HEADING_IN_CODE_RE = re.compile(r"^\s*#\s?#{1,6}\s+\S")  # "# ## 3. Title" or "## Title" as a comment


def id_pattern(qid: str) -> re.Pattern:
    """Matches ``qid`` as a whole id: S000-Q1 does not match inside S000-Q1.1 or S001-Q1-guide."""
    return re.compile(r"(?<![\w.-])" + re.escape(qid) + r"(?![\w-]|\.\w)")


def missing_ids(source: str, ids: list[str]) -> list[str]:
    return [q for q in ids if not id_pattern(q).search(source)]


def load_catalog(path: str | Path | None = None):
    """The in-repository catalog (``notebooks/questions.json``), read by ``course_lib.lab.catalog``."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from course_lib.lab.catalog import load_catalog as _load
    return _load(path if path is not None else NOTEBOOK_DIR / "questions.json")


def is_solution(cell) -> bool:
    return cell.get("cell_type") == "code" and SOLUTION_TAG in (cell.get("metadata", {}).get("tags") or [])


def is_hidden(cell) -> bool:
    return bool((cell.get("metadata", {}).get("jupyter") or {}).get("source_hidden"))


def parse_code(src: str) -> ast.Module | None:
    """The cell's syntax tree, with IPython magics and shell lines blanked; None if it does not parse."""
    lines = ["" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def markdown_lines(cell) -> list[str]:
    return _source(cell).splitlines() if cell.get("cell_type") == "markdown" else []


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _first_arg(node: ast.Call, keyword: str) -> ast.AST | None:
    if node.args:
        return node.args[0]
    return next((k.value for k in node.keywords if k.arg == keyword), None)


def _literal_text(node: ast.AST | None) -> str | None:
    """A string argument's text; the literal parts of an f-string; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant))
    return None


def _code_lines(node: ast.AST, src_lines: list[str]) -> int:
    """Lines of a def/class that hold code: blank lines, comments and the docstring do not count."""
    skip: set[int] = set()
    body = getattr(node, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        skip = set(range(body[0].lineno, body[0].end_lineno + 1))
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return sum(1 for i in range(start, node.end_lineno + 1)
               if i not in skip and src_lines[i - 1].strip() and not src_lines[i - 1].strip().startswith("#"))


class NotebookReport:
    """What one notebook holds and which rules of the standard it breaks."""

    def __init__(self, stem: str, owned: list[str]):
        self.stem, self.owned = stem, list(owned)
        self.quoted: list[str] = []          # owned ids present in the text
        self.headed: list[str] = []          # owned ids in the header form **ID** 「…」
        self.predictions: list[str] = []     # predict() keys
        self.asserts = 0                     # assert statements outside solution cells
        self.claims: list[str] = []          # the source of every Claim(...)
        self.no_claim: dict[str, str] = {}   # id -> reason
        self.exercises = 0
        self.solved = 0                      # exercises with a runnable solution cell
        self.problems: list[str] = []


def analyse(stem: str, nb, owned: list[str], known: set[str]) -> NotebookReport:
    """Apply the standard's rules to one notebook node (cells with metadata); see the module docstring."""
    rep = NotebookReport(stem, owned)
    text = "\n".join(_source(c) for c in nb.cells)
    rep.quoted = [q for q in owned if id_pattern(q).search(text)]
    rep.headed = [q for q in owned if re.search(r"\*\*" + re.escape(q) + r"\*\*[^\n]*「", text)]
    missing = [q for q in owned if q not in rep.quoted]
    if missing:
        rep.problems.append(f"does not quote its question ids: {', '.join(missing)}")

    # markdown: no-claim markers and exercises
    ex_level = None         # heading level of the exercises section while inside it
    pending: list[int] = []  # exercises (cell index) still waiting for their solution cell
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            for ln in markdown_lines(cell):
                m = NO_CLAIM_RE.match(ln)
                if m:
                    ids = [x.strip().strip("`*") for x in m.group(1).split(",")]
                    for q in ids:
                        if q not in owned:
                            rep.problems.append(f"no-claim marker names {q!r}, which this notebook does not own")
                        elif len(m.group(2)) < MIN_REASON_CHARS:
                            rep.problems.append(f"no-claim {q} needs a reason (at least {MIN_REASON_CHARS} characters)")
                        else:
                            rep.no_claim[q] = m.group(2)
                h = HEADING_RE.match(ln)
                if h:
                    level = len(h.group(1))
                    if EXERCISES_HEADING_RE.match(ln) and (ex_level is None or level <= ex_level):
                        ex_level = level
                        continue
                    if ex_level is not None and level <= ex_level:
                        ex_level = None
                if ex_level is not None and EXERCISE_START_RE.match(ln.strip()):
                    rep.problems += [f"exercise in cell {j} has no solution cell" for j in pending]
                    pending = [i]
                    rep.exercises += 1
        elif is_solution(cell) and pending:
            tree = parse_code(_source(cell))
            if not is_hidden(cell):
                rep.problems.append(f"solution cell {i} does not hide its source (jupyter={{\"source_hidden\": true}})")
            if tree is None or not any(isinstance(n, ast.Assert) for n in ast.walk(tree)):
                rep.problems.append(f"solution cell {i} has no assert on the exercise's answer")
            else:
                rep.solved += 1
            pending = []
    rep.problems += [f"exercise in cell {j} has no solution cell" for j in pending]

    # code: predictions, claims, literal verdicts, asserts, headings, long definitions
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        src = _source(cell)
        for ln in src.splitlines():
            if HEADING_IN_CODE_RE.match(ln):
                rep.problems.append(f"cell {i} is code but holds a markdown heading: {ln.strip()[:50]!r}")
                break
        tree = parse_code(src)
        if tree is None:
            rep.problems.append(f"cell {i} does not parse as Python")
            continue
        lines = src.splitlines()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assert) and not is_solution(cell):
                rep.asserts += 1
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not is_solution(cell):
                n = _code_lines(node, lines)
                if n > MAX_DEF_LINES:
                    rep.problems.append(f"cell {i} defines {node.name!r} over {n} lines (more than {MAX_DEF_LINES}): "
                                        "move it into course_lib with a test")
            if isinstance(node, ast.keyword) and node.arg == "holds" and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, bool):
                rep.problems.append(f"cell {i} writes holds={node.value.value} literally: compute it from the measurement")
            if isinstance(node, ast.Call) and _call_name(node) == "predict":
                key = _literal_text(_first_arg(node, "key"))
                if key is None:
                    rep.problems.append(f"cell {i}: a predict() key that is not a string literal")
                    continue
                rep.predictions.append(key)
                ids = ID_TOKEN_RE.findall(key)
                bad = [x for x in ids if x not in owned]
                if not ids or bad:
                    why = f"names {', '.join(bad)}, not owned here" if bad else "names no question id"
                    rep.problems.append(f"prediction key {key!r} {why} (start it with one of: {', '.join(owned)})")
            if isinstance(node, ast.Call) and _call_name(node) == "Claim":
                source = _literal_text(_first_arg(node, "source"))
                rep.claims.append(source if source is not None else ast.unparse(_first_arg(node, "source") or node))

    claimed = {q for q in owned if any(id_pattern(q).search(s) for s in rep.claims)}
    unanswered = [q for q in owned if q not in claimed and q not in rep.no_claim]
    if unanswered:
        rep.problems.append("ids with neither a Claim row nor a 'no-claim ID: reason' line: " + ", ".join(unanswered))
    stray = [s for s in rep.claims if not any(q in known for q in ID_TOKEN_RE.findall(s))]
    if stray:
        rep.problems.append("Claim sources that name no catalogued id: " + ", ".join(map(repr, stray[:5])))
    return rep


# ----------------------------------------------------------------------------- the check

def notebook_pairs(nb_dir: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    pys = {p.stem: p for p in sorted(nb_dir.glob("[0-9][0-9]_*.py")) if NAME_RE.match(p.stem)}
    ipynbs = {p.stem: p for p in sorted(nb_dir.glob("[0-9][0-9]_*.ipynb")) if NAME_RE.match(p.stem)}
    return pys, ipynbs


def check_sync(nb_dir: Path) -> list[str]:
    """Every .py has its .ipynb, in sync and without outputs; no notebook numbers clash."""
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
    return problems


def reports(nb_dir: Path, catalog) -> list[NotebookReport]:
    """The standard's rules applied to every notebook .py that exists."""
    pys, _ = notebook_pairs(nb_dir)
    known = set(catalog.questions)
    out = []
    for stem, py in pys.items():
        num = stem[:2]
        if num not in catalog.notebooks:
            rep = NotebookReport(stem, [])
            rep.problems.append(f"notebook {num} is not in the question catalog")
            out.append(rep)
            continue
        try:
            nb = py_to_notebook(py.read_text(encoding="utf-8"))
        except Exception as exc:
            rep = NotebookReport(stem, catalog.ids_for(num))
            rep.problems.append(f"cannot be read: {exc}")
            out.append(rep)
            continue
        out.append(analyse(stem, nb, catalog.ids_for(num), known))
    return out


def check(nb_dir: Path, catalog=None) -> list[str]:
    """Every problem: sync and outputs always; the standard's rules when a catalog is given."""
    problems = check_sync(nb_dir)
    if catalog is not None:
        problems += [f"{r.stem}.py: {p}" for r in reports(nb_dir, catalog) for p in r.problems]
    return problems


REPORT_COLUMNS = ("NB", "ids quoted/owned", "in header", "predictions", "asserts", "claims", "no-claim",
                  "exercises solved", "problems")


def report_rows(reps: list[NotebookReport]) -> list[tuple[str, ...]]:
    return [(r.stem, f"{len(r.quoted)}/{len(r.owned)}", str(len(r.headed)), str(len(r.predictions)),
             str(r.asserts), str(len(r.claims)), str(len(r.no_claim)), f"{r.solved}/{r.exercises}",
             str(len(r.problems))) for r in reps]


def report_text(reps: list[NotebookReport], markdown: bool = False) -> str:
    rows = report_rows(reps)
    if markdown:
        lines = ["| " + " | ".join(REPORT_COLUMNS) + " |", "|" + "---|" * len(REPORT_COLUMNS)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(REPORT_COLUMNS)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    return "\n".join([fmt.format(*REPORT_COLUMNS)] + [fmt.format(*r) for r in rows])


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


REPORT_START, REPORT_END = "<!-- standard-report:start -->", "<!-- standard-report:end -->"


def write_readme_report(readme: Path, table: str) -> None:
    """Replace the text between the report markers of ``readme`` with ``table``."""
    text = readme.read_text(encoding="utf-8")
    if REPORT_START not in text or REPORT_END not in text:
        raise SystemExit(f"{readme} has no {REPORT_START} ... {REPORT_END} markers")
    head, rest = text.split(REPORT_START, 1)
    tail = rest.split(REPORT_END, 1)[1]
    readme.write_text(head + REPORT_START + "\n" + table.strip() + "\n" + REPORT_END + tail, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="regenerate every .ipynb from its .py")
    ap.add_argument("only", nargs="*", help="with --write: only these notebooks (numbers like 03, or stems)")
    ap.add_argument("--notebooks", default=str(NOTEBOOK_DIR), help="notebook folder (default: notebooks/)")
    ap.add_argument("--catalog", default=None, help="question catalog (default: notebooks/questions.json)")
    ap.add_argument("--markdown", action="store_true", help="print the per-notebook report as a markdown table")
    ap.add_argument("--readme", action="store_true",
                    help="also write the markdown report into notebooks/README.md between its report markers")
    args = ap.parse_args(argv)
    nb_dir = Path(args.notebooks)
    if args.write:
        for p in write_all(nb_dir, args.only):
            print(f"wrote {p.relative_to(nb_dir.parent) if nb_dir.parent in p.parents else p}")
    catalog = load_catalog(args.catalog)
    problems = check_sync(nb_dir)
    reps = reports(nb_dir, catalog)
    problems += [f"{r.stem}.py: {p}" for r in reps for p in r.problems]
    print(report_text(reps, markdown=args.markdown))
    print()
    if args.readme:
        write_readme_report(nb_dir / "README.md", report_text(reps, markdown=True))
    if problems:
        print(f"{len(problems)} notebook problem(s):")
        for p in problems:
            print("  - " + p)
        return 1
    print(f"{len(reps)} notebook(s) in sync, without outputs, following the standard's checked rules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
