"""`gradviz evaluate`: accuracy and confusion matrix of a trained model (a checkpoint) on a split
of a data set, normalized with the statistics saved at training time."""
from __future__ import annotations

import json

import click

SPLITS = ("test", "val", "train")


def format_confusion(matrix: list[list[int]], names: list[str]) -> str:
    """The confusion matrix as a text table: rows are true classes, columns predictions."""
    width = max([len(n) for n in names] + [len(str(v)) for row in matrix for v in row] + [4])
    head = " " * (width + 2) + " ".join(n.rjust(width) for n in names)
    lines = ["true \\ predicted", head]
    for name, row in zip(names, matrix):
        lines.append(f"{name.rjust(width)}  " + " ".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


@click.command()
@click.option("--checkpoint", "-c", metavar="DIR", required=True,
              help="A checkpoint directory written by `gradviz train --checkpoint`.")
@click.option("--data", "-d", metavar="SPEC",
              help="Data set (default: the one the model was trained on).")
@click.option("--target", metavar="COLUMN", help="The column to predict (CSV data).")
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True,
              help="Which split to evaluate on.")
@click.option("--seed", type=int, help="Split seed (default: the training run's).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(checkpoint, data, target, split, seed, as_json):
    """Accuracy and confusion matrix of a trained model.

    \b
    gradviz train -m mlp -d digits --hidden 64 --checkpoint run1
    gradviz evaluate --checkpoint run1 --data digits
    """
    from gradviz.nn.training import evaluation_report

    report = evaluation_report(checkpoint, data, target, split, seed)
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"{report['model']} (epoch {report['epoch']}) on {report['data']} "
               f"{split}: {report['examples']} examples")
    if report["accuracy"] is not None:
        click.echo(f"accuracy {100 * report['accuracy']:.2f}%  loss {report['loss']:.4f}")
    elif report["loss"] is not None:
        click.echo(f"loss {report['loss']:.4f}")
    if "confusion" in report:
        click.echo(format_confusion(report["confusion"], report["class_names"]))
