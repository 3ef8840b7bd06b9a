"""`gradviz grad`: value and partial derivatives of an expression, by backprop, by finite
differences and by SymPy (formula and value), and whether they agree."""
from __future__ import annotations

import json

import click

from gradviz.cli.common import ExpressionCommand, parse_names, parse_points




@click.command(cls=ExpressionCommand)
@click.argument("expression")
@click.option("--at", "at", multiple=True, metavar="a=1,b=2",
              help="The point: a value for every variable.")
@click.option("--wrt", metavar="a,b", help="Differentiate with respect to these (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--latex", is_flag=True, help="Each partial derivative's formula in LaTeX.")
@click.option("--nodes", is_flag=True,
              help="Also check every node's local derivative on its own (VJP rule vs finite "
                   "differences vs SymPy) and name the first wrong one.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=None, metavar="SECONDS",
              help="Time bound for SymPy (default 5 s); past it the rows say 'symbolic: gave "
                   "up' and backprop and finite differences are still compared.")
def grad(expression: str, at: tuple[str, ...], wrt: str | None, as_json: bool,
         latex: bool, nodes: bool, timeout: float | None) -> int:
    """Value and partial derivatives of EXPRESSION, by backprop, finite differences and SymPy.

    \b
    Example:
      gradviz grad "(x+y)*z" --at x=-2,y=5,z=-4

    Exit code 1 when the methods disagree; kinks (relu, abs at 0, max at a tie) are reported
    as "not differentiable here", not as disagreement.
    """
    from gradviz.verify.report import gradient_report

    report = gradient_report(expression, parse_points(at), parse_names(wrt), latex=latex,
                             nodes=nodes, timeout=timeout)
    click.echo(json.dumps(report.to_json()) if as_json else report.text())
    return 0 if report.ok else 1
