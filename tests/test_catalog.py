"""course_lib.lab.catalog and notebooks/questions.json: every question id, its notebook and its claims."""
import json
import re

import pytest

from course_lib.lab.catalog import VERDICTS, default_path, load_catalog, validate

# questions per notebook, counted by hand from the course plan (an independent tally, not the file)
PER_NOTEBOOK = {"01": 3, "02": 9, "03": 3, "04": 3, "05": 10, "06": 9, "07": 2, "08": 3, "09": 5, "10": 15,
                "11": 27, "12": 10, "13": 3, "14": 2, "15": 2, "16": 2, "17": 6, "18": 5, "19": 3, "20": 6,
                "21": 8, "22": 5, "23": 11, "24": 9}
PER_SEED = {"S000": 43, "S001": 86, "S002": 7, "S003": 15, "S004": 10}
CJK = re.compile(r"[\u4e00-\u9fff]")
CJK_OR_FULLWIDTH = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def test_161_unique_ids_each_in_one_of_24_notebooks(cat):
    raw = json.loads(default_path().read_text(encoding="utf-8"))
    ids = [q["id"] for q in raw["questions"]]
    assert len(ids) == len(set(ids)) == 161
    assert sorted(cat.notebooks) == [f"{i:02d}" for i in range(1, 25)]
    owners = {}
    for num in cat.notebooks:
        for qid in cat.ids_for(num):
            owners.setdefault(qid, []).append(num)
    assert set(owners) == set(ids) and all(len(v) == 1 for v in owners.values())
    assert {n: len(cat.ids_for(n)) for n in cat.notebooks} == PER_NOTEBOOK
    assert {s: sum(q.startswith(s) for q in ids) for s in PER_SEED} == PER_SEED


def test_question_lines_and_claims(cat):
    for q in cat.questions.values():
        assert CJK_OR_FULLWIDTH.search(q.zh), q.id   # the document's own line
        assert q.en.strip(), q.id
        for c in q.claims:
            assert c.verdict in VERDICTS and not CJK.search(c.claim), (q.id, c)   # our words, in English
    verdicts = {c.verdict for q in cat.questions.values() for c in q.claims}
    assert verdicts == set(VERDICTS)   # every verdict word is in use
    assert cat.ids_for("03") == ["S000-Q3", "S000-Q3.1", "S000-Q3.2"]
    assert cat.notebook_of("S001-Q3-guide") == "07"


def test_dubious_rows_name_known_ids(cat):
    assert [r.row for r in cat.dubious] == list(range(1, 31))
    for r in cat.dubious:
        assert r.ids and all(qid in cat.questions for qid in r.ids), r
        assert r.summary.strip() and not CJK.search(r.summary)
    assert [r.row for r in cat.dubious_for("S001-Q3-followup")] == [6, 30]


def test_bad_catalogs_are_refused(tmp_path):
    good = {"notebooks": {"01": "Tokens"},
            "questions": [{"id": "S000-Q1", "notebook": "01", "zh": "为什么?", "en": "Why?",
                           "claims": [{"claim": "c", "verdict": "holds", "kind": "exact-math"}]}],
            "dubious": [{"row": 1, "ids": ["S000-Q1"], "summary": "s"}]}
    assert validate(good) == []
    dup = dict(good, questions=good["questions"] * 2)
    assert validate(dup) == ["S000-Q1: listed twice"]
    elsewhere = dict(good, questions=[dict(good["questions"][0], notebook="02")])
    assert "notebook '02'" in validate(elsewhere)[0]
    verdict = dict(good, questions=[dict(good["questions"][0], claims=[{"claim": "c", "verdict": "true",
                                                                         "kind": "exact-math"}])])
    assert "verdict 'true'" in validate(verdict)[0]
    unknown = dict(good, dubious=[{"row": 1, "ids": ["S009-Q1"], "summary": "s"}])
    assert validate(unknown) == ["dubious row 1: names unknown ids ['S009-Q1']"]
    path = tmp_path / "q.json"
    path.write_text(json.dumps(unknown), encoding="utf-8")
    with pytest.raises(ValueError, match="S009-Q1"):
        load_catalog(path)
    with pytest.raises(ValueError, match="path="):
        load_catalog(tmp_path / "absent.json")
    with pytest.raises(ValueError, match="qid='S009-Q1'"):
        load_catalog().notebook_of("S009-Q1")
