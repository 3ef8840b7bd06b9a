"""`gradviz steps`: backprop frame by frame, with an HTML page to step through them."""
from __future__ import annotations

import click

from gradviz.cli.common import ExpressionCommand, load_expression, parse_points, require_values


@click.command(cls=ExpressionCommand)
@click.argument("expression")
@click.option("--at", "at", multiple=True, metavar="a=1,b=2", help="Values for every variable.")
@click.option("-o", "--output", "out_dir", required=True, metavar="DIR",
              help="Directory for step-NNN.svg and index.html.")
@click.option("--format", "fmt", type=click.Choice(["svg", "png"]), default="svg",
              show_default=True, help="Frame format.")
@click.option("--name", "output_name", default="f", show_default=True,
              help="What to call the output.")
@click.option("--max-frames", type=click.IntRange(min=1), default=100, show_default=True,
              help="Refuse graphs that need more frames (each lays out the whole graph).")
def steps(expression, at, out_dir, fmt, output_name, max_frames):
    """Backprop through EXPRESSION one node at a time: DIR/step-000.svg shows the forward
    values, each later frame one chain-rule step, and DIR/index.html steps through them
    (buttons or arrow keys; no network needed).

    \b
    Example:
      gradviz steps "1/(1+exp(-(w0*x0+w1*x1+w2)))" --at w0=2,x0=-1,w1=-3,x1=-2,w2=-3 -o frames
    """
    from gradviz.files import check_output_dir
    from gradviz.render import steps as write_steps

    check_output_dir(out_dir, "-o")
    output, variables = load_expression(expression)
    point = parse_points(at)
    require_values(variables, point)
    written = write_steps(output, point, out_dir, fmt=fmt, output_name=output_name,
                          title=expression, max_frames=max_frames)
    click.echo(f"wrote {len(written) - 1} frames and {written[-1]}")
