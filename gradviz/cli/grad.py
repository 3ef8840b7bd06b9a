"""`gradviz grad`: value and partial derivatives of an expression, by backprop, by finite
differences and by SymPy (formula and value), and whether they agree."""
from __future__ import annotations

import json
import math

import click

from gradviz.cli.common import load_expression, parse_names, parse_points, require_values
from gradviz.errors import EvaluationError, GradvizError


SYMBOLIC_RTOL = 1e-9  # backprop and the SymPy formula compute the same real number


def gradient_report(expression: str, at: dict[str, float], wrt: list[str],
                    latex: bool = False, nodes: bool = False) -> dict:
    """The `grad --json` object: value, and per variable the backprop, numeric and symbolic
    derivatives, the simplified formula (and its LaTeX when `latex`); with `nodes`, each node's
    local derivative checked on its own (`nodes`, and `wrong_node` naming the first bad one)."""
    from gradviz.core.autodiff import backprop
    from gradviz.verify.finite_differences import agrees, numeric_grad
    from gradviz.verify.symbolic import symbolic_gradients

    output, variables = load_expression(expression)
    require_values(variables, at)
    unknown = [name for name in wrt if name not in variables]
    if unknown:
        raise GradvizError(f"--wrt names {', '.join(map(repr, unknown))}, which the expression "
                           "does not use")
    names = wrt or list(variables)
    result = backprop(output, at)
    if not math.isfinite(result.value):
        raise EvaluationError(f"the expression is not defined at this point (its value is "
                              f"{result.value})")
    numeric = numeric_grad(output, at, [variables[n] for n in names])
    try:
        symbolic = symbolic_gradients(output, [variables[n] for n in names], around=at)
        symbolic_error = None
    except GradvizError as exc:  # e.g. a user-defined op without a SymPy rule
        symbolic, symbolic_error = {}, str(exc)
    gradients = {}
    for name in names:
        node = variables[name]
        fd = numeric[node]
        sym = symbolic.get(node)
        verdict = agrees(result.grad(node), fd)
        sym_value = None if sym is None else sym.value(at)
        if verdict is not None and sym is not None:
            verdict = (verdict and sym.proof.equal is not False
                       and _close(sym_value, result.grad(node)))
        gradients[name] = {
            "backprop": result.grad(node),
            "numeric": fd.value,
            "symbolic": sym_value,
            "formula": None if sym is None else sym.text(),
            "numeric_error": fd.error,
            "status": fd.status,
            "proof": None if sym is None else sym.proof.status,
            "agree": verdict,
        }
        if latex and sym is not None:
            gradients[name]["latex"] = sym.latex()
    report = {
        "expression": expression,
        "point": at,
        "value": result.value,
        "gradients": gradients,
        "agree": all(g["agree"] is not False for g in gradients.values()),
    }
    if symbolic_error is not None:
        report["symbolic_error"] = symbolic_error
    if nodes:
        from gradviz.verify.node_checks import check_nodes

        checks = check_nodes(output, at)
        report["nodes"] = checks.to_json()
        report["wrong_node"] = None if checks.ok else checks.first_wrong.label
    return report


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= SYMBOLIC_RTOL * max(abs(a), abs(b), 1.0)


def _fmt(value: float) -> str:
    return f"{value:.10g}" if math.isfinite(value) else str(value)


def _verdict(entry: dict) -> str:
    if entry["status"] == "kink":
        return "not differentiable here (kink)"
    if entry["status"] == "undefined":
        return "undefined nearby"
    if not entry["agree"]:
        return "DISAGREE"
    if entry["proof"] is None:
        return "agree (no SymPy)"
    return "agree" if entry["proof"] == "proved" else "agree (symbolic routes not proved equal)"


def print_table(report: dict) -> None:
    point = ", ".join(f"{k}={_fmt(v)}" for k, v in report["point"].items())
    click.echo(f"f = {report['expression']}" + (f"   at {point}" if point else ""))
    click.echo(f"f = {_fmt(report['value'])}")
    click.echo("")
    rows = [("", "backprop", "finite diff.", "± error", "symbolic", "")]
    for name, g in report["gradients"].items():
        rows.append((f"df/d{name}", _fmt(g["backprop"]), _fmt(g["numeric"]),
                     f"{g['numeric_error']:.1e}",
                     "-" if g["symbolic"] is None else _fmt(g["symbolic"]), _verdict(g)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    click.echo("")
    if "symbolic_error" in report:
        click.echo(f"no SymPy formulas: {report['symbolic_error']}")
    for name, g in report["gradients"].items():
        if "latex" in g:
            click.echo(f"\\frac{{\\partial f}}{{\\partial {name}}} = {g['latex']}")
        elif g["formula"] is not None:
            click.echo(f"df/d{name} = {g['formula']}")
    click.echo("")
    click.echo("backprop, finite differences and SymPy agree" if report["agree"]
               else "gradients DISAGREE")


@click.command()
@click.argument("expression")
@click.option("--at", "at", multiple=True, metavar="a=1,b=2",
              help="The point: a value for every variable.")
@click.option("--wrt", metavar="a,b", help="Differentiate with respect to these (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--latex", is_flag=True, help="Each partial derivative's formula in LaTeX.")
@click.option("--nodes", is_flag=True,
              help="Also check every node's local derivative on its own (VJP rule vs finite "
                   "differences vs SymPy) and name the first wrong one.")
def grad(expression: str, at: tuple[str, ...], wrt: str | None, as_json: bool,
         latex: bool, nodes: bool) -> int:
    """Value and partial derivatives of EXPRESSION, by backprop, finite differences and SymPy.

    \b
    Example:
      gradviz grad "(x+y)*z" --at x=-2,y=5,z=-4

    Exit code 1 when the methods disagree; kinks (relu, abs at 0, max at a tie) are reported
    as "not differentiable here", not as disagreement.
    """
    report = gradient_report(expression, parse_points(at), parse_names(wrt), latex=latex,
                             nodes=nodes)
    if as_json:
        click.echo(json.dumps(report))
    else:
        print_table(report)
        if nodes:
            from gradviz.verify.node_checks import node_table

            click.echo("")
            click.echo(node_table(report["nodes"]))
    return 0 if report["agree"] and report.get("wrong_node") is None else 1
