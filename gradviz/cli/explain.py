"""`gradviz explain`: the chain rule written out factor by factor, path by path."""
from __future__ import annotations

import json

import click


from gradviz.cli.common import (ExpressionCommand, load_expression, parse_names, parse_points,
                                require_values)
from gradviz.errors import GradvizError


@click.command(cls=ExpressionCommand)
@click.argument("expression")
@click.option("--wrt", required=True, metavar="VAR", help="The variable differentiated by.")
@click.option("--at", "at", multiple=True, required=True, metavar="a=1,b=2",
              help="The point: a value for every variable.")
@click.option("--digits", default=2, show_default=True, type=click.IntRange(1, 17),
              help="Significant digits of each factor.")
@click.option("--latex", is_flag=True, help="Print LaTeX for slides.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def explain(expression: str, wrt: str, at: tuple[str, ...], digits: int, latex: bool,
            as_json: bool) -> int:
    """The chain rule for d EXPRESSION / d VAR at a point, one factor per edge, every path.

    \b
    Example (the sigmoid neuron from the slides):
      gradviz explain "1/(1+exp(-(w0*x0+w1*x1+w2)))" --wrt w0 \\
          --at w0=2,x0=-1,w1=-3,x1=-2,w2=-3
    """
    from gradviz.verify.explain import explain as explain_

    output, variables = load_expression(expression)
    names = parse_names(wrt)
    if len(names) != 1:
        raise GradvizError("--wrt takes exactly one variable")
    point = parse_points(at)
    require_values(variables, point)
    if names[0] not in variables:
        raise GradvizError(f"--wrt {names[0]!r}: the expression does not use it")
    result = explain_(output, variables[names[0]], point)
    if as_json:
        click.echo(json.dumps(result.to_json()))
    elif latex:
        click.echo(result.latex(digits))
    else:
        click.echo(result.text(digits))
    return 0
