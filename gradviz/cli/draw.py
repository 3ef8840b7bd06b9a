"""`gradviz draw`: an annotated forward/backward diagram of an expression."""
from __future__ import annotations

import click

from gradviz.cli.common import ExpressionCommand, load_expression, parse_points, require_values


@click.command(cls=ExpressionCommand)
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
@click.option("--input", "input_file", metavar="FILE.npy",
              help="Model files: draw the loss at this input with values and gradients.")
@click.option("--random-input", is_flag=True,
              help="Model files: draw the loss at a random input (--seed) with values and "
                   "gradients.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Model files: seeds the random input.")
@click.option("--label", type=int, default=0, show_default=True,
              help="Model files: the class the cross-entropy loss is taken for.")
@click.option("--collapse", is_flag=True,
              help="One box per layer (model files, and graphs built from a model).")
@click.option("--rankdir", type=click.Choice(["LR", "TB"], case_sensitive=False),
              help="Left to right or top to bottom (default: left to right for a scalar "
                   "circuit, else whichever fits a 16:9 slide better).")
@click.option("--no-legend", is_flag=True, help="Leave out the colour legend.")
@click.option("--scale", type=float, metavar="X",
              help="PNG: X times 96 dpi (default 2, i.e. 192 dpi).")
@click.option("--dpi", type=float, help="PNG: dots per inch (default 192).")
def draw(expression, at, path, fmt, view, formulas, check, expand, kernels, output_name,
         input_file, random_input, seed, label, collapse, rankdir, no_legend, scale, dpi):
    """Draw EXPRESSION as a circuit, left to right, annotated with values (green), gradients
    (red) and local derivatives (blue). EXPRESSION may also be a model file (.onnx, or .json):
    its forward graph, or with --input / --random-input the loss at that input with every
    value and gradient.

    \b
    Example:
      gradviz draw "(x+y)*z" --at x=-2,y=5,z=-4 -o circuit.svg
      gradviz draw model.onnx --random-input -o model.svg
    """
    from gradviz.files import check_output_file
    from gradviz.render import draw as draw_diagram
    from gradviz.render.backend import format_for

    from gradviz.render.diagram import png_dpi

    check_output_file(path, "-o")
    format_for(path, fmt)
    png_dpi(scale, dpi)  # refused before any work
    rankdir = rankdir.upper() if rankdir else None
    if expression.lower().endswith((".onnx", ".json", ".yaml", ".yml")):
        from gradviz.nn.inspect import draw_model

        draw_model(expression, path, input_file=input_file, random_input=random_input,
                   seed=seed, label=label, view=view, collapse=collapse, check=check, fmt=fmt,
                   rankdir=rankdir, legend=not no_legend, scale=scale, dpi=dpi)
        click.echo(f"wrote {path}")
        return

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
                           output_name=output_name, rankdir=rankdir, legend=not no_legend,
                           collapse=collapse)
    diagram.render(path, fmt, scale=scale, dpi=dpi)
    click.echo(f"wrote {path}")
