"""`gradviz evaluate`: accuracy and confusion matrix of a trained model (a checkpoint) on a split
of a data set, normalized with the statistics saved at training time."""
from __future__ import annotations

import dataclasses
import json

import click

from gradviz.errors import GradvizError

SPLITS = ("test", "val", "train")


def evaluation_report(checkpoint: str, data: str | None, target: str | None, split: str,
                      seed: int | None) -> dict:
    """The `evaluate --json` object for a checkpoint on `split` of `data` (default: the data set
    it was trained on, split with its seed, so `test` is the held-out part)."""
    from gradviz.nn.training import TrainedModel, load_data

    trained = TrainedModel(checkpoint)
    config = trained.config
    if data is None or data == config.data:
        data, target = config.data, config.target if target is None else target
    spec = dataclasses.replace(config, data=data, target=target,
                               seed=config.seed if seed is None else seed)
    raw = load_data(spec, normalize="none", dtype="float64")
    X_raw, y = raw.splits[split]
    if raw.task != trained.task:
        raise GradvizError(f"{data} is a {raw.task} data set; the model was trained for "
                           f"{trained.task}")
    if raw.task == "classification" and len(y) and int(y.max()) >= trained.n_classes:
        raise GradvizError(f"{data} has class {int(y.max())}; the model knows "
                           f"{trained.n_classes} classes")
    result = trained.evaluate(trained.prepare(X_raw), y)
    report = {"checkpoint": checkpoint, "model": config.model, "data": data, "split": split,
              "epoch": trained.epoch, "examples": result["examples"], "loss": result["loss"],
              "accuracy": result["accuracy"]}
    if "confusion" in result:
        report["class_names"] = list(trained.class_names)
        report["confusion"] = result["confusion"].tolist()
    return report


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
