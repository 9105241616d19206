"""The Socratic widgets' logic: predictions, reveals, claims, formatting (all headless)."""
import math

import pytest

from adapters import commit_prediction, prediction_widget
from course_lib.lab import socratic as s


@pytest.fixture(autouse=True)
def headless(monkeypatch):
    monkeypatch.setenv("COURSE_HEADLESS", "1")


def test_headless_detection(monkeypatch):
    assert s.is_live_frontend() is False
    monkeypatch.delenv("COURSE_HEADLESS")
    # pytest runs without an IPython kernel: still no live front end
    assert s.is_live_frontend() is False


def test_predict_choice_prints_question_and_records_nothing(capsys):
    p = s.predict("S000-Q3", "Does P(pad) rise?", ["rises", "falls"])
    out = capsys.readouterr().out
    assert "PREDICT [S000-Q3] Does P(pad) rise?" in out
    assert "(a) rises" in out and "(b) falls" in out
    assert p.kind == "choice" and not p.committed and p.value is None


def test_predict_kind_inference_and_validation():
    assert s.predict("k", "how many?").kind == "number"
    with pytest.raises(ValueError, match="kind"):
        s.predict("k", "q", kind="slider")
    with pytest.raises(ValueError, match="at least two"):
        s.predict("k", "q", ["only"])
    with pytest.raises(ValueError, match="distinct"):
        s.predict("k", "q", ["a", "a"])
    with pytest.raises(ValueError, match="no choices"):
        s.predict("k", "q", ["a", "b"], kind="number")


def test_record_choice_by_text_or_index():
    p = s.predict("k", "q", ["x", "y", "z"])
    assert p.record(2).value == "z" and p.committed
    assert p.record("x").value == "x"
    with pytest.raises(ValueError, match="one of"):
        p.record("w")
    with pytest.raises(ValueError, match="index"):
        p.record(3)


def test_record_number():
    p = s.predict("k", "q")
    assert p.record("2.5").value == 2.5
    with pytest.raises(ValueError):
        p.record("many")
    with pytest.raises(ValueError):
        p.record(float("nan"))


def test_compare_number_relative_and_zero():
    assert s.compare_number(105, 100, 0.05) is True
    assert s.compare_number(106, 100, 0.05) is False
    assert s.compare_number(-0.04, 0.0, 0.05) is True  # absolute when measured is 0
    assert s.compare_number(None, 1.0) is None
    with pytest.raises(ValueError):
        s.compare_number(1, 1, -0.1)


def test_compare_choice():
    assert s.compare_choice("a", "a") is True
    assert s.compare_choice("a", "b") is False
    assert s.compare_choice(None, "b") is None


def test_reveal_choice_right_wrong_and_missing(capsys):
    p = s.predict("k", "q", ["up", "down"])
    r = s.reveal(p, "down")
    assert r.correct is None and "no prediction was recorded" in r.text
    p.record("up")
    r = s.reveal(p, measured="P(pad)=0.9", answer="up", note="see the plot")
    assert r.correct is True and "you predicted up: right" in r.text and "see the plot" in r.text
    assert "measured: P(pad)=0.9" in r.text
    r = s.reveal(p, measured=0.1, answer=1)
    assert r.correct is False and r.answer == "down"
    assert "REVEAL [k]" in capsys.readouterr().out
    with pytest.raises(ValueError, match="answer"):
        s.reveal(p, measured=0.3)  # neither an answer nor a measured choice


def test_reveal_number(capsys):
    p = s.predict("k", "q")
    p.record(0.34)
    r = s.reveal(p, 0.413, tolerance=0.1)
    assert r.correct is False and "you predicted 0.34: wrong" in r.text and "0.413" in r.text
    r = s.reveal(p, 0.36)
    assert r.correct is True and r.tolerance == s.DEFAULT_TOLERANCE
    with pytest.raises(ValueError, match="number"):
        s.reveal(p, "lots")
    with pytest.raises(ValueError, match="predict"):
        s.reveal("not a prediction", 1.0)


def test_reveal_result_does_not_display_twice():
    p = s.predict("k", "q")
    r = s.reveal(p, 1.0)
    assert r._ipython_display_() is None and str(r) == r.text


def test_claim_verdicts():
    assert s.Claim("S", "c", "1", "2", holds=False).verdict == "does not hold"
    assert s.Claim("S", "c", "1", "1", holds=True).verdict == "holds"
    assert s.Claim("S", "c", "1", "?").verdict == "not tested"
    c = s.Claim("S", "c", "1", "1", holds=True, verdict="holds only at d >= 64")
    assert c.verdict == "holds only at d >= 64"
    import numpy as np
    assert s.Claim("S", "c", 1, 2.5, holds=np.bool_(False)).holds is False
    assert s.Claim("S", "c", 1, 2.5).measured == "2.5"


def test_claims_table_rows_text_html(capsys):
    t = s.claims_table([
        s.Claim("S000-Q3.2", "waste <b>", "34%", "41%", holds=False, citation="recomputed here"),
        s.Claim("S000-Q1.1", "n^2 cost", "36 -> 4", "36 -> 4", holds=True),
    ])
    assert t.rows[0] == ("S000-Q3.2", "waste <b>", "34%", "41%", "does not hold", "recomputed here")
    assert t.rows[1][4] == "holds"
    out = capsys.readouterr().out
    assert "DOES NOT HOLD" in out and "S000-Q1.1" in out
    h = t.to_html()
    assert h.count("<tr>") == 3 and "waste &lt;b&gt;" in h
    with pytest.raises(ValueError):
        s.claims_table(["not a claim"])


def test_fmt():
    assert s.fmt(0.41322) == "0.413"
    assert s.fmt(25_830_912) == "25,830,912"
    assert s.fmt(1.4e-11) == "1.4e-11"
    assert s.fmt(3.14159) == "3.14"
    assert s.fmt(2.0) == "2"
    assert s.fmt("x") == "x"
    assert s.fmt(float("inf")) == "inf"
    import torch
    assert s.fmt(torch.tensor(0.5)) == "0.5"


def test_widget_commit_records_prediction():
    pytest.importorskip("ipywidgets")
    p = s.Prediction("k", "q", ["up", "down"], "choice")
    box = prediction_widget(p)
    control = box.children[0]
    commit_prediction(p)  # nothing chosen yet
    assert not p.committed
    control.value = "down"
    commit_prediction(p)
    assert p.committed and p.value == "down"
    q = s.Prediction("n", "q", None, "number")
    box = prediction_widget(q)
    box.children[0].value = 0.41
    commit_prediction(q)
    assert q.committed and math.isclose(q.value, 0.41)
    r = s.reveal(q, 0.413, tolerance=0.05)
    assert r.correct is True


def test_essence_and_question_print(capsys):
    s.essence("The mask decides   which positions teach.")
    s.question("S000-Q3", "为什么需要loss_mask？", "Why a loss mask?")
    out = capsys.readouterr().out
    assert "THE ESSENCE" in out and "S000-Q3" in out and "loss_mask" in out
