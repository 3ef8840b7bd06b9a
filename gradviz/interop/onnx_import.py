"""ONNX files as gradviz models: every ONNX node becomes gradviz primitives, every float
initializer a trainable `param` (holding the file's values), so an imported network can be
summarized, drawn with values and gradients, gradient-checked node by node, trained and evaluated
like a built-in model.

    model = OnnxModel("model.onnx")
    x = gv.var("x", (1, *model.input_shape), "float32")
    y = model(x, train=False)                  # a gradviz graph
    values = model.init(rng)                   # {param node: the file's weights}

Supported operators (ONNX default domain, opsets `MIN_OPSET` to `MAX_OPSET`): see `SUPPORTED`.
Shape-computing operators (Shape, Gather, Unsqueeze, Squeeze, Cast, and Concat of constants) are
folded while the graph is built, since every gradviz shape is static. A file with anything else is
refused with one line naming every unsupported operator.
"""
from __future__ import annotations

import os
import numpy as np

from gradviz.core.ir import Node
from gradviz.errors import GradvizError, ShapeError
from gradviz.interop import require_onnx
from gradviz.nn.module import Module, SummaryRow

MIN_OPSET, MAX_OPSET = 9, 23

#: Operators mapped onto gradviz primitives and composites.
SUPPORTED = ("Add", "AveragePool", "BatchNormalization", "Concat", "Constant", "Conv", "Div",
             "Dropout", "Elu", "Flatten", "Gemm", "GlobalAveragePool", "Identity", "LeakyRelu",
             "LogSoftmax", "MatMul", "MaxPool", "Mul", "Relu", "Reshape", "Sigmoid", "Softmax",
             "Sub", "Tanh", "Transpose")
#: Operators accepted only on constant (shape) inputs, folded at build time.
FOLDED = ("Cast", "Gather", "Shape", "Squeeze", "Unsqueeze")

# inputs that stay constants (not trainable): op -> input positions
_CONSTANT_INPUTS = {"BatchNormalization": (3, 4), "Reshape": (1,), "Gather": (1,),
                    "Unsqueeze": (1,), "Squeeze": (1,)}


def _load(source, onnx):
    if isinstance(source, onnx.ModelProto):
        return source, "<model>"
    if isinstance(source, (bytes, bytearray)):
        try:
            return onnx.load_from_string(bytes(source)), "<bytes>"
        except Exception as exc:  # noqa: BLE001 - protobuf's errors vary by version
            raise GradvizError(f"not an ONNX model: {_line(exc)}") from None
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise GradvizError(f"no such ONNX file: {path}")
    try:
        return onnx.load(path), path
    except Exception as exc:  # noqa: BLE001
        raise GradvizError(f"{path}: not a readable ONNX model ({_line(exc)})") from None


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def unsupported_ops(model) -> list[str]:
    """The operators of an ONNX model this importer does not handle (sorted, each once)."""
    bad = set()
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or \
                node.op_type not in SUPPORTED and node.op_type not in FOLDED:
            bad.add(node.op_type if node.domain in ("", "ai.onnx")
                    else f"{node.domain}.{node.op_type}")
    return sorted(bad)


def opset_of(model) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 1


class OnnxModel(Module):
    """An ONNX model (a path, bytes or an `onnx.ModelProto`) as a gradviz `Module`.

    `logits=True` leaves out a final Softmax (the losses take logits; the predicted class is the
    same). `dtype` overrides the parameters' float type (float64 for gradient checks).
    `input_shape` is the input size without the batch axis, from the file (or given, where the
    file leaves sizes symbolic)."""

    def __init__(self, source, *, logits: bool = False, dtype: str | None = None,
                 input_shape=None):
        super().__init__()
        onnx = require_onnx()
        from onnx import numpy_helper

        self.proto, self.path = _load(source, onnx)
        self.opset = opset_of(self.proto)
        where = self.path
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise GradvizError(f"{where}: ONNX opset {self.opset}; gradviz imports opsets "
                               f"{MIN_OPSET} to {MAX_OPSET}")
        bad = unsupported_ops(self.proto)
        if bad:
            raise GradvizError(f"{where}: unsupported ONNX operator(s): {', '.join(bad)} "
                               f"(gradviz imports {', '.join(SUPPORTED)})")
        graph = self.proto.graph
        self.nodes = list(graph.node)
        inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in inits]
        if len(inputs) != 1:
            raise GradvizError(f"{where}: gradviz imports models with one input, this one has "
                               f"{len(inputs)} ({', '.join(i.name for i in inputs)})")
        if not graph.output:
            raise GradvizError(f"{where}: the graph has no output")
        self.input_name = inputs[0].name
        self.output_name = graph.output[0].name
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in inputs[0].type.tensor_type.shape.dim]
        if input_shape is not None:
            self.input_shape = tuple(int(d) for d in input_shape)
        elif len(dims) < 2 or any(d is None for d in dims[1:]):
            raise GradvizError(f"{where}: input {self.input_name!r} has shape "
                               f"{_dims(dims)}; give its size without the batch axis "
                               "(--input-shape)")
        else:
            self.input_shape = tuple(int(d) for d in dims[1:])
        self.declared_batch = dims[0] if dims else None
        self.logits = logits
        self.dropped_softmax = False
        producer = {o: n for n in self.nodes for o in n.output}
        last = producer.get(self.output_name)
        if logits and last is not None and last.op_type == "Softmax":
            self.output_name = last.input[0]
            self.dropped_softmax = True
        constant = {node.input[i] for node in self.nodes
                    for i in _CONSTANT_INPUTS.get(node.op_type, ()) if i < len(node.input)}
        floats = {k: v for k, v in inits.items() if v.dtype.kind == "f"}
        if dtype is None:
            dtype = "float64" if any(v.dtype == np.float64 for v in floats.values()) \
                else "float32"
        self.dtype = dtype
        self.constants = {k: v for k, v in inits.items() if k not in floats or k in constant}
        self.initial = {k: v for k, v in floats.items() if k not in constant}
        used = {i for n in self.nodes for i in n.input}
        for name, value in self.initial.items():
            if name in used:
                self._param(name, value.shape, dtype)
        self.description = (f"ONNX model {os.path.basename(where)} (opset {self.opset}, "
                            f"{len(self.nodes)} nodes)"
                            + ("; its final Softmax left out: the losses take logits"
                               if self.dropped_softmax else ""))
        self.labels: dict[int, str] = {}
        self._shapes: dict[str, tuple] = {}

    # -- Module ----------------------------------------------------------------------------------
    def _initial_values(self, rng):
        return {name: self.initial[name] for name in self._params}

    def describe(self) -> str:
        return f"OnnxModel({os.path.basename(self.path)})"

    def forward(self, x: Node, train: bool) -> Node:
        if x.shape[1:] != self.input_shape:
            raise ShapeError(f"{self.describe()} takes inputs of {_dims(self.input_shape)}, got "
                             f"{_dims(x.shape[1:])}")
        env: dict[str, object] = {self.input_name: x}
        env.update(self.constants)
        env.update({name: node for name, node in self._params.items()})
        build = _Builder(self, x.shape[0])
        self._shapes = {}
        for i, node in enumerate(self.nodes):
            ins = [env[name] if name else None for name in node.input]
            try:
                outs = build(node, ins)
            except GradvizError as exc:
                kind = ShapeError if isinstance(exc, ShapeError) else GradvizError
                raise kind(f"ONNX node {i} {node.op_type} {node.name!r}: {exc}") from None
            except (ValueError, IndexError, KeyError, TypeError) as exc:
                raise GradvizError(f"ONNX node {i} {node.op_type} {node.name!r}: "
                                   f"{_line(exc)}") from None
            for name, value in zip(node.output, outs):
                if name:
                    env[name] = value
                    self._shapes[name] = value.shape if isinstance(value, Node) \
                        else tuple(np.shape(value))
        out = env[self.output_name]
        if not isinstance(out, Node):
            raise GradvizError(f"{self.path}: the output does not depend on the input")
        return out

    def summary(self, input_shape=None) -> list[SummaryRow]:
        """One row per ONNX node: its operator, output shape and the parameters it reads."""
        from gradviz.ops import var

        shape = self.input_shape if input_shape is None else tuple(input_shape)
        self(var("input", (1, *shape), self.dtype), train=False)
        rows = []
        for i, node in enumerate(self.nodes):
            out = self._shapes.get(node.output[0], ())
            params = sum(self._params[n].size for n in node.input if n in self._params)
            rows.append(SummaryRow(str(i), _describe(node), tuple(out[1:]) if out else (),
                                   params, node.name))
            if node.output[0] == self.output_name:
                break
        return rows


def _dims(dims) -> str:
    return "x".join("?" if d is None else str(d) for d in dims) if dims else "scalar"


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _describe(node) -> str:
    a = _attrs(node)
    extra = []
    if node.op_type in ("Conv", "MaxPool", "AveragePool") and "kernel_shape" in a:
        extra.append("x".join(map(str, a["kernel_shape"])))
        if any(s != 1 for s in a.get("strides", [])):
            extra.append(f"stride {a['strides'][0]}")
        if any(p for p in a.get("pads", [])):
            extra.append(f"pad {a['pads'][0]}")
    if node.op_type == "Gemm" and a.get("transB"):
        extra.append("transB")
    return node.op_type + (f"({', '.join(extra)})" if extra else "")


class _Builder:
    """Turns one ONNX node into gradviz nodes (or folds it to a constant)."""

    def __init__(self, model: OnnxModel, batch: int):
        self.model, self.batch, self.dtype, self.opset = model, batch, model.dtype, model.opset

    def __call__(self, node, ins):
        return getattr(self, "op_" + node.op_type)(node, ins, _attrs(node))

    # values
    def node(self, value) -> Node:
        from gradviz.ops import const

        if isinstance(value, Node):
            return value
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise GradvizError(f"cannot use a {arr.dtype} constant")
        return const(arr.astype(self.dtype), dtype=self.dtype)

    @staticmethod
    def const(value) -> np.ndarray:
        if isinstance(value, Node):
            raise GradvizError("needs a constant here, got a value computed from the input")
        return np.asarray(value)

    def _binary(self, ins, fn, np_fn):
        a, b = ins
        if not isinstance(a, Node) and not isinstance(b, Node):
            return [np_fn(np.asarray(a), np.asarray(b))]
        return [fn(self.node(a), self.node(b))]

    # arithmetic
    def op_Add(self, node, ins, a):
        from gradviz.ops import add
        return self._binary(ins, add, np.add)

    def op_Sub(self, node, ins, a):
        from gradviz.ops import sub
        return self._binary(ins, sub, np.subtract)

    def op_Mul(self, node, ins, a):
        from gradviz.ops import mul
        return self._binary(ins, mul, np.multiply)

    def op_Div(self, node, ins, a):
        from gradviz.ops import div
        if not any(isinstance(v, Node) for v in ins) and \
                all(np.asarray(v).dtype.kind in "iu" for v in ins):
            return [np.floor_divide(np.asarray(ins[0]), np.asarray(ins[1]))]
        return self._binary(ins, div, np.divide)

    def op_MatMul(self, node, ins, a):
        from gradviz.ops import matmul, reshape

        x, w = self.node(ins[0]), self.node(ins[1])
        if w.ndim != 2 or x.ndim < 1:
            raise GradvizError(f"MatMul of {x.shape} and {w.shape}: gradviz multiplies by a "
                               "matrix only")
        if x.ndim <= 2:
            return [matmul(x, w)]
        flat = reshape(x, (-1, x.shape[-1]))
        return [reshape(matmul(flat, w), (*x.shape[:-1], w.shape[1]))]

    def op_Gemm(self, node, ins, a):
        from gradviz.ops import add, matmul, mul, transpose

        x, w = self.node(ins[0]), self.node(ins[1])
        if a.get("transA", 0):
            x = transpose(x)
        if a.get("transB", 0):
            w = transpose(w)
        y = matmul(x, w)
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        if alpha != 1.0:
            y = mul(y, alpha)
        if len(ins) > 2 and ins[2] is not None:
            c = self.node(ins[2])
            y = add(y, c if beta == 1.0 else mul(c, beta))
        return [y]

    # activations
    def op_Relu(self, node, ins, a):
        from gradviz.ops import relu
        return [relu(self.node(ins[0]))]

    def op_Tanh(self, node, ins, a):
        from gradviz.ops import tanh
        return [tanh(self.node(ins[0]))]

    def op_Sigmoid(self, node, ins, a):
        from gradviz.ops import sigmoid
        return [sigmoid(self.node(ins[0]))]

    def op_LeakyRelu(self, node, ins, a):
        from gradviz.ops import leaky_relu
        return [leaky_relu(self.node(ins[0]), float(a.get("alpha", 0.01)))]

    def op_Elu(self, node, ins, a):
        from gradviz.ops import elu
        return [elu(self.node(ins[0]), float(a.get("alpha", 1.0)))]

    def _softmax(self, ins, a, fn):
        from gradviz.ops import reshape

        x = self.node(ins[0])
        if self.opset >= 13:
            return [fn(x, int(a.get("axis", -1)))]
        axis = int(a.get("axis", 1)) % max(x.ndim, 1)  # before 13: over the flattened tail
        if axis == x.ndim - 1:
            return [fn(x, -1)]
        lead = int(np.prod(x.shape[:axis], dtype=np.int64))
        return [reshape(fn(reshape(x, (lead, -1)), -1), x.shape)]

    def op_Softmax(self, node, ins, a):
        from gradviz.ops.composite import softmax
        return self._softmax(ins, a, softmax)

    def op_LogSoftmax(self, node, ins, a):
        from gradviz.ops.composite import log_softmax
        return self._softmax(ins, a, log_softmax)

    # convolution and pooling
    def _pads(self, a, x: Node, kernel, stride) -> tuple[int, int]:
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else str(auto)
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = []
            for size, k, s in zip(x.shape[2:], kernel, stride):
                out = -(-size // s)
                total = max(0, (out - 1) * s + k - size)
                if total % 2:
                    raise GradvizError(f"auto_pad {auto} needs uneven padding here; gradviz pads "
                                       "both sides equally")
                pads.append(total // 2)
            return tuple(pads)
        if auto == "VALID":
            return (0, 0)
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]:
            raise GradvizError(f"pads {pads}: gradviz pads both sides of an axis equally")
        return (int(pads[0]), int(pads[1]))

    def _check_2d(self, x: Node, what: str) -> None:
        if x.ndim != 4:
            raise GradvizError(f"{what} of a {x.ndim}-D input: gradviz has 2-D (N, C, H, W) "
                               "convolution and pooling only")

    def op_Conv(self, node, ins, a):
        from gradviz.ops import add, broadcast_to, reshape
        from gradviz.ops.conv import conv2d

        x, w = self.node(ins[0]), self.node(ins[1])
        self._check_2d(x, "Conv")
        if int(a.get("group", 1)) != 1:
            raise GradvizError(f"group {a['group']}: gradviz has ungrouped convolutions only")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise GradvizError(f"dilations {a['dilations']}: gradviz has undilated convolutions")
        kernel = tuple(w.shape[2:])
        stride = tuple(int(s) for s in a.get("strides", [1, 1]))
        y = conv2d(x, w, stride, self._pads(a, x, kernel, stride))
        if len(ins) > 2 and ins[2] is not None:
            b = self.node(ins[2])
            y = add(y, broadcast_to(reshape(b, (b.shape[0], 1, 1)), y.shape))
        return [y]

    def _pool(self, node, ins, a, fn, what):
        x = self.node(ins[0])
        self._check_2d(x, what)
        kernel = tuple(int(k) for k in a["kernel_shape"])
        stride = tuple(int(s) for s in a.get("strides", [1] * len(kernel)))
        if any(self._pads(a, x, kernel, stride)):
            raise GradvizError(f"{what} with padding: gradviz pools without padding")
        if int(a.get("ceil_mode", 0)):
            raise GradvizError(f"{what} with ceil_mode=1: gradviz rounds output sizes down")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise GradvizError(f"{what} with dilations: gradviz pools undilated windows")
        if len(node.output) > 1 and node.output[1]:
            raise GradvizError(f"{what}'s Indices output is not supported")
        return [fn(x, kernel, stride)]

    def op_MaxPool(self, node, ins, a):
        from gradviz.ops.conv import max_pool2d
        return self._pool(node, ins, a, max_pool2d, "MaxPool")

    def op_AveragePool(self, node, ins, a):
        from gradviz.ops.conv import avg_pool2d
        return self._pool(node, ins, a, avg_pool2d, "AveragePool")

    def op_GlobalAveragePool(self, node, ins, a):
        from gradviz.ops import mean
        x = self.node(ins[0])
        return [mean(x, tuple(range(2, x.ndim)), keepdims=True)]

    def op_BatchNormalization(self, node, ins, a):
        from gradviz.ops import add, div, mul, reshape, sub

        if int(a.get("training_mode", 0)):
            raise GradvizError("BatchNormalization in training mode: gradviz imports it for "
                               "inference (running statistics)")
        if any(o for o in node.output[1:]):
            raise GradvizError("BatchNormalization's running-statistics outputs are not "
                               "supported")
        x = self.node(ins[0])
        eps = float(a.get("epsilon", 1e-5))
        mean, var = self.const(ins[3]), self.const(ins[4])
        lead = (-1,) + (1,) * (x.ndim - 2)
        std = np.sqrt(var.astype(np.float64) + eps).reshape(lead)
        scale, bias = self.node(ins[1]), self.node(ins[2])
        y = div(sub(x, self.node(mean.reshape(lead))), self.node(std))
        return [add(mul(y, reshape(scale, lead)), reshape(bias, lead))]

    # shapes
    def op_Flatten(self, node, ins, a):
        from gradviz.ops import reshape

        x = ins[0]
        shape = np.shape(x) if not isinstance(x, Node) else x.shape
        axis = int(a.get("axis", 1)) % (len(shape) + 1) if shape else 0
        lead = int(np.prod(shape[:axis], dtype=np.int64))
        if not isinstance(x, Node):
            return [np.reshape(x, (lead, -1))]
        return [reshape(x, (lead, -1))]

    def op_Reshape(self, node, ins, a):
        from gradviz.ops import reshape

        x = ins[0]
        if len(ins) < 2:
            raise GradvizError("Reshape with the shape as an attribute (opset < 5)")
        target = [int(d) for d in self.const(ins[1]).reshape(-1)]
        shape = np.shape(x) if not isinstance(x, Node) else x.shape
        if not int(a.get("allowzero", 0)):
            target = [shape[i] if d == 0 and i < len(shape) else d for i, d in enumerate(target)]
        declared = self.model.declared_batch
        # A file exported for batch size 1 reshapes to (1, ...): keep this graph's batch size.
        if declared and declared != self.batch and target and target[0] == declared and \
                shape and shape[0] == self.batch and -1 not in target[1:]:
            target[0] = self.batch
        if not isinstance(x, Node):
            return [np.reshape(x, target)]
        return [reshape(x, tuple(target))]

    def op_Transpose(self, node, ins, a):
        from gradviz.ops import transpose

        x = ins[0]
        perm = a.get("perm")
        if not isinstance(x, Node):
            return [np.transpose(x, perm)]
        return [transpose(x, None if perm is None else tuple(perm))]

    def op_Concat(self, node, ins, a):
        from gradviz.ops import add, matmul, reshape, transpose

        axis = int(a["axis"])
        if not any(isinstance(v, Node) for v in ins):
            return [np.concatenate([np.asarray(v) for v in ins], axis=axis)]
        parts = [self.node(v) for v in ins]
        ndim = parts[0].ndim
        axis %= ndim
        # gradviz has no concatenation primitive: move the axis last and place each part with
        # a 0/1 matrix (a matmul, so gradients flow back to every part)
        perm = tuple(i for i in range(ndim) if i != axis) + (axis,)
        inverse = tuple(int(i) for i in np.argsort(perm))
        total = sum(p.shape[axis] for p in parts)
        out, start = None, 0
        for p in parts:
            k = p.shape[axis]
            moved = transpose(p, perm)
            lead = moved.shape[:-1]
            place = np.zeros((k, total))
            place[np.arange(k), start + np.arange(k)] = 1.0
            term = reshape(matmul(reshape(moved, (-1, k)), self.node(place)), (*lead, total))
            out = term if out is None else add(out, term)
            start += k
        return [transpose(out, inverse)]

    # pass-through
    def op_Identity(self, node, ins, a):
        return [ins[0]]

    def op_Dropout(self, node, ins, a):
        if len(node.output) > 1 and node.output[1]:
            raise GradvizError("Dropout's mask output is not supported (inference only)")
        return [ins[0]]

    def op_Constant(self, node, ins, a):
        from onnx import numpy_helper

        if "value" in a:
            return [numpy_helper.to_array(a["value"])]
        for key in ("value_float", "value_floats", "value_int", "value_ints"):
            if key in a:
                return [np.asarray(a[key], dtype=np.float32 if "float" in key else np.int64)]
        raise GradvizError(f"Constant with {', '.join(a) or 'no value'} is not supported")

    # folded (constant shape computations)
    def op_Shape(self, node, ins, a):
        x = ins[0]
        shape = np.asarray(x.shape if isinstance(x, Node) else np.shape(x), dtype=np.int64)
        start, end = a.get("start", 0), a.get("end")
        return [shape[start:end]]

    def op_Gather(self, node, ins, a):
        data, idx = self.const(ins[0]), self.const(ins[1])
        return [np.take(data, idx.astype(np.int64), axis=int(a.get("axis", 0)))]

    def _axes(self, ins, a):
        if len(ins) > 1 and ins[1] is not None:
            return [int(v) for v in self.const(ins[1]).reshape(-1)]
        return [int(v) for v in a.get("axes", [])]

    def op_Unsqueeze(self, node, ins, a):
        data = self.const(ins[0])
        out = data
        for ax in sorted(v % (data.ndim + len(self._axes(ins, a))) for v in self._axes(ins, a)):
            out = np.expand_dims(out, ax)
        return [out]

    def op_Squeeze(self, node, ins, a):
        data = self.const(ins[0])
        axes = self._axes(ins, a)
        return [np.squeeze(data, axis=tuple(axes) if axes else None)]

    def op_Cast(self, node, ins, a):
        from onnx import helper

        data = self.const(ins[0])
        return [data.astype(helper.tensor_dtype_to_np_dtype(int(a["to"])))]


def load_onnx_model(path, input_shape=None, n_classes=None, *, logits: bool = True,
                    dtype: str | None = None) -> OnnxModel:
    """An `OnnxModel` for training or evaluating on data of `input_shape` (without the batch
    axis) with `n_classes` outputs: a one-line error when the file's sizes differ."""
    model = OnnxModel(path, logits=logits, dtype=dtype)
    if input_shape is not None and tuple(input_shape) != model.input_shape:
        raise GradvizError(f"{path} takes inputs of {_dims(model.input_shape)}, the data has "
                           f"{_dims(tuple(input_shape))}")
    if n_classes is not None:
        out = model.output_shape(model.input_shape)
        if out[-1:] != (n_classes,):
            raise GradvizError(f"{path} has {_dims(out)} outputs per example; the data needs "
                               f"{n_classes}")
    return model
