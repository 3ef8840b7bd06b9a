"""`gradviz check`: prove a hand-derived derivative, or refute it with a counterexample."""
from __future__ import annotations

import json
import click


from gradviz.cli.common import ExpressionCommand, parse_names, parse_points
from gradviz.core.text import format_number
from gradviz.errors import GradvizError


def _fmt(value: float) -> str:
    return format_number(value, 10, exact_integers=False)


def print_verdict(expression: str, result) -> None:
    click.echo(f"f        = {expression}")
    click.echo(f"claim    : df/d{result.wrt} = {result.claim_text}")
    if result.derivative is None:
        click.echo(f"autodiff : df/d{result.wrt} = {result.derivative_text}   "
                   f"({result.sympy_note})")
    else:
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
    else:
        click.echo(inconclusive_text(result))


def inconclusive_text(result) -> str:
    """Why the verdict is "inconclusive", and what was tried."""
    sympy = result.sympy_note or "SymPy could not prove it"
    if result.points_agreed:
        lines = [f"inconclusive: {sympy}, but the claim and the derivative agree at all "
                 f"{result.points_agreed} points where both are defined and finite differences "
                 f"confirm autodiff"]
    else:
        lines = [f"inconclusive: {sympy}, and no point tried was in the domain of both"]
    if result.points_unconfirmed:
        lines.append(f"  {result.points_unconfirmed} points differ where finite differences "
                     f"cannot confirm autodiff (kinks); they are not counted as agreeing")
    lines.append(f"  tried {result.points_tried} points: {', '.join(result.tried)}")
    return "\n".join(lines)


@click.command(cls=ExpressionCommand)
@click.argument("expression")
@click.option("--wrt", required=True, metavar="VAR", help="The variable differentiated by.")
@click.option("--claim", required=True, metavar="FORMULA",
              help="Your derivative, in the same expression language.")
@click.option("--at", "at", multiple=True, metavar="a=1,b=2",
              help="A point to try first (optional).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=None, metavar="SECONDS",
              help="Time bound for SymPy (default 5 s); past it the verdict rests on the points.")
def check(expression: str, wrt: str, claim: str, at: tuple[str, ...], as_json: bool,
          timeout: float | None) -> int:
    """Check a hand-derived derivative of EXPRESSION: prove it, or show where it is wrong.

    \b
    Example:
      gradviz check "(w*x+b-y)**2/2" --wrt w --claim "(w*x+b-y)*x"

    Exit code 0 when verified, 1 when refuted with a counterexample, 2 for bad input, 4 when
    inconclusive (SymPy could not decide and no point refuted the claim).
    """
    from gradviz.verify.claims import check_claim_text

    names = parse_names(wrt)
    if len(names) != 1:
        raise GradvizError("--wrt takes exactly one variable")
    result = check_claim_text(expression, names[0], claim, parse_points(at), timeout=timeout)
    if as_json:
        click.echo(json.dumps({"expression": expression, **result.to_json()}))
    else:
        print_verdict(expression, result)
    return EXIT_CODES[result.verdict]


# verified 0, refuted 1, bad input 2 (every command), internal error 3 (every command)
EXIT_CODES = {"verified": 0, "refuted": 1, "inconclusive": 4}
