"""The lecture examples end to end, as the commands a reader would type: the demo's script.

Each step is an ordinary gradviz command with its arguments; `gradviz demo` (in
`gradviz.cli.demo`) runs them in this process, printing each command line, so the demo doubles as
a tour of the CLI. Pictures go to the output directory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

NEURON = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
NEURON_AT = "w0=2,x0=-1,w1=-3,x1=-2,w2=-3"


@dataclass(frozen=True)
class Step:
    """One demo step: a heading, a sentence saying what to look at, the command's arguments, and
    the exit code that is expected (1 where the point is a refutation or a failure to learn)."""

    title: str
    note: str
    args: tuple[str, ...]
    expected_exit: int = 0


def demo_steps(out: str, quick: bool = False, verbose: bool = False) -> list[Step]:
    """The demo's steps, writing pictures under `out`. Trainings print their first, every
    tenth and last epoch (every epoch with `verbose`); long tables show a few rows per end."""
    every = ("--every", "1" if verbose else "10")
    rows = () if verbose else ("--rows", "4")
    def path(name: str) -> str:
        return os.path.join(out, name)

    steps = [
        Step("The (x+y)*z circuit",
             "Backprop, finite differences and SymPy agree: -4, -4, 3.",
             ("grad", "(x+y)*z", "--at", "x=-2,y=5,z=-4")),
        Step("...drawn",
             "Values in green, gradients in red, local derivatives in blue.",
             ("draw", "(x+y)*z", "--at", "x=-2,y=5,z=-4", "-o", path("circuit-xyz.svg"))),
        Step("The sigmoid neuron",
             "The slide's numbers: f = 0.73, df/dw0 = -0.20, df/dx0 = 0.39, ...",
             ("grad", NEURON, "--at", NEURON_AT)),
        Step("...the chain rule, factor by factor",
             "One factor per edge from the output back to w0, as on the slide.",
             ("explain", NEURON, "--wrt", "w0", "--at", NEURON_AT)),
        Step("...drawn, and stepped through",
             "Open backprop-steps/index.html and use the arrow keys.",
             ("draw", NEURON, "--at", NEURON_AT, "-o", path("circuit-neuron.svg"))),
        Step("", "", ("steps", NEURON, "--at", NEURON_AT, "-o", path("backprop-steps"))),
        Step("|y - (wx + b)| at x=2, w=3, b=1",
             "Gradients 3, 2, 1.",
             ("grad", "abs(4 - (x*w + b))", "--at", "x=2,w=3,b=1")),
        Step("Checking a hand-derived derivative",
             "x*s*(1-s) is the derivative of the neuron with respect to w: verified.",
             ("check", "1/(1+exp(-(w*x+b)))", "--wrt", "w", "--claim",
              "x*sigmoid(w*x+b)*(1-sigmoid(w*x+b))")),
        Step("...and a wrong one",
             "Forgetting the inner derivative x: refuted, with a counterexample (exit code 1).",
             ("check", "1/(1+exp(-(w*x+b)))", "--wrt", "w", "--claim",
              "sigmoid(w*x+b)*(1-sigmoid(w*x+b))"), expected_exit=1),
        Step("The perceptron learning rule",
             "Hagan's test problem: w goes [1, -0.8] -> [2, 1.2] -> [3, -0.8] -> [3, 0.2].",
             ("perceptron", "--sample", "1,2:1", "--sample=-1,2:0", "--sample", "0,-1:0",
              "--w0", "1,-0.8", "--no-bias")),
        Step("Moving a line toward a misclassified point",
             "3x1 + 4x2 - 10 = 0 and the point (4, 5), rate 0.1: 2.6x1 + 3.5x2 - 10.1 = 0.",
             ("perceptron", "--line", "3,4,-10", "--point", "4,5", "--label", "0",
              "--lr", "0.1")),
        Step("Gradient descent on w**2",
             "From w = 1 with rate 0.1: 0.8, 0.64, 0.512, ... until |Δf| < 1e-6.",
             ("descend", "w**2", "--from", "w=1", "--lr", "0.1", *rows)),
        Step("LeNet-5",
             "The slides' layer table: 61,706 parameters.",
             ("summary", "--model", "lenet")),
        Step("XOR needs a hidden layer",
             "A small MLP learns XOR, drawn with its decision regions.",
             ("train", "--model", "mlp", "--data", "xor", "--hidden", "8", "--lr", "0.05",
              "--batch", "4", "--epochs", "100", "--device", "numpy", *every,
              "--plot-regions", path("xor-regions.png"))),
    ]
    if not quick:
        steps.append(Step("Handwritten digits",
                          "An MLP on scikit-learn's 1,797 8x8 digits, with the data set's "
                          "default settings: 97.5-99% on the test split (seeds 0-2).",
                          ("train", "--model", "mlp", "--data", "digits", *every,
                           "--plot", path("digits-curves.png"))))
    return steps
