"""`gradviz demo`: the lecture examples end to end."""
from __future__ import annotations

import click


@click.command()
@click.option("-o", "--output", "out", default="gradviz-demo", show_default=True, metavar="DIR",
              help="Where to write the pictures.")
@click.option("--quick", is_flag=True, help="Skip the longer training run.")
def demo(out: str, quick: bool) -> int:
    """Run the lecture examples end to end: the chain-rule circuits with their gradients,
    explanations, checks, diagrams and backprop frames, the perceptron rule, gradient descent,
    LeNet-5's table and two small trainings."""
    from gradviz.lectures.demo import run_demo

    return run_demo(out, quick)
