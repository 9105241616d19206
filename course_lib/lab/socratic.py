"""The Socratic loop in a notebook: predict first, measure, reveal, and tabulate the documents' claims.

Public API (notebooks code against it)::

    p = predict("S000-Q3.1", "Without a mask, does P(pad) after the last real token go up?",
                ["goes up", "stays the same", "goes down"])
    ...experiment...
    reveal(p, measured=f"P(pad) = {p_pad:.2f}", answer="goes up")

    q = predict("pad-waste", "What fraction of the attention scores is padding?", kind="number")
    reveal(q, measured=0.41, tolerance=0.1)

    claims_table([Claim("S000-Q3.2", "padding waste", "34%", f"{waste:.0%}", holds=abs(waste - .34) < .01)])

In JupyterLab (a live kernel with ipywidgets) ``predict`` shows a control and a *commit* button that
records the learner's answer in the returned :class:`Prediction`; ``reveal`` then says "you predicted X,
we measured Y: right/wrong". In a headless run (nbval, a script, or ``COURSE_HEADLESS=1``) nothing can
be clicked: ``predict`` prints the question and ``reveal`` prints the measured answer. Every decision
(comparison, formatting, verdicts) is a plain function below, so unit tests exercise all of it.
"""
from __future__ import annotations

import html
import math
import os
import textwrap
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from ..progress import in_notebook

__all__ = [
    "Prediction", "RevealResult", "Claim", "ClaimsTable",
    "predict", "reveal", "claims_table", "question", "essence",
    "is_live_frontend", "compare_choice", "compare_number", "verdict_for", "fmt",
    "format_prediction_prompt", "format_reveal",
]

DEFAULT_TOLERANCE = 0.25  # relative, for number predictions
KINDS = ("choice", "number")


# ----------------------------------------------------------------------------- environment

def is_live_frontend() -> bool:
    """True when widgets can be shown: an IPython *kernel* is running and ipywidgets imports.

    ``COURSE_HEADLESS=1`` forces text mode (useful for scripts and CI). A terminal IPython shell or a
    plain ``python`` process has no front end, so it is text mode as well. nbval does run a kernel; the
    widgets are then displayed but never clicked, which is why every widget call also prints text.
    """
    if os.environ.get("COURSE_HEADLESS", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    if not in_notebook():                       # a kernel with a front end (course_lib.progress decides)
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def _show(text: str, html_text: Optional[str] = None) -> None:
    """Display rich HTML (with a plain-text twin) in IPython; print the text anywhere else."""
    if html_text is not None and _in_ipython() and is_live_frontend():
        from IPython.display import display
        display({"text/plain": text, "text/html": html_text}, raw=True)
    else:
        print(text)


# ----------------------------------------------------------------------------- formatting

def fmt(x: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, thousands kept readable; other values via ``str``.

    >>> fmt(0.41322), fmt(25_830_912), fmt(3), fmt(1.4e-11)
    ('0.413', '25,830,912', '3', '1.4e-11')
    """
    if isinstance(x, bool) or not isinstance(x, (int, float)) and not hasattr(x, "item"):
        return str(x)
    if hasattr(x, "item"):  # numpy / torch scalars
        try:
            x = x.item()
        except (ValueError, RuntimeError):
            return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if x == 0:
        return "0"
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    mag = abs(x)
    if mag >= 1e6 or mag < 1e-3:
        return f"{x:.{digits}g}".replace("e-0", "e-").replace("e+0", "e+")
    return f"{x:.{digits}g}" if mag < 1 else f"{x:,.{max(digits - 1 - int(math.floor(math.log10(mag))), 0)}f}"


def format_prediction_prompt(key: str, prompt: str, choices: Optional[Sequence[str]], kind: str) -> str:
    """The static text a headless run prints for a prediction."""
    lines = [f"PREDICT [{key}] {prompt}"]
    if kind == "choice":
        for i, c in enumerate(choices or []):
            lines.append(f"   ({chr(ord('a') + i)}) {c}")
    else:
        lines.append("   (a number)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- predictions

@dataclass
class Prediction:
    """A learner's prediction, filled in by the widget's *commit* button (or by :meth:`record`)."""

    key: str
    prompt: str
    choices: Optional[list[str]] = None
    kind: str = "choice"
    value: Any = None
    committed: bool = False
    widget: Any = field(default=None, repr=False, compare=False)

    def record(self, value: Any) -> "Prediction":
        """Store an answer: a choice (its text or its index) or a number. Raises ``ValueError`` if invalid."""
        if self.kind == "choice":
            value = _resolve_choice(value, self.choices or [], "value")
        else:
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"value={value!r} must be a number for a number prediction") from None
            if math.isnan(value):
                raise ValueError("value=nan is not a prediction")
        self.value = value
        self.committed = True
        return self


def _resolve_choice(value: Any, choices: Sequence[str], name: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < len(choices):
            raise ValueError(f"{name}={value} must be an index in [0, {len(choices) - 1}] or one of {list(choices)}")
        return choices[value]
    if value in choices:
        return value
    raise ValueError(f"{name}={value!r} must be one of {list(choices)} (or its index)")


def predict(key: str, prompt: str, choices: Optional[list[str]] = None, *,
            kind: Optional[str] = None) -> Prediction:
    """Ask the learner to commit to a prediction before the experiment runs.

    ``kind`` is ``"choice"`` when ``choices`` are given, ``"number"`` otherwise. Always prints the
    question; in a live front end it also shows a control and a *commit* button.
    """
    if kind is None:
        kind = "choice" if choices else "number"
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} must be one of {KINDS}")
    if kind == "choice":
        if not choices or len(choices) < 2:
            raise ValueError(f"choices={choices!r}: a choice prediction needs at least two choices")
        choices = [str(c) for c in choices]
        if len(set(choices)) != len(choices):
            raise ValueError(f"choices={choices!r} must be distinct")
    elif choices:
        raise ValueError("a number prediction takes no choices (drop choices or use kind='choice')")
    p = Prediction(key=str(key), prompt=str(prompt), choices=list(choices) if choices else None, kind=kind)
    print(format_prediction_prompt(p.key, p.prompt, p.choices, kind))
    if is_live_frontend():
        try:
            p.widget = _build_widget(p)
            from IPython.display import display
            display(p.widget)
        except Exception as exc:  # a broken widget stack must never break the notebook
            print(f"   (widgets unavailable: {exc}; the prediction is not recorded)")
    else:
        print("   (headless run: no prediction is recorded; think of your answer, then read on)")
    return p


def _build_widget(p: Prediction):
    import ipywidgets as w

    status = w.HTML(value="<i>not committed yet</i>")
    if p.kind == "choice":
        short = len(p.choices) <= 5 and all(len(c) <= 14 for c in p.choices)
        cls = w.ToggleButtons if short else w.RadioButtons
        control = cls(options=p.choices, value=None, layout=w.Layout(width="auto"))
    else:
        control = w.FloatText(value=0.0, description="your guess:", layout=w.Layout(width="260px"))
    button = w.Button(description="commit", button_style="primary", icon="check")

    def on_commit(_btn=None):
        if control.value is None:
            status.value = "<span style='color:#b00'>choose an answer first</span>"
            return
        try:
            p.record(control.value)
        except ValueError as exc:
            status.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
            return
        status.value = f"recorded: <b>{html.escape(fmt(p.value))}</b> (run on; the reveal will compare)"

    button.on_click(on_commit)
    p._on_commit = on_commit  # for tests: simulates a click
    return w.VBox([control, w.HBox([button, status])])


# ----------------------------------------------------------------------------- reveal

def compare_choice(predicted: Optional[str], answer: Optional[str]) -> Optional[bool]:
    """True/False when both are known, ``None`` when either is missing."""
    if predicted is None or answer is None:
        return None
    return predicted == answer


def compare_number(predicted: Optional[float], measured: float, tolerance: float = DEFAULT_TOLERANCE) -> Optional[bool]:
    """Is ``predicted`` within a *relative* ``tolerance`` of ``measured``? ``None`` without a prediction.

    When ``measured`` is 0 the tolerance is read as absolute.
    """
    if predicted is None:
        return None
    if tolerance < 0:
        raise ValueError(f"tolerance={tolerance} must be >= 0")
    measured = float(measured)
    scale = abs(measured) if measured != 0 else 1.0
    return abs(float(predicted) - measured) <= tolerance * scale


@dataclass
class RevealResult:
    """What ``reveal`` decided; ``correct`` is ``None`` when nothing was predicted (headless runs)."""

    key: str
    kind: str
    predicted: Any
    measured: Any
    answer: Any
    correct: Optional[bool]
    tolerance: Optional[float]
    note: str = ""
    text: str = ""

    def show(self) -> None:
        _show(self.text, _reveal_html(self))

    def _ipython_display_(self) -> None:  # reveal() already displayed it; don't repeat as Out[]
        return None

    def __str__(self) -> str:
        return self.text


def format_reveal(key: str, kind: str, predicted: Any, measured: Any, answer: Any,
                  correct: Optional[bool], tolerance: Optional[float], note: str = "") -> str:
    """The reveal sentence. Pure function: tests pin its wording."""
    m = fmt(measured)
    if kind == "choice":
        lines = [f"REVEAL [{key}] answer: {answer}" + (f"  (measured: {m})" if m != str(answer) else "")]
    else:
        lines = [f"REVEAL [{key}] measured: {m}"]
    if correct is None:
        lines.append("   no prediction was recorded" if predicted is None else "   nothing to compare with")
    else:
        verdict = "right" if correct else "wrong"
        if kind == "number":
            lines.append(f"   you predicted {fmt(predicted)}: {verdict} (tolerance ±{tolerance:.0%} relative)")
        else:
            lines.append(f"   you predicted {predicted!s}: {verdict}")
    if note:
        lines.append("   " + note)
    return "\n".join(lines)


def _reveal_html(r: RevealResult) -> str:
    colour = {True: "#1a7f37", False: "#b00", None: "#555"}[r.correct]
    body = "<br>".join(html.escape(line.strip()) for line in r.text.splitlines())
    return (f"<div style='border-left:4px solid {colour};padding:4px 10px;margin:4px 0'>"
            f"{body}</div>")


def reveal(prediction: Prediction, measured: Any, *, answer: Any = None,
           tolerance: Optional[float] = None, note: str = "") -> RevealResult:
    """Show the measured answer next to the learner's prediction (if one was committed).

    choice: ``answer`` is the right choice (its text or index); without it, ``measured`` must itself be
    one of the choices. number: ``measured`` is compared with the prediction within a relative
    ``tolerance`` (default 25%).
    """
    if not isinstance(prediction, Prediction):
        raise ValueError(f"prediction={prediction!r} must be the object returned by predict()")
    predicted = prediction.value if prediction.committed else None
    if prediction.kind == "choice":
        if answer is None:
            answer = measured
        answer = _resolve_choice(answer, prediction.choices or [], "answer")
        correct = compare_choice(predicted, answer)
        tol = None
    else:
        try:
            measured_f = float(measured)
        except (TypeError, ValueError):
            raise ValueError(f"measured={measured!r} must be a number for a number prediction") from None
        tol = DEFAULT_TOLERANCE if tolerance is None else float(tolerance)
        correct = compare_number(predicted, measured_f, tol)
        measured = measured_f
    text = format_reveal(prediction.key, prediction.kind, predicted, measured, answer, correct, tol, note)
    result = RevealResult(prediction.key, prediction.kind, predicted, measured, answer, correct, tol, note, text)
    result.show()
    return result


# ----------------------------------------------------------------------------- claims

def verdict_for(holds: Optional[bool]) -> str:
    """The verdict word derived from a measurement: "holds", "does not hold" or "not tested"."""
    if holds is None:
        return "not tested"
    return "holds" if holds else "does not hold"


@dataclass
class Claim:
    """One quantitative claim of a source document, next to what this notebook measured.

    ``holds`` should be computed from the measurement (``holds=abs(measured - 0.34) < 0.01``), never
    typed in; ``verdict`` overrides the derived word for nuanced cases ("holds only at scale X").
    """

    source: str
    claim: str
    claimed: str
    measured: str
    holds: Optional[bool] = None
    verdict: Optional[str] = None
    citation: str = ""

    def __post_init__(self) -> None:
        if self.holds is not None:
            self.holds = bool(self.holds)  # numpy/torch bools become plain bools
        if self.verdict is None:
            self.verdict = verdict_for(self.holds)
        self.claimed, self.measured = str(self.claimed), str(self.measured)


CLAIM_COLUMNS = ("source", "claim", "claimed", "measured", "verdict", "citation")


@dataclass
class ClaimsTable:
    claims: list[Claim]

    @property
    def rows(self) -> list[tuple[str, str, str, str, str, str]]:
        return [(c.source, c.claim, c.claimed, c.measured, c.verdict, c.citation) for c in self.claims]

    def to_text(self, width: int = 100) -> str:
        lines = ["CLAIMS"]
        for i, (src, claim, claimed, measured, verdict, cite) in enumerate(self.rows, 1):
            lines.append(f"{i}. [{src}] {claim}")
            lines.append(f"   claimed:  {claimed}")
            lines.append(f"   measured: {measured}")
            lines.append(f"   verdict:  {verdict.upper()}")
            if cite:
                lines.extend(textwrap.wrap(cite, width, initial_indent="   source:   ",
                                           subsequent_indent="             "))
        return "\n".join(lines)

    def to_html(self) -> str:
        head = "".join(f"<th style='text-align:left'>{c}</th>" for c in CLAIM_COLUMNS)
        body = []
        for c in self.claims:
            colour = {True: "#1a7f37", False: "#b00", None: "#555"}[c.holds]
            cells = [html.escape(c.source), html.escape(c.claim), html.escape(c.claimed), html.escape(c.measured),
                     f"<b style='color:{colour}'>{html.escape(c.verdict)}</b>", html.escape(c.citation)]
            body.append("<tr>" + "".join(f"<td style='text-align:left;vertical-align:top'>{x}</td>"
                                         for x in cells) + "</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    def show(self) -> None:
        _show(self.to_text(), self.to_html())

    def _ipython_display_(self) -> None:  # claims_table() already displayed it
        return None

    def __str__(self) -> str:
        return self.to_text()


def claims_table(claims: list[Claim]) -> ClaimsTable:
    """Display the claims (HTML in a live front end, text otherwise) and return the table."""
    claims = list(claims)
    for c in claims:
        if not isinstance(c, Claim):
            raise ValueError(f"claims must hold Claim objects, got {type(c).__name__}")
    table = ClaimsTable(claims)
    table.show()
    return table


# ----------------------------------------------------------------------------- prose helpers

def question(qid: str, zh: str, en: str) -> None:
    """Show a catalogued question (optional: notebooks quote their ids in markdown anyway)."""
    text = f"[{qid}] {zh}\n   {en}"
    _show(text, f"<p><code>{html.escape(qid)}</code> {html.escape(zh)}<br><i>{html.escape(en)}</i></p>")


def essence(text: str) -> None:
    """Show "the essence" paragraph, boxed in a live front end, plain text otherwise."""
    clean = textwrap.dedent(text).strip()
    _show("THE ESSENCE\n" + textwrap.fill(clean, 100),
          "<div style='border:1px solid #888;border-radius:6px;padding:8px 12px'><b>The essence.</b> "
          + html.escape(clean) + "</div>")
