"""`gradviz summary`: a model's layer table, with output shapes and parameter counts."""
from __future__ import annotations

import json
import re

import click
import numpy as np

from gradviz.errors import GradvizError


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """`"1,28,28"` (or `1x28x28`) -> (1, 28, 28); None stays None."""
    if text is None:
        return None
    parts = [p for p in re.split(r"[,x\s]+", text.strip()) if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise GradvizError(f"--input-shape expects sizes like 1,28,28, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise GradvizError(f"--input-shape expects positive sizes like 1,28,28, got {text!r}")
    return shape


def summary_report(model_name: str | None, input_shape=None, n_classes: int = 10,
                   hidden=None, checkpoint: str | None = None) -> dict:
    """The `summary --json` object: model, input shape, one entry per layer, total parameters,
    trainable and non-trainable counts (an ONNX file's constants are not trained), and with a
    `checkpoint` the model trained there and the size of its optimizer state."""
    from gradviz.interop import is_onnx_file
    from gradviz.nn.models import build_model

    state = None
    non_trainable = 0
    if checkpoint is not None:
        from gradviz.nn import checkpoints as ckpt
        from gradviz.nn.training import TrainedModel

        trained = TrainedModel(checkpoint)
        model, model_name = trained.model, model_name or trained.config.model
        found = ckpt.load(checkpoint)
        state = {"optimizer": found.meta.get("optimizer", {}).get("name"),
                 "values": int(sum(np.asarray(v).size for v in found.state.values())),
                 "tensors": len(found.state)}
    elif model_name is None:
        raise GradvizError("summary needs --model NAME or --checkpoint DIR")
    elif is_onnx_file(model_name):  # the file's own sizes: one row per ONNX node
        from gradviz.interop.onnx_import import OnnxModel

        model = OnnxModel(model_name, input_shape=input_shape)
        non_trainable = int(sum(np.asarray(v).size for v in
                                getattr(model, "constants", {}).values()))
    else:
        model = build_model(model_name, input_shape, n_classes, hidden)
    rows = model.summary()
    total = sum(r.params for r in rows)
    report = {
        "model": model_name,
        "description": model.description,
        "input_shape": list(model.input_shape),
        "layers": [{"name": r.name, "layer": r.layer, "output_shape": list(r.output_shape),
                    "params": r.params, "label": r.label} for r in rows],
        "total_params": total,
        "trainable_params": total,
        "non_trainable_params": non_trainable,
    }
    if state is not None:
        report["optimizer_state"] = state
    return report


@click.command("summary")
@click.option("--model", "-m", "model_name", default=None,
              help="A model name (perceptron, logreg, linear, mlp, cnn, lenet, alexnet), a "
                   ".json/.yaml model file or an .onnx file.")
@click.option("--input-shape", default=None,
              help="Input size without the batch axis, e.g. 1,28,28 (default: the model file's, "
                   "else 1,28,28).")
@click.option("--classes", "n_classes", type=click.IntRange(min=1), default=10, show_default=True,
              help="Number of classes (the output width).")
@click.option("--hidden", default=None, help="Hidden sizes for mlp and cnn, e.g. 256,128.")
@click.option("--checkpoint", metavar="DIR", default=None,
              help="The model trained in DIR, with the size of its optimizer state.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def summary(model_name: str | None, input_shape: str | None, n_classes: int, hidden: str | None,
            checkpoint: str | None, as_json: bool) -> None:
    """Show a model's layers with their output shapes and parameter counts, the total
    (LeNet-5: 61,706) and how many are trainable. Models are listed in `gradviz.nn.MODELS`; a model file lists its layers
    (see docs/networks.md)."""
    from gradviz.nn.module import SummaryRow, format_summary

    report = summary_report(model_name, parse_shape(input_shape), n_classes, hidden,
                            checkpoint)
    if as_json:
        click.echo(json.dumps(report))
        return
    rows = [SummaryRow(r["name"], r["layer"], tuple(r["output_shape"]), r["params"], r["label"])
            for r in report["layers"]]
    name = report["model"]
    click.echo(f"{name}: {report['description']}" if report["description"] else name)
    click.echo(format_summary(rows, report["input_shape"]))
    click.echo(f"trainable params: {report['trainable_params']:,}  "
               f"non-trainable params: {report['non_trainable_params']:,}")
    state = report.get("optimizer_state")
    if state is not None:
        click.echo(f"optimizer state ({state['optimizer']}): {state['values']:,} values in "
                   f"{state['tensors']} tensor(s)")
