"""`gradviz check`: prove a hand-derived derivative, or refute it with a counterexample."""
from __future__ import annotations

import json
import click

from gradviz.cli.common import parse_names, parse_points
from gradviz.core.text import format_number
from gradviz.errors import GradvizError


def _fmt(value: float) -> str:
    return format_number(value, 10, exact_integers=False)


def print_verdict(expression: str, result) -> None:
    click.echo(f"f        = {expression}")
    click.echo(f"claim    : df/d{result.wrt} = {result.claim_text}")
    click.echo(f"SymPy    : df/d{result.wrt} = {result.derivative_text}")
    click.echo("")
    if result.verdict == "verified":
        click.echo("verified: SymPy proves the claim equals the derivative")
    elif result.verdict == "refuted":
        ce = result.counterexample
        point = ", ".join(f"{k}={_fmt(v)}" for k, v in ce.point.items())
        click.echo(f"refuted: at {point}")
        click.echo(f"  the claim gives      {_fmt(ce.claimed)}")
        click.echo(f"  the derivative is    {_fmt(ce.actual)}")
    elif result.points_agreed:
        click.echo(f"inconclusive: SymPy could not prove it, but the claim and the derivative "
                   f"agree at all {result.points_agreed} points tried")
    else:
        click.echo("inconclusive: SymPy could not prove it, and no point tried was in the "
                   "domain of both")


@click.command()
@click.argument("expression")
@click.option("--wrt", required=True, metavar="VAR", help="The variable differentiated by.")
@click.option("--claim", required=True, metavar="FORMULA",
              help="Your derivative, in the same expression language.")
@click.option("--at", "at", multiple=True, metavar="a=1,b=2",
              help="A point to try first (optional).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def check(expression: str, wrt: str, claim: str, at: tuple[str, ...], as_json: bool) -> int:
    """Check a hand-derived derivative of EXPRESSION: prove it, or show where it is wrong.

    \b
    Example:
      gradviz check "(w*x+b-y)**2/2" --wrt w --claim "(w*x+b-y)*x"

    Exit code 0 when verified (or inconclusive: SymPy could not decide and every point
    agreed), 1 when refuted with a counterexample, 2 for bad input.
    """
    from gradviz.verify.claims import check_claim_text

    names = parse_names(wrt)
    if len(names) != 1:
        raise GradvizError("--wrt takes exactly one variable")
    result = check_claim_text(expression, names[0], claim, parse_points(at))
    if as_json:
        click.echo(json.dumps({"expression": expression, **result.to_json()}))
    else:
        print_verdict(expression, result)
    return 1 if result.verdict == "refuted" else 0
