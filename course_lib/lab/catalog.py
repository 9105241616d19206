"""The question catalog: every question id of the source documents, its notebook and its claims.

The catalog lives in the repository as ``notebooks/questions.json`` so that a clone can check its own
coverage (``scripts/check_notebooks.py`` reads it). Each question holds:

* ``id``: ``S000-Q1.1``, ``S001-Q3-guide``, ... (seed number, then the question's place in it),
* ``notebook``: the two-digit number of the one notebook that answers it,
* ``zh``: the question line as the source document words it (the only text quoted from a document),
* ``en``: an English rendering,
* ``claims``: what the document asserts while answering, each summarised in our words with a
  ``verdict`` (one of ``VERDICTS``) and a ``kind`` (``exact-math``, ``measurable``, ``narrative``).

``dubious`` lists the claims most likely to mislead a learner, ranked, each naming the ids it concerns;
a notebook owning one of those ids shows it in its claims table.

    from course_lib.lab.catalog import load_catalog
    cat = load_catalog()
    cat.ids_for("03")                # ['S000-Q3', 'S000-Q3.1', 'S000-Q3.2']
    cat.questions["S000-Q3.2"].zh    # the question line
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

# what a claim's verdict may say
VERDICTS = {
    "holds": "checked, and right",
    "does not hold": "checked, and wrong",
    "partly": "right in part (e.g. the trend but not the numbers, or only under a condition)",
    "invented": "figures or attributions with no source that we could find",
    "unmeasurable": "analogy, opinion or history: nothing to measure",
    "to measure": "depends on a setting; the notebook's experiment decides it",
}
KINDS = ("exact-math", "measurable", "narrative")
ID_RE = re.compile(r"^S\d{3}-[A-Za-z0-9]+(?:[.-][A-Za-z0-9]+)*$")
NOTEBOOK_RE = re.compile(r"^\d\d$")


def default_path() -> Path:
    """``notebooks/questions.json`` of the repository this package sits in."""
    return Path(__file__).resolve().parents[2] / "notebooks" / "questions.json"


@dataclass(frozen=True)
class ClaimStatus:
    claim: str
    verdict: str
    kind: str


@dataclass(frozen=True)
class Question:
    id: str
    notebook: str
    zh: str
    en: str
    claims: tuple[ClaimStatus, ...]


@dataclass(frozen=True)
class DubiousRow:
    row: int
    ids: tuple[str, ...]
    summary: str


@dataclass(frozen=True)
class Catalog:
    notebooks: dict[str, str]          # "01" -> title
    questions: dict[str, Question]     # id -> Question, in catalog order
    dubious: tuple[DubiousRow, ...]

    def ids_for(self, notebook: str) -> list[str]:
        """The ids a notebook owns, in catalog order."""
        return [q.id for q in self.questions.values() if q.notebook == notebook]

    def notebook_of(self, qid: str) -> str:
        if qid not in self.questions:
            raise ValueError(f"qid={qid!r} is not a catalogued question id; see notebooks/questions.json")
        return self.questions[qid].notebook

    def dubious_for(self, qid: str) -> list[DubiousRow]:
        """The ranked dubious-claim rows that name ``qid``."""
        return [r for r in self.dubious if qid in r.ids]


def validate(data: dict) -> list[str]:
    """Every problem of a raw catalog dict (an empty list when it is sound)."""
    problems: list[str] = []
    notebooks = data.get("notebooks")
    if not isinstance(notebooks, dict) or not notebooks:
        return ["'notebooks' must map two-digit numbers to titles"]
    problems += [f"notebook key {k!r} is not two digits" for k in notebooks if not NOTEBOOK_RE.match(k)]
    seen: set[str] = set()
    for i, q in enumerate(data.get("questions", [])):
        qid = q.get("id", f"<question {i}>")
        if not ID_RE.match(str(qid)):
            problems.append(f"{qid}: not a question id (like S000-Q1.1)")
        if qid in seen:
            problems.append(f"{qid}: listed twice")
        seen.add(qid)
        if q.get("notebook") not in notebooks:
            problems.append(f"{qid}: notebook {q.get('notebook')!r} is not one of the catalog's notebooks")
        if not str(q.get("zh", "")).strip():
            problems.append(f"{qid}: no question line (zh)")
        for c in q.get("claims", []):
            if c.get("verdict") not in VERDICTS:
                problems.append(f"{qid}: verdict {c.get('verdict')!r} is not one of {sorted(VERDICTS)}")
            if c.get("kind") not in KINDS:
                problems.append(f"{qid}: kind {c.get('kind')!r} is not one of {list(KINDS)}")
            if not str(c.get("claim", "")).strip():
                problems.append(f"{qid}: a claim without text")
    if not seen:
        problems.append("'questions' is empty")
    for r in data.get("dubious", []):
        unknown = [x for x in r.get("ids", []) if x not in seen]
        if not r.get("ids") or unknown:
            problems.append(f"dubious row {r.get('row')}: names unknown ids {unknown or '(none)'}")
    rows = [r.get("row") for r in data.get("dubious", [])]
    if rows != list(range(1, len(rows) + 1)):
        problems.append(f"dubious rows must be numbered 1..{len(rows)} in order, got {rows}")
    return problems


def load_catalog(path: Optional[Union[str, Path]] = None) -> Catalog:
    """Read and validate the catalog (default: ``notebooks/questions.json`` of this repository)."""
    path = Path(path) if path is not None else default_path()
    if not path.is_file():
        raise ValueError(f"path={str(path)!r}: no question catalog there; pass the path of notebooks/questions.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    problems = validate(data)
    if problems:
        raise ValueError(f"{path}: {len(problems)} catalog problem(s): " + "; ".join(problems[:10]))
    questions = {
        q["id"]: Question(q["id"], q["notebook"], q["zh"], q.get("en", ""),
                          tuple(ClaimStatus(c["claim"], c["verdict"], c["kind"]) for c in q.get("claims", [])))
        for q in data["questions"]}
    dubious = tuple(DubiousRow(r["row"], tuple(r["ids"]), r["summary"]) for r in data.get("dubious", []))
    return Catalog(dict(data["notebooks"]), questions, dubious)
