"""How gradviz objects show themselves in Jupyter (and any front end that reads IPython's
`_repr_*_` methods): pictures, formulas and tables where a person expects them.

| object | shows as |
|---|---|
| a `Node`, a `Graph` (up to `MAX_NODES` nodes) | its structural diagram (SVG) |
| a `Backprop` (`gv.backprop(f, ...)`) | the diagram with values, gradients and local derivatives |
| an `Explanation` (`explain(...)`) | its LaTeX, factor by factor |
| a `GradientReport`, a `ClaimCheck` | an HTML table |
| `steps(...)`'s list of paths (`StepPaths`) | the stepper page inline, in an iframe |
| a training `History` (`TrainResult.history`) | loss and accuracy curves (SVG) |
| a `TrainResult` | its figures (HTML table) and the curves |

The classes delegate to the functions here, so nothing is imported until something is shown:
`import gradviz` imports neither IPython nor graphviz nor matplotlib. `repr()` of every object
is unchanged. Bigger graphs show their text `repr` only (drawing hundreds of nodes inline helps
nobody; `gv.draw` still draws them).
"""
from __future__ import annotations

import html
import os
import re
from typing import Iterable

#: The most nodes a node, graph or backprop result draws inline.
MAX_NODES = 60

_GREEN, _RED, _AMBER, _GREY = "#1a7f37", "#cf222e", "#9a6700", "#57606a"
_TABLE = ('style="border-collapse: collapse; font-family: monospace; font-size: 13px; '
          'text-align: left"')
_CELL = 'style="padding: 2px 10px; border-bottom: 1px solid #d0d7de; text-align: left"'


# -- graphs ---------------------------------------------------------------------------------------
def graph_svg(outputs, limit: int = MAX_NODES) -> str | None:
    """SVG of the structural diagram of `outputs` (a node, several nodes, or a `Graph`), or None
    when it has more than `limit` nodes."""
    from gradviz.core.ir import Graph, Node, toposort

    if isinstance(outputs, Graph):
        count, outputs = len(outputs.nodes), list(outputs.outputs)
    else:
        count = len(toposort(outputs))
    if count > limit:
        return None
    from gradviz.render.diagram import draw

    if not isinstance(outputs, Node) and len(outputs) == 1:
        outputs = outputs[0]
    return draw(outputs)._repr_svg_()


def backprop_svg(result, limit: int = MAX_NODES) -> str | None:
    """SVG of a `Backprop` result's diagram: forward values, gradients and local derivatives
    (None past `limit` nodes)."""
    if len(result.graph.nodes) > limit:
        return None
    from gradviz.render.diagram import draw

    point = {n: result.values[n] for n in result.graph.variables()}
    return draw(result.output, point)._repr_svg_()


# -- formulas -------------------------------------------------------------------------------------
def explanation_latex(explanation) -> str:
    """An `Explanation`'s LaTeX for a notebook: each block of `.latex()` in its own `$$ $$`."""
    blocks, current = [], []
    for line in explanation.latex().splitlines():
        if current:
            current.append(line)
            if line.startswith(r"\end{aligned}"):
                blocks.append("\n".join(current))
                current = []
        elif line.startswith(r"\begin{aligned}"):
            current = [line]
        else:
            blocks.append(line)
    if current:
        blocks.append("\n".join(current))
    return "\n".join(f"$${block}$$" for block in blocks)


# -- tables ---------------------------------------------------------------------------------------
def _number(value) -> str:
    from gradviz.core.text import format_number

    return "-" if value is None else format_number(value, 10, exact_integers=False)


def _table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """An HTML table; cells are HTML already (escape text first)."""
    th = "".join(f"<th {_CELL}>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td {_CELL}>{c}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table {_TABLE}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _coloured(text: str, colour: str, bold: bool = False) -> str:
    weight = "; font-weight: bold" if bold else ""
    return f'<span style="color: {colour}{weight}">{html.escape(text)}</span>'


def _point(point: dict) -> str:
    return ", ".join(f"{k}={_number(v)}" for k, v in point.items())


def report_html(report) -> str:
    """A `GradientReport` as HTML: the value, one row per variable (backprop, finite
    differences with their error, SymPy's value and formula, the verdict) and the summary."""
    import math

    head = f"f = {report.expression}" + (f"   at {_point(report.point)}" if report.point else "")
    rows = []
    for r in report.rows:
        fd_missing = not math.isfinite(r.numeric)
        verdict = r.verdict
        colour = _RED if r.agree is False else (_AMBER if r.agree is None else _GREEN)
        rows.append([html.escape(f"df/d{r.name}"), html.escape(_number(r.backprop)),
                     "-" if fd_missing else html.escape(_number(r.numeric)),
                     "-" if fd_missing else f"{r.numeric_error:.1e}",
                     html.escape(_number(r.symbolic)),
                     html.escape(r.formula) if r.formula is not None else "-",
                     _coloured(verdict, colour, bold=r.agree is False)])
    table = _table(["", "backprop", "finite diff.", "± error", "symbolic", "formula", ""], rows)
    parts = [f"<div><p style=\"font-family: monospace; margin: 0 0 4px 0\">{html.escape(head)}"
             f"<br>f = {html.escape(_number(report.value))}</p>", table]
    if report.symbolic_error is not None:
        parts.append(f"<p>no SymPy formulas: {html.escape(report.symbolic_error)}</p>")
    if report.nodes is not None:
        from gradviz.verify.node_checks import node_table

        parts.append(f"<pre>{html.escape(node_table(report.nodes.to_json()))}</pre>")
    colour = _GREEN if report.ok else _RED
    parts.append(f'<p style="margin: 4px 0 0 0; font-family: monospace">'
                 f"{_coloured(report.summary, colour, True)}</p>"
                 "</div>")
    return "".join(parts)


def claim_html(check) -> str:
    """A `ClaimCheck` (`check_claim`'s result) as HTML: the verdict, the claim, the true
    derivative, the counterexample when refuted, and what was tried."""
    colour = {"verified": _GREEN, "refuted": _RED}.get(check.verdict, _AMBER)
    rows = [["verdict", _coloured(check.verdict, colour, True)],
            ["claimed", html.escape(f"d/d{check.wrt} = {check.claim_text}")],
            ["derivative", html.escape(f"d/d{check.wrt} = {check.derivative_text}")]]
    ce = check.counterexample
    if ce is not None:
        rows.append(["counterexample", html.escape(
            f"at {_point(ce.point)}: claimed {_number(ce.claimed)}, "
            f"actually {_number(ce.actual)}")])
    unconfirmed = check.points_unconfirmed
    rows.append(["points", html.escape(
        f"{check.points_agreed} agreed of {check.points_tried} tried"
        + (f", {unconfirmed} unconfirmed (kinks)" if unconfirmed else ""))])
    if check.tried:
        rows.append(["tried", html.escape(", ".join(check.tried))])
    rows.append(["SymPy", html.escape(check.sympy_note or "ran")])
    body = "".join(f"<tr><th {_CELL}>{k}</th><td {_CELL}>{v}</td></tr>" for k, v in rows)
    return f"<table {_TABLE}><tbody>{body}</tbody></table>"


# -- the stepper ----------------------------------------------------------------------------------
class StepPaths(list):
    """The paths `steps(...)` wrote (the frames, then `index.html`): a list as before, which
    shows the stepper page inline in a notebook."""

    def __init__(self, paths: Iterable[str] = (), page: str | None = None):
        super().__init__(paths)
        self.page = page

    @property
    def index(self) -> str | None:
        """The stepper page's path (`.../index.html`), or None."""
        return next((p for p in reversed(self) if os.path.basename(p) == "index.html"), None)

    def html(self) -> str | None:
        """The stepper page (the one `index.html` holds)."""
        if self.page is not None:
            return self.page
        if self.index is not None and os.path.isfile(self.index):
            with open(self.index, encoding="utf-8") as f:
                return f.read()
        return None

    def _repr_html_(self) -> str | None:
        page = self.html()
        return None if page is None else stepper_iframe(page)


def stepper_iframe(page: str) -> str:
    """The stepper page in an iframe (`srcdoc`): its keys, buttons and script stay its own, so
    several steppers can share a notebook."""
    height = 560
    match = re.search(r'<svg[^>]*?height="([\d.]+)pt"', page)
    if match:  # the picture (pt -> px), plus title, buttons and caption
        height = int(min(max(float(match.group(1)) * 4 / 3 + 260, 320), 900))
    return (f'<iframe srcdoc="{html.escape(page, quote=True)}" sandbox="allow-scripts" '
            f'style="width: 100%; height: {height}px; border: 1px solid #d0d7de" '
            f'title="backprop, step by step"></iframe>')


# -- training ------------------------------------------------------------------------------------
def curves_svg(history, title: str = "") -> str | None:
    """Loss and accuracy per epoch (`gradviz train --plot`'s picture) as SVG text, from a
    training `History` (or any sequence of `EpochRecord`s); None without epochs."""
    if not history:
        return None
    import io

    from gradviz.nn.history import curves_figure

    buffer = io.StringIO()
    curves_figure(history, title).savefig(buffer, format="svg")
    svg = buffer.getvalue()
    return svg[svg.find("<svg"):]


def training_html(result) -> str:
    """A `TrainResult`: a line of figures (model, data, device, epochs, last losses, test
    metrics) and the curves."""
    last = result.history[-1] if result.history else None
    config = result.config

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    cells = [("model", config.model), ("data", config.data), ("device", result.device),
             ("epochs", str(result.epochs_run)),
             ("train loss", "-" if last is None else _number(round(last.train_loss, 6))),
             ("val accuracy", "-" if last is None else pct(last.val_accuracy)),
             ("test loss", "-" if result.test_loss is None
              else _number(round(result.test_loss, 6))),
             ("test accuracy", pct(result.test_accuracy))]
    best = getattr(result.history, "best_epoch", None)
    if best is not None and config.patience is not None:  # early stopping kept this epoch
        cells.append(("best epoch", str(best)))
    table = _table([html.escape(k) for k, _ in cells], [[html.escape(v) for _, v in cells]])
    svg = curves_svg(result.history, f"{config.model} on {config.data}")
    return f"<div>{table}{svg or ''}</div>"
