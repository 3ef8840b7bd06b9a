"""`gradviz grad`: value and partial derivatives of an expression, by backprop and by finite
differences, and whether they agree."""
from __future__ import annotations

import json
import math

import click

from gradviz.cli.common import load_expression, parse_names, parse_points, require_values
from gradviz.errors import EvaluationError, GradvizError


def gradient_report(expression: str, at: dict[str, float], wrt: list[str]) -> dict:
    """The `grad --json` object: value, and per variable backprop and numeric derivatives."""
    from gradviz.autodiff import backprop
    from gradviz.numeric import agrees, numeric_grad

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
    gradients = {}
    for name in names:
        node = variables[name]
        fd = numeric[node]
        verdict = agrees(result.grad(node), fd)
        gradients[name] = {
            "backprop": result.grad(node),
            "numeric": fd.value,
            "numeric_error": fd.error,
            "status": fd.status,
            "agree": verdict,
        }
    return {
        "expression": expression,
        "point": at,
        "value": result.value,
        "gradients": gradients,
        "agree": all(g["agree"] is not False for g in gradients.values()),
    }


def _fmt(value: float) -> str:
    return f"{value:.10g}" if math.isfinite(value) else str(value)


def _verdict(entry: dict) -> str:
    if entry["status"] == "kink":
        return "not differentiable here (kink)"
    if entry["status"] == "undefined":
        return "undefined nearby"
    return "agree" if entry["agree"] else "DISAGREE"


def print_table(report: dict) -> None:
    point = ", ".join(f"{k}={_fmt(v)}" for k, v in report["point"].items())
    click.echo(f"f = {report['expression']}" + (f"   at {point}" if point else ""))
    click.echo(f"f = {_fmt(report['value'])}")
    click.echo("")
    rows = [("", "backprop", "finite diff.", "± error", "")]
    for name, g in report["gradients"].items():
        rows.append((f"df/d{name}", _fmt(g["backprop"]), _fmt(g["numeric"]),
                     f"{g['numeric_error']:.1e}", _verdict(g)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    click.echo("")
    click.echo("backprop and finite differences agree" if report["agree"]
               else "gradients DISAGREE")


@click.command()
@click.argument("expression")
@click.option("--at", "at", multiple=True, metavar="a=1,b=2",
              help="The point: a value for every variable.")
@click.option("--wrt", metavar="a,b", help="Differentiate with respect to these (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def grad(expression: str, at: tuple[str, ...], wrt: str | None, as_json: bool) -> int:
    """Value and partial derivatives of EXPRESSION, by backprop and finite differences.

    \b
    Example:
      gradviz grad "(x+y)*z" --at x=-2,y=5,z=-4

    Exit code 1 when the methods disagree; kinks (relu, abs at 0, max at a tie) are reported
    as "not differentiable here", not as disagreement.
    """
    report = gradient_report(expression, parse_points(at), parse_names(wrt))
    if as_json:
        click.echo(json.dumps(report))
    else:
        print_table(report)
    return 0 if report["agree"] else 1
