"""scripts/check_notebooks.py: sync, outputs, orphans and question-id coverage."""
import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("jupytext")

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("check_notebooks", REPO / "scripts" / "check_notebooks.py")
cn = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cn)

PY = '''# %% [markdown]
# # 01 Tokens
# `S000-Q1` 为什么? and `S000-Q1.1`

# %%
x = 1

# %% tags=["solution"] jupyter={"source_hidden": true}
print(x)
'''

CATALOG = """# Catalog
## 7. Other
### NB01: wrong section
* Questions: S999-Q9
## 8. Proposed course: 24 notebooks
### NB01: From text to token IDs: vocabulary-size trade-offs
* Questions: S000-Q1, S000-Q1.1
* Headline experiments: (1) ...
### NB03: Padding and the loss mask *(owner topic)*
* Questions: S000-Q3, S000-Q3.1, S000-Q3.2
## 9. Library hooks
"""


@pytest.fixture
def nbdir(tmp_path):
    (tmp_path / "01_tokens.py").write_text(PY, encoding="utf-8")
    cn.write_all(tmp_path)
    return tmp_path


def test_write_then_check_is_clean(nbdir):
    assert (nbdir / "01_tokens.ipynb").exists()
    assert cn.check(nbdir, cn.parse_catalog(CATALOG)) == []


def test_write_is_deterministic(nbdir):
    before = (nbdir / "01_tokens.ipynb").read_text()
    assert cn.write_all(nbdir) == []  # nothing to rewrite
    assert (nbdir / "01_tokens.ipynb").read_text() == before
    nb = json.loads(before)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert nb["cells"][2]["metadata"]["tags"] == ["solution"]
    assert nb["cells"][2]["metadata"]["jupyter"] == {"source_hidden": True}


def test_edit_in_py_is_out_of_sync(nbdir):
    (nbdir / "01_tokens.py").write_text(PY.replace("x = 1", "x = 2"), encoding="utf-8")
    problems = cn.check(nbdir, None)
    assert len(problems) == 1 and "out of sync" in problems[0] and "cell 1 (source)" in problems[0]


def test_metadata_edit_is_out_of_sync(nbdir):
    (nbdir / "01_tokens.py").write_text(PY.replace('tags=["solution"] ', ""), encoding="utf-8")
    assert "metadata" in cn.check(nbdir, None)[0]


def test_volatile_metadata_is_ignored(nbdir):
    path = nbdir / "01_tokens.ipynb"
    nb = json.loads(path.read_text())
    nb["metadata"]["language_info"] = {"name": "python", "version": "3.12.1"}
    nb["metadata"]["kernelspec"]["display_name"] = "course"
    for i, c in enumerate(nb["cells"]):
        c["id"] = f"other{i}"
        c["metadata"]["execution"] = {"iopub.status.busy": "2026-01-01"}
    path.write_text(json.dumps(nb))
    assert cn.check(nbdir, None) == []


def test_stored_outputs_are_flagged(nbdir):
    path = nbdir / "01_tokens.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["1\n"]}]
    nb["cells"][1]["execution_count"] = 1
    path.write_text(json.dumps(nb))
    problems = cn.check(nbdir, None)
    assert problems == ["01_tokens.ipynb has stored outputs (regenerate it with --write)"]


def test_orphans(nbdir):
    (nbdir / "02_next.py").write_text(PY, encoding="utf-8")
    (nbdir / "03_mask.ipynb").write_text((nbdir / "01_tokens.ipynb").read_text())
    problems = cn.check(nbdir, None)
    assert any("02_next.py has no 02_next.ipynb" in p for p in problems)
    assert any("03_mask.ipynb has no 03_mask.py" in p for p in problems)


def test_parse_catalog_reads_section_8_only():
    cat = cn.parse_catalog(CATALOG)
    assert sorted(cat) == ["01", "03"]
    assert cat["01"]["ids"] == ["S000-Q1", "S000-Q1.1"]
    assert cat["01"]["title"] == "From text to token IDs: vocabulary-size trade-offs"
    assert cat["03"]["title"] == "Padding and the loss mask"
    with pytest.raises(ValueError):
        cn.parse_catalog("# nothing here")


def test_coverage_missing_ids(nbdir):
    cat = cn.parse_catalog(CATALOG.replace("S000-Q1, S000-Q1.1", "S000-Q1, S000-Q1.1, S000-Q1.2"))
    problems = cn.check(nbdir, cat)
    assert problems == ["01_tokens.py does not quote its question ids: S000-Q1.2"]


def test_id_pattern_is_whole_id():
    assert cn.missing_ids("see S000-Q1.1 only", ["S000-Q1"]) == ["S000-Q1"]
    assert cn.missing_ids("S001-Q1-guide", ["S001-Q1"]) == ["S001-Q1"]
    assert cn.missing_ids("(`S001-Q1`) and S000-Q1.", ["S001-Q1", "S000-Q1"]) == []
    assert cn.missing_ids("S001-Q1-hint1,", ["S001-Q1-hint1", "S001-Q1-hint"]) == ["S001-Q1-hint"]
    assert cn.missing_ids("XS000-Q3", ["S000-Q3"]) == ["S000-Q3"]


def test_real_catalog_if_present():
    path = cn.find_questions()
    if path is None:
        pytest.skip("questions.md not present beside the repository")
    cat = cn.parse_catalog(path.read_text(encoding="utf-8"))
    assert len(cat) == 24
    assert sum(len(v["ids"]) for v in cat.values()) == 161
    assert cat["03"]["ids"] == ["S000-Q3", "S000-Q3.1", "S000-Q3.2"]


def test_main_exit_codes(nbdir, capsys):
    assert cn.main(["--notebooks", str(nbdir), "--questions", str(nbdir / "absent.md")]) in (0, 1)
    (nbdir / "01_tokens.py").write_text(PY + "\n# %%\ny = 3\n", encoding="utf-8")
    assert cn.main(["--notebooks", str(nbdir)]) == 1
    assert "out of sync" in capsys.readouterr().out
    assert cn.main(["--notebooks", str(nbdir), "--write"]) in (0, 1)  # coverage may fail on the real catalog
    assert cn.check(nbdir, None) == []


mspec = importlib.util.spec_from_file_location("measure_notebooks", REPO / "scripts" / "measure_notebooks.py")
mn = importlib.util.module_from_spec(mspec)
mspec.loader.exec_module(mn)


def test_measure_readme_table_update():
    text = ("intro\n" + mn.START + "\n| NB | title | question ids | status | t | m |\n|---|---|---|---|---|---|\n"
            "| 01 | Tokens | S000-Q1 | planned |  |  |\n| 02 | Shift | S000-Q2 | planned | 50 | 700 |\n"
            + mn.END + "\noutro\n")
    text = text.replace("| t | m |", "| fast: time (s) | fast: peak memory (MB) |")  # an older, 6-column table
    out = mn.update_readme(text, {"01": {"rc": 0, "wall_s": 61.4, "cpu_s": 30.2, "peak_mb": 812.2}}, {"01", "02"},
                           "_Measured x_")
    rows = mn.parse_table(out.split(mn.START)[1].split(mn.END)[0])
    assert rows[0] == ["01", "Tokens", "S000-Q1", "written", "61", "30", "812"]
    assert rows[1] == ["02", "Shift", "S000-Q2", "written", "50", "", "700"]  # not measured: figures kept
    assert out.startswith("intro\n") and out.endswith("outro\n") and "_Measured x_" in out
    failed = mn.update_readme(out, {"02": {"rc": 1, "wall_s": 3.0, "cpu_s": 2.0, "peak_mb": 90.0}}, set())
    assert "| 3 (failed) | 2 | 90 |" in failed and "_Measured x_" in failed
    with pytest.raises(ValueError):
        mn.update_readme("no markers", {}, set())


def test_write_only_selected(nbdir):
    (nbdir / "02_next.py").write_text(PY, encoding="utf-8")
    assert cn.write_all(nbdir, ["03"]) == []
    assert [p.name for p in cn.write_all(nbdir, ["02"])] == ["02_next.ipynb"]


def test_metadata_filter_order_is_canonical(nbdir):
    assert cn.canonical_filter("tags,jupyter,-all") == cn.canonical_filter("jupyter,tags,-all") == "jupyter,tags,-all"
    path = nbdir / "01_tokens.ipynb"
    nb = json.loads(path.read_text())
    nb["metadata"]["jupytext"]["cell_metadata_filter"] = "tags,jupyter,-all"
    path.write_text(json.dumps(nb))
    assert cn.check(nbdir, None) == []


def test_conversion_is_identical_across_processes(tmp_path):
    import subprocess
    import sys
    (tmp_path / "01_tokens.py").write_text(PY, encoding="utf-8")
    code = ("import importlib.util, sys; s = importlib.util.spec_from_file_location('c', sys.argv[1]); "
            "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); "
            "print(m.py_to_ipynb_text(open(sys.argv[2]).read()))")
    outs = {subprocess.run([sys.executable, "-c", code, str(REPO / "scripts" / "check_notebooks.py"),
                            str(tmp_path / "01_tokens.py")], capture_output=True, text=True,
                           env={**__import__("os").environ, "PYTHONHASHSEED": str(seed)}).stdout
            for seed in (1, 2, 3)}
    assert len(outs) == 1 and outs.pop().strip().startswith("{")
