"""The house rule: the core library never imports the course's lab wing.

Checked on the source (every import statement of every core module, parsed with ``ast``) and at run
time (importing every core module in a fresh interpreter loads nothing from ``course_lib.lab``).
"""
import ast
import pathlib
import subprocess
import sys

import course_lib

CORE_DIR = pathlib.Path(course_lib.__file__).parent
# the core: the flat modules plus the command-line package (one concept, a module per command group)
CLI_MODULES = sorted((CORE_DIR / "cli").glob("*.py"))
CORE_MODULES = sorted(CORE_DIR.glob("*.py")) + CLI_MODULES


def _imported_modules(path: pathlib.Path) -> list[str]:
    """Absolute names of every module that ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:  # resolve against the module's own package (course_lib or course_lib.cli)
                package = ["course_lib"] + (["cli"] if path.parent.name == "cli" else [])
                package = package[:len(package) - (node.level - 1)]
                base = ".".join(package) + (f".{node.module}" if node.module else "")
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]
    return names


def test_core_modules_exist():
    assert len(CORE_MODULES) >= 15, CORE_MODULES


def test_no_core_module_imports_lab():
    offenders = {p.name: [n for n in _imported_modules(p) if n == "course_lib.lab" or n.startswith("course_lib.lab.")]
                 for p in CORE_MODULES}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"core modules import course_lib.lab: {offenders}"


def test_importing_the_core_loads_no_lab_module():
    names = [p.stem if p.parent == CORE_DIR else f"cli.{p.stem}" for p in CORE_MODULES if p.stem != "__main__"]
    names = [n.removesuffix(".__init__") for n in names]
    code = ("import importlib, sys\n"
            f"for n in {names!r}: importlib.import_module('course_lib.' + n)\n"
            "print(sorted(m for m in sys.modules if m.startswith('course_lib.lab')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"importing the core loaded lab modules: {out}"


def test_detector_sees_a_lab_import(tmp_path):
    # the parser above must actually catch the forms we forbid
    f = tmp_path / "m.py"
    f.write_text("from .lab import probes\nfrom course_lib.lab.viz import x\nimport course_lib.lab\n")
    found = _imported_modules(f)
    assert "course_lib.lab.probes" in found and "course_lib.lab.viz" in found and "course_lib.lab" in found



MAX_LINES = 650
MAX_MODULES = 22
PLUMBING = {"__init__.py", "__main__.py", "_version.py"}       # package machinery, not concepts


def test_no_core_module_is_longer_than_the_limit():
    long = {p.name: n for p in CORE_MODULES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"core modules over {MAX_LINES} lines (split them by concern): {long}"


def test_the_core_stays_small():
    concepts = [p.name for p in CORE_MODULES if p.parent == CORE_DIR and p.name not in PLUMBING] + ["cli/"]
    assert len(concepts) <= MAX_MODULES, f"{len(concepts)} core modules (at most {MAX_MODULES}): {concepts}"


def test_design_doc_lists_every_core_module():
    doc = (CORE_DIR.parent / "docs" / "design.md").read_text(encoding="utf-8")
    names = [p.name if p.parent == CORE_DIR else f"cli/{p.name}" for p in CORE_MODULES]
    missing = [n for n in names if n != "__init__.py" and f"`{n}`" not in doc]
    assert not missing, f"docs/design.md does not list {missing}"
