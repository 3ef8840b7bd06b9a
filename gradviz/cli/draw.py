"""`gradviz draw`: an annotated forward/backward diagram of an expression."""
from __future__ import annotations

import click

from gradviz.cli.common import load_expression, parse_points, require_values


@click.command()
@click.argument("expression")
@click.option("--at", "at", multiple=True, metavar="a=1,b=2",
              help="Values for every variable (without: the structure only).")
@click.option("-o", "--output", "path", required=True, metavar="FILE",
              help="Where to write the picture.")
@click.option("--format", "fmt", type=click.Choice(["svg", "png", "pdf", "dot"]),
              help="Output format (default: from FILE's suffix, else svg).")
@click.option("--view", type=click.Choice(["both", "forward", "gradients", "backward-graph"]),
              default="both", show_default=True,
              help="Values and gradients, only one of them, or the graph autodiff built.")
@click.option("--formulas", is_flag=True, help="Write each edge's local derivative as a formula.")
@click.option("--check", is_flag=True,
              help="Check every derivative; mark disagreements red and kinks amber.")
@click.option("--expand", is_flag=True, help="Draw sigmoid as its gates (*-1, exp, +1, 1/x).")
@click.option("--kernels", is_flag=True,
              help="Outline which nodes the CPU compiler fuses into which kernel.")
@click.option("--name", "output_name", default="f", show_default=True,
              help="What to call the output.")
def draw(expression, at, path, fmt, view, formulas, check, expand, kernels, output_name):
    """Draw EXPRESSION as a circuit, left to right, annotated with values (green), gradients
    (red) and local derivatives (blue).

    \b
    Example:
      gradviz draw "(x+y)*z" --at x=-2,y=5,z=-4 -o circuit.svg
    """
    from gradviz.render import draw as draw_diagram

    output, variables = load_expression(expression)
    point = parse_points(at)
    env = None
    if point or (variables and (check or view == "backward-graph")):
        require_values(variables, point)
        env = point
    elif not variables:
        env = {}
    diagram = draw_diagram(output, env, view=view, formulas=formulas, check=check,
                           expand=expand, kernels=kernels, title=expression,
                           output_name=output_name)
    diagram.render(path, fmt)
    click.echo(f"wrote {path}")
