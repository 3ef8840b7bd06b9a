"""`gradviz perceptron`: Rosenblatt's learning rule step by step (the slides' OR gate, Hagan's
test problem, XOR failing), and the "move the line toward the point" trick."""
from __future__ import annotations

import json
import re

import click
import numpy as np

from gradviz.errors import GradvizError

_SAMPLE = re.compile(r"^\s*([^:]+):\s*([01])\s*$")


def _numbers(text: str, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise GradvizError(f"{option} takes numbers separated by commas, got {text!r}") from None
    if not values or not all(np.isfinite(values)):
        raise GradvizError(f"{option} takes finite numbers separated by commas, got {text!r}")
    return values


def _samples(texts: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    rows, targets = [], []
    for text in texts:
        match = _SAMPLE.match(text)
        if not match:
            raise GradvizError(f"--sample takes INPUTS:TARGET such as 1,2:1 (target 0 or 1), "
                               f"got {text!r}")
        rows.append(_numbers(match.group(1), "--sample"))
        targets.append(int(match.group(2)))
    if len({len(r) for r in rows}) != 1:
        raise GradvizError("every --sample needs the same number of inputs")
    return np.array(rows), np.array(targets)


def _data(spec: str | None, target: str | None, samples: tuple[str, ...]):
    from gradviz.lectures.perceptron import perceptron_data

    if samples:
        if spec is not None:
            raise GradvizError("give either --data or --sample, not both")
        return _samples(samples)
    if spec is None:
        raise GradvizError("give the training samples with --data (and, or, xor, FILE.csv) or "
                           "--sample INPUTS:TARGET")
    return perceptron_data(spec, target)


@click.command()
@click.option("--data", "-d", metavar="SPEC", help="and, or, xor, or a CSV file (with --target).")
@click.option("--target", metavar="COLUMN", help="The 0/1 column of a CSV file.")
@click.option("--sample", "samples", multiple=True, metavar="1,2:1",
              help="A training sample as INPUTS:TARGET (repeat it; instead of --data).")
@click.option("--w0", metavar="1,-0.8", help="Initial weights (default zeros).")
@click.option("--b0", type=float, default=0.0, show_default=True, help="Initial bias.")
@click.option("--lr", type=float, default=1.0, show_default=True, help="Learning rate.")
@click.option("--no-bias", is_flag=True, help="Keep the bias fixed at --b0 (Hagan's problem).")
@click.option("--epochs", type=int, default=100, show_default=True, help="At most this many.")
@click.option("--line", metavar="3,4,-10",
              help="Instead of training: the line w1 x1 + ... + c = 0 to move toward --point.")
@click.option("--point", metavar="4,5", help="The point for --line.")
@click.option("--label", type=click.IntRange(0, 1), help="The point's label for --line (0 or 1).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def perceptron(data, target, samples, w0, b0, lr, no_bias, epochs, line, point, label,
               as_json):
    """Train one perceptron with the learning rule w <- w + lr (t - a) p, b <- b + lr (t - a),
    printing every presented sample; or move one line toward a misclassified point.

    \b
    gradviz perceptron --data or
    gradviz perceptron --sample 1,2:1 --sample=-1,2:0 --sample 0,-1:0 --w0 1,-0.8 --no-bias
    gradviz perceptron --data xor --epochs 5            (never converges: exit code 1)
    gradviz perceptron --line 3,4,-10 --point 4,5 --label 0 --lr 0.1

    Exit code 1 when the rule does not separate the data within --epochs.
    """
    from gradviz.lectures.perceptron import format_line, format_trace, move_line, train_perceptron

    if line is not None:
        if point is None or label is None:
            raise GradvizError("--line needs --point and --label")
        step = move_line(_numbers(line, "--line"), _numbers(point, "--point"), label, lr)
        if as_json:
            click.echo(json.dumps({"before": step.before.tolist(), "after": step.after.tolist(),
                                   "delta": step.delta.tolist(), "a": step.a, "t": step.t,
                                   "e": step.e}))
            return 0
        click.echo(f"line  {format_line(step.before)}")
        click.echo(f"point ({', '.join(f'{v:g}' for v in step.point)}), label {step.t}: "
                   f"the line says {step.a}"
                   + ("" if step.misclassified else " (correct: the line stays)"))
        if step.misclassified:
            sign = "+" if step.e > 0 else "-"
            click.echo(f"move  {sign} {lr:g} * ({', '.join(f'{v:g}' for v in step.point)}, 1)"
                       f" = {', '.join(f'{v:+.6g}' for v in step.delta)}")
        click.echo(f"new line  {format_line(step.after)}")
        return 0
    if point is not None or label is not None:
        raise GradvizError("--point and --label go with --line")
    X, t = _data(data, target, samples)
    result = train_perceptron(X, t, w0=None if w0 is None else _numbers(w0, "--w0"), b0=b0,
                              lr=lr, max_epochs=epochs, use_bias=not no_bias)
    if as_json:
        click.echo(json.dumps({"w": result.w.tolist(), "b": result.b,
                               "converged": result.converged, "epochs": result.epochs,
                               "errors_per_epoch": result.errors_per_epoch,
                               "weight_history": [w.tolist() for w in result.weight_history]}))
    else:
        click.echo(format_trace(result))
        if result.converged:
            click.echo(f"decision boundary: {format_line([*result.w, result.b])}")
        else:
            click.echo(f"not separated after {result.epochs} epoch(s): the rule keeps moving "
                       "the line (errors in the last epochs: "
                       f"{', '.join(map(str, result.errors_per_epoch[-5:]))})")
    return 0 if result.converged else 1
