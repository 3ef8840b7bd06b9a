"""`gradviz gradcheck`: backprop vs finite differences for every parameter tensor of a model."""
from __future__ import annotations

import sys

import click


@click.command("gradcheck")
@click.argument("model_name", metavar="MODEL")
@click.option("--input-shape", default=None, help="Input size without the batch axis (default: "
                                                 "the model's, or 1,28,28).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the random input.")
@click.option("--label", type=int, default=0, show_default=True,
              help="The class the cross-entropy loss is taken for.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def gradcheck(model_name: str, input_shape: str | None, seed: int, label: int,
              as_json: bool) -> None:
    """Check a model's gradients: for each parameter tensor, the derivative of the loss along a
    random direction by backprop and by central finite differences, in float64. MODEL is a
    model name, a .json model file or an .onnx file. Where they disagree, every node is checked
    on its own and the node whose rule is wrong is named. Exit code 1 when they disagree.

    \b
    Example:
      gradviz gradcheck model.onnx
    """
    from gradviz.cli.summary import parse_shape
    from gradviz.nn.inspect import gradient_check, gradient_check_json

    report = gradient_check(model_name, seed=seed, label=label,
                            input_shape=parse_shape(input_shape))
    click.echo(gradient_check_json(report) if as_json else report.table())
    if not report.agree:
        sys.exit(1)
