"""A trained model's inference graph as an ONNX file.

`export_checkpoint("run1", "model.onnx")` (what `gradviz export` does) writes the model of a
training checkpoint with its trained weights; `export_model(model, params, path)` any
`Sequential` of gradviz layers (or an imported `OnnxModel`, written back with new weights).

Layers map to ONNX operators one to one: Linear -> Gemm, Conv2d -> Conv, MaxPool2d -> MaxPool,
AvgPool2d -> AveragePool, Flatten -> Flatten, activations to theirs (Maxout -> Reshape and
ReduceMax, Step -> Greater and Cast); Dropout is left out (inference). The input is named
``input`` with a symbolic batch axis ``N``, the output ``output``. The file is written atomically
and checked with `onnx.checker`. Inputs are what the model saw in training: normalize raw data
with the checkpoint's statistics first (`export_checkpoint` returns them).
"""
from __future__ import annotations

import os

import numpy as np

from gradviz.errors import GradvizError
from gradviz.interop import require_onnx

EXPORT_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "output"


class _Writer:
    def __init__(self, params: dict[str, np.ndarray], dtype):
        self.onnx = require_onnx()
        self.helper = self.onnx.helper
        self.params, self.dtype = params, np.dtype(dtype)
        self.nodes, self.initializers, self.used = [], [], set()

    def name(self, hint: str) -> str:
        name, n = hint, 1
        while name in self.used:
            n += 1
            name = f"{hint}_{n}"
        self.used.add(name)
        return name

    def weight(self, name: str) -> str:
        if name not in self.params:
            raise GradvizError(f"no value for parameter {name!r}")
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(
            np.asarray(self.params[name], dtype=self.dtype), name))
        return name

    def constant(self, hint: str, value) -> str:
        """A Constant node (not an initializer: importers keep it fixed, not trainable)."""
        from onnx import numpy_helper

        name = self.name(hint)
        self.nodes.append(self.helper.make_node(
            "Constant", [], [name], name=name,
            value=numpy_helper.from_array(np.asarray(value), name)))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, **attrs) -> str:
        out = self.name(hint)
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _layer(w: _Writer, layer, x: str, key: str) -> str:
    from gradviz.nn import layers as L

    prefix = layer._prefix
    if isinstance(layer, L.Sequential):
        for i, child in enumerate(layer.layers):
            x = _layer(w, child, x, f"{key}{i}")
        return x
    if isinstance(layer, L.Linear):
        ins = [x, w.weight(prefix + "weight")]
        if layer.bias is not None:
            ins.append(w.weight(prefix + "bias"))
        return w.op("Gemm", ins, f"linear{key}")
    if isinstance(layer, L.Conv2d):
        ins = [x, w.weight(prefix + "weight")]
        if layer.bias is not None:
            ins.append(w.weight(prefix + "bias"))
        ph, pw = layer.padding
        return w.op("Conv", ins, f"conv{key}", kernel_shape=list(layer.kernel),
                    strides=list(layer.stride), pads=[ph, pw, ph, pw])
    if isinstance(layer, (L.MaxPool2d, L.AvgPool2d)):
        op = "MaxPool" if isinstance(layer, L.MaxPool2d) else "AveragePool"
        return w.op(op, [x], f"pool{key}", kernel_shape=list(layer.kernel),
                    strides=list(layer.stride))
    if isinstance(layer, L.Flatten):
        return w.op("Flatten", [x], f"flatten{key}", axis=1)
    if isinstance(layer, L.Dropout):
        return x
    simple = {L.ReLU: "Relu", L.Tanh: "Tanh", L.Sigmoid: "Sigmoid"}
    for cls, op in simple.items():
        if type(layer) is cls:
            return w.op(op, [x], f"{op.lower()}{key}")
    if isinstance(layer, L.LeakyReLU):
        return w.op("LeakyRelu", [x], f"leakyrelu{key}", alpha=layer.slope)
    if isinstance(layer, L.ELU):
        return w.op("Elu", [x], f"elu{key}", alpha=layer.alpha)
    if isinstance(layer, L.Softmax):
        return w.op("Softmax", [x], f"softmax{key}", axis=layer.axis)
    if isinstance(layer, L.Step):
        positive = w.op("Greater", [x, w.constant("zero", np.zeros((), w.dtype))], f"step{key}")
        return w.op("Cast", [positive], f"cast{key}",
                    to=w.helper.np_dtype_to_tensor_dtype(w.dtype))
    if isinstance(layer, L.Maxout):
        grouped = w.op("Reshape", [x, w.constant("shape", np.array([0, -1, layer.pieces]))],
                       f"maxout{key}")
        return w.op("ReduceMax", [grouped], f"maxout{key}", axes=[2], keepdims=0)
    raise GradvizError(f"cannot export layer {layer.describe()} to ONNX")


def model_proto(model, params: dict[str, np.ndarray], input_shape=None, *, name: str = "gradviz",
                opset: int = EXPORT_OPSET, normalizer=None):
    """The ONNX `ModelProto` of `model`'s inference graph with parameter values `params` (by
    name). An `OnnxModel` gives back its own graph with the new values. With a `normalizer`
    (a `gradviz.data.Normalizer`) the graph starts with its (x - mean) / std, so it takes raw
    inputs."""
    from gradviz.interop.onnx_import import OnnxModel
    from gradviz.nn.layers import Sequential

    onnx = require_onnx()
    if isinstance(model, OnnxModel):
        return _reweighted(model, params)
    if not isinstance(model, Sequential):
        raise GradvizError(f"cannot export a {type(model).__name__} to ONNX (a Sequential of "
                           "gradviz layers, or an imported ONNX model)")
    shape = tuple(model.input_shape if input_shape is None else input_shape)
    dtype = model.parameters()[0].dtype if model.parameters() else "float32"
    w = _Writer(params, dtype)
    x = INPUT_NAME
    if normalizer is not None and normalizer.kind != "none":
        def stat(values):
            values = np.asarray(values, dtype=dtype)
            return values if values.ndim == 0 else values.reshape(shape)

        x = w.op("Sub", [x, w.constant("mean", stat(normalizer.mean))], "normalize")
        x = w.op("Div", [x, w.constant("std", stat(normalizer.std))], "normalize")
    out = _layer(w, model, x, "")
    if out == INPUT_NAME:
        out = w.op("Identity", [out], "identity")
    w.nodes[-1].output[0] = OUTPUT_NAME
    n_out = model.output_shape(shape)
    elem = w.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    graph = w.helper.make_graph(
        w.nodes, name,
        [w.helper.make_tensor_value_info(INPUT_NAME, elem, ["N", *shape])],
        [w.helper.make_tensor_value_info(OUTPUT_NAME, elem, ["N", *n_out])],
        initializer=w.initializers)
    proto = w.helper.make_model(graph, producer_name="gradviz",
                                opset_imports=[w.helper.make_opsetid("", opset)])
    proto.ir_version = min(proto.ir_version, 8)  # readable by ONNX Runtime releases since 1.10
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:  # a bug here, not bad input
        raise RuntimeError(f"exported ONNX model does not validate: {exc}") from None
    return proto


def _reweighted(model, params: dict[str, np.ndarray]):
    from onnx import numpy_helper

    proto = model.proto.__class__()
    proto.CopyFrom(model.proto)
    for i, tensor in enumerate(proto.graph.initializer):
        if tensor.name in params:
            old = numpy_helper.to_array(tensor)
            new = np.asarray(params[tensor.name], dtype=old.dtype).reshape(old.shape)
            proto.graph.initializer[i].CopyFrom(numpy_helper.from_array(new, tensor.name))
    return proto


def export_model(model, params: dict[str, np.ndarray], path: str | os.PathLike,
                 input_shape=None, **kwargs) -> str:
    """Write `model_proto(...)` to `path` atomically; returns the path."""
    from gradviz.files import write_atomic

    proto = model_proto(model, params, input_shape, **kwargs)
    path = os.fspath(path)
    try:
        write_atomic(path, proto.SerializeToString())
    except OSError as exc:
        raise GradvizError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def export_checkpoint(checkpoint: str | os.PathLike, path: str | os.PathLike, *,
                      raw_inputs: bool = True) -> dict:
    """Export the model of a training checkpoint with its trained weights to `path`. With
    `raw_inputs` (the default) the graph starts with the training run's normalization, so it
    takes raw inputs as `TrainedModel.outputs` does; without, normalized ones. Returns a
    summary: path, model, epoch, input shape, outputs, operators, opset."""
    from gradviz.nn.training import TrainedModel
    from gradviz.interop.onnx_import import OnnxModel

    trained = TrainedModel(checkpoint)
    norm = trained.normalizer if raw_inputs and not isinstance(trained.model, OnnxModel) \
        else None
    proto = model_proto(trained.model, trained.params, trained.input_shape,
                        name=f"gradviz-{trained.config.model}", normalizer=norm)
    from gradviz.files import write_atomic

    path = os.fspath(path)
    try:
        write_atomic(path, proto.SerializeToString())
    except OSError as exc:
        raise GradvizError(f"cannot write {path}: {exc.strerror or exc}") from None
    ops: dict[str, int] = {}
    for node in proto.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {"path": path, "model": trained.config.model, "epoch": trained.epoch,
            "input_shape": list(trained.input_shape), "outputs": trained.n_outputs,
            "opset": next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
            "operators": ops, "raw_inputs": norm is not None}


def export_text(report: dict) -> str:
    """The lines `gradviz export` prints."""
    ops = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in report["operators"].items())
    shape = "x".join(map(str, report["input_shape"]))
    return (f"wrote {report['path']}: {report['model']} (epoch {report['epoch']}), input "
            f"N x {shape}, {report['outputs']} outputs, ONNX opset {report['opset']}\n"
            f"operators: {ops}\n"
            + ("it takes raw inputs: the training run's normalization is its first Sub and Div"
               if report["raw_inputs"] else "it takes inputs normalized as in training"))
