"""`gradviz export`: a trained model's inference graph as an ONNX file."""
from __future__ import annotations

import json

import click


@click.command("export")
@click.option("--checkpoint", metavar="DIR", required=True,
              help="A training checkpoint (gradviz train --checkpoint DIR).")
@click.option("-o", "--output", "path", required=True, metavar="FILE.onnx",
              help="Where to write the ONNX model.")
@click.option("--normalized-inputs", is_flag=True,
              help="Leave the training run's input normalization out (the model then takes "
                   "normalized inputs).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def export(checkpoint: str, path: str, normalized_inputs: bool, as_json: bool) -> None:
    """Write the model of a checkpoint, with its trained weights, as ONNX (opset 17; needs
    `pip install 'gradviz[onnx]'`). It runs in ONNX Runtime and imports back into gradviz.

    \b
    Example:
      gradviz export --checkpoint run1 -o model.onnx
    """
    from gradviz.files import check_output_file
    from gradviz.interop.onnx_export import export_checkpoint, export_text

    check_output_file(path, "-o")
    report = export_checkpoint(checkpoint, path, raw_inputs=not normalized_inputs)
    click.echo(json.dumps(report) if as_json else export_text(report))
