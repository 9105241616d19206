"""scripts/check_notebooks.py: sync, outputs, orphans, and the notebook standard's rules against the catalog."""
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

CATALOG = {
    "notebooks": {"01": "Tokens", "03": "Padding"},
    "questions": [
        {"id": "S000-Q1", "notebook": "01", "zh": "为什么?", "en": "Why?", "claims": []},
        {"id": "S000-Q1.1", "notebook": "01", "zh": "为什么不?", "en": "Why not?", "claims": []},
        {"id": "S000-Q3", "notebook": "03", "zh": "为什么 mask?", "en": "Why mask?", "claims": []},
    ],
    "dubious": [{"row": 1, "ids": ["S000-Q1.1"], "summary": "a made-up row"}],
}

# a notebook that follows every checked rule of the standard
GOOD = '''# %% [markdown]
# # 01 Tokens
# **S000-Q1** 「为什么?」 *Why?*
#
# **S000-Q1.1** 「为什么不?」 *Why not?*
#
# no-claim S000-Q1: the surface answer states nothing that can be measured

# %%
def helper(x):
    """Short enough to stay in a notebook."""
    y = x + 1
    return y * 2


p = predict("S000-Q1.1 bytes", "how many?")
n = helper(1)
assert n == 4, "helper doubles"

# %%
Claim("S000-Q1.1", "two tokens", "2", str(n), holds=n == 2)

# %% [markdown]
# ## Exercises
#
# **1.** Compute it.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution.
assert helper(0) == 2
'''


def catalog(tmp_path, data=None):
    path = tmp_path / "questions.json"
    path.write_text(json.dumps(data or CATALOG, ensure_ascii=False), encoding="utf-8")
    return cn.load_catalog(path)


def problems_of(tmp_path, py):
    """Rule problems (not sync problems) of a fake notebook 01 against the small catalog."""
    (tmp_path / "01_tokens.py").write_text(py, encoding="utf-8")
    cn.write_all(tmp_path)
    return cn.check(tmp_path, catalog(tmp_path))


@pytest.fixture
def nbdir(tmp_path):
    (tmp_path / "01_tokens.py").write_text(PY, encoding="utf-8")
    cn.write_all(tmp_path)
    return tmp_path


def test_write_then_check_is_clean(nbdir):
    assert (nbdir / "01_tokens.ipynb").exists()
    assert cn.check(nbdir, None) == []


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


def test_good_notebook_passes(tmp_path):
    assert problems_of(tmp_path, GOOD) == []
    rep = cn.reports(tmp_path, catalog(tmp_path))[0]
    assert (rep.quoted, rep.headed, rep.predictions) == (["S000-Q1", "S000-Q1.1"],) * 2 + (["S000-Q1.1 bytes"],)
    assert (rep.asserts, rep.claims, list(rep.no_claim), rep.exercises, rep.solved) == (
        1, ["S000-Q1.1"], ["S000-Q1"], 1, 1)


def test_missing_id(tmp_path):
    bad = GOOD.replace("**S000-Q1** 「为什么?」 *Why?*", "").replace("no-claim S000-Q1:", "no claim:")
    assert problems_of(tmp_path, bad) == [
        "01_tokens.py: does not quote its question ids: S000-Q1",
        "01_tokens.py: ids with neither a Claim row nor a 'no-claim ID: reason' line: S000-Q1"]


def test_id_without_claim_or_reasoned_marker(tmp_path):
    no_row = GOOD.replace('Claim("S000-Q1.1"', 'Claim("S000-Q1"').replace("no-claim S000-Q1:", "no claim:")
    assert problems_of(tmp_path, no_row) == [
        "01_tokens.py: ids with neither a Claim row nor a 'no-claim ID: reason' line: S000-Q1.1"]
    short = GOOD.replace("the surface answer states nothing that can be measured", "none")
    probs = problems_of(tmp_path, short)
    assert any("no-claim S000-Q1 needs a reason" in p for p in probs)
    foreign = GOOD.replace("no-claim S000-Q1:", "no-claim S000-Q1, S000-Q3:")
    assert problems_of(tmp_path, foreign) == [
        "01_tokens.py: no-claim marker names 'S000-Q3', which this notebook does not own"]


def test_literal_holds(tmp_path):
    for lit in ("True", "False"):
        probs = problems_of(tmp_path, GOOD.replace("holds=n == 2", f"holds={lit}"))
        assert probs == [f"01_tokens.py: cell 2 writes holds={lit} literally: compute it from the measurement"]
    assert problems_of(tmp_path, GOOD.replace("holds=n == 2", "holds=None, verdict='history'")) == []


def test_heading_in_code_cell(tmp_path):
    probs = problems_of(tmp_path, GOOD.replace("n = helper(1)", "# ## 3. Next section\nn = helper(1)"))
    assert len(probs) == 1 and "cell 1 is code but holds a markdown heading" in probs[0]
    # ordinary comments, including ones that start with a '#', are fine
    assert problems_of(tmp_path, GOOD.replace("n = helper(1)", "# the #1 case\n# Solution: x\nn = helper(1)")) == []


def test_long_definition_outside_solutions(tmp_path):
    longer = GOOD.replace("    return y * 2", "    y = y + 1\n    y = y + 1\n    y = y + 1\n    y = y + 1\n"
                          "    return y * 2")
    probs = problems_of(tmp_path, longer.replace("assert n == 4", "assert n == 12"))
    assert probs == ["01_tokens.py: cell 1 defines 'helper' over 7 lines (more than 6): "
                     "move it into course_lib with a test"]
    # the same function inside a solution cell is allowed; blank lines and comments do not count
    sol = GOOD + "\n\ndef g():\n    a = 1\n\n    # why\n    b = 2\n    c = 3\n    d = 4\n    e = 5\n    return a\n"
    assert problems_of(tmp_path, sol) == []
    cls = GOOD.replace("p = predict", "class C:\n" + "    a = 1\n" * 7 + "\n\np = predict")
    assert "defines 'C' over 8 lines" in problems_of(tmp_path, cls)[0]


def test_exercise_without_runnable_solution(tmp_path):
    no_cell = GOOD[:GOOD.index("# %% tags=")]
    assert problems_of(tmp_path, no_cell) == ["01_tokens.py: exercise in cell 3 has no solution cell"]
    no_assert = GOOD.replace("assert helper(0) == 2", "print(helper(0))")
    assert problems_of(tmp_path, no_assert) == ["01_tokens.py: solution cell 4 has no assert on the exercise's answer"]
    shown = GOOD.replace(' jupyter={"source_hidden": true}', "")
    assert "does not hide its source" in problems_of(tmp_path, shown)[0]
    two = GOOD.replace("# **1.** Compute it.", "# **1.** Compute it.\n#\n# **2.** And this.")
    assert problems_of(tmp_path, two) == ["01_tokens.py: exercise in cell 3 has no solution cell"]
    # other spellings of an exercise
    for start in ("**Exercise 1 (harder).**", "### Exercise 1", "**Exercise.**"):
        assert problems_of(tmp_path, no_cell.replace("**1.**", start)) == [
            "01_tokens.py: exercise in cell 3 has no solution cell"], start
    # bold numbers outside an Exercises section are not exercises
    assert problems_of(tmp_path, GOOD.replace("# **S000-Q1** ", "# **1.** x\n# **S000-Q1** ")) == []


def test_prediction_keys(tmp_path):
    probs = problems_of(tmp_path, GOOD.replace('predict("S000-Q1.1 bytes"', 'predict("nb01-bytes"'))
    assert len(probs) == 1 and "'nb01-bytes' names no question id" in probs[0]
    probs = problems_of(tmp_path, GOOD.replace('predict("S000-Q1.1 bytes"', 'predict("S000-Q1.1 / S000-Q3"'))
    assert len(probs) == 1 and "names S000-Q3, not owned here" in probs[0]
    kw = GOOD.replace('predict("S000-Q1.1 bytes", "how many?")', 'predict(prompt="how many?", key="S000-Q1 / S000-Q1.1")')
    assert kw != GOOD and problems_of(tmp_path, kw) == []


def test_unknown_notebook_number(tmp_path):
    (tmp_path / "07_other.py").write_text(GOOD, encoding="utf-8")
    assert "07_other.py: notebook 07 is not in the question catalog" in problems_of(tmp_path, GOOD)


def test_report_table(tmp_path):
    problems_of(tmp_path, GOOD)
    reps = cn.reports(tmp_path, catalog(tmp_path))
    md = cn.report_text(reps, markdown=True).splitlines()
    assert md[0].startswith("| NB | ids quoted/owned |") and md[1].startswith("|---|")
    assert md[2] == "| 01_tokens | 2/2 | 2 | 1 | 1 | 1 | 1 | 1/1 | 0 |"
    assert "01_tokens" in cn.report_text(reps)


def test_id_pattern_is_whole_id():
    assert cn.missing_ids("see S000-Q1.1 only", ["S000-Q1"]) == ["S000-Q1"]
    assert cn.missing_ids("S001-Q1-guide", ["S001-Q1"]) == ["S001-Q1"]
    assert cn.missing_ids("(`S001-Q1`) and S000-Q1.", ["S001-Q1", "S000-Q1"]) == []
    assert cn.missing_ids("S001-Q1-hint1,", ["S001-Q1-hint1", "S001-Q1-hint"]) == ["S001-Q1-hint"]
    assert cn.missing_ids("XS000-Q3", ["S000-Q3"]) == ["S000-Q3"]


def test_main_exit_codes(tmp_path, capsys):
    cat = catalog(tmp_path)
    assert cat is not None
    args = ["--notebooks", str(tmp_path), "--catalog", str(tmp_path / "questions.json")]
    (tmp_path / "01_tokens.py").write_text(GOOD, encoding="utf-8")
    assert cn.main(args) == 1 and "has no 01_tokens.ipynb" in capsys.readouterr().out
    assert cn.main(args + ["--write"]) == 0
    assert cn.main(args + ["--markdown"]) == 0 and "| 01_tokens | 2/2 |" in capsys.readouterr().out
    (tmp_path / "01_tokens.py").write_text(GOOD.replace("holds=n == 2", "holds=True"), encoding="utf-8")
    assert cn.main(args) == 1
    out = capsys.readouterr().out
    assert "out of sync" in out and "holds=True literally" in out
    with pytest.raises(ValueError, match="no question catalog"):
        cn.main(["--notebooks", str(tmp_path), "--catalog", str(tmp_path / "absent.json")])


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


def test_readme_report_is_written_between_markers(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("cn_readme", Path(__file__).parent.parent / "scripts" / "check_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{mod.REPORT_START}\nold\n{mod.REPORT_END}\noutro\n")
    mod.write_readme_report(readme, "| a |\n|---|\n")
    text = readme.read_text()
    assert "old" not in text and "| a |" in text and text.startswith("intro") and text.endswith("outro\n")
    readme.write_text("no markers")
    with pytest.raises(SystemExit):
        mod.write_readme_report(readme, "x")
