"""Looking inside a model (a named one, a model file, or an imported .onnx file): its loss at one
input as a graph to draw, and a gradient check of every parameter tensor.

`model_point(model, ...)` builds the scalar f = cross-entropy(model(x), class `label`) for one
input x (given, or drawn from the seed) and returns it with values for every leaf: what
`gradviz draw model.onnx --random-input` draws with values and gradients. `gradient_check`
compares backprop with central finite differences for each parameter tensor, along a random
direction (one pair of evaluations per tensor), and, where a tensor disagrees, checks every
node's local derivative on its own (`gradviz.verify.node_checks.check_nodes`) to name the node
whose rule is wrong.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from gradviz.errors import GradvizError

RTOL = 1e-5


def load_any_model(name: str, input_shape=None, n_classes: int = 10, *, dtype: str = "float32",
                   logits: bool = False):
    """A named model, a .json/.yaml model file, or an .onnx file (its own input shape and
    outputs; `logits` leaves out a final Softmax)."""
    from gradviz.interop import is_onnx_file

    if is_onnx_file(name):
        from gradviz.interop.onnx_import import OnnxModel

        return OnnxModel(name, logits=logits, dtype=dtype, input_shape=input_shape)
    from gradviz.nn.models import build_model

    return build_model(name, input_shape, n_classes, dtype=dtype)


def read_input(path: str, shape: tuple[int, ...]) -> np.ndarray:
    """One input example from a .npy file (its size must be the model's input size)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise GradvizError(f"cannot read input {path}: {' '.join(str(exc).split())}") from None
    if arr.size != int(np.prod(shape)):
        raise GradvizError(f"{path} holds {arr.size} numbers; the model takes "
                           f"{'x'.join(map(str, shape))} = {int(np.prod(shape))}")
    return arr.reshape((1, *shape))


def model_point(model, *, x_value: np.ndarray | None = None, seed: int = 0, label: int = 0,
                dtype: str | None = None):
    """(f, env, x): f = cross-entropy of the model's output at one input for class `label` (for
    one output, binary cross-entropy with target `label`), env values for x and every parameter
    (the model's `init`: an ONNX file's weights, or the seeded initialization)."""
    from gradviz.nn.losses import classification_loss, one_hot
    from gradviz.ops import const, var

    shape = tuple(model.input_shape)
    params = model.parameters()
    dtype = dtype or (params[0].dtype if params else "float32")
    x = var("x", (1, *shape), dtype)
    out = model(x, train=False)
    if out.ndim != 2:
        raise GradvizError(f"the model's output has shape {out.shape}; gradients are drawn for "
                           "(N, classes) outputs")
    k = out.shape[1]
    if not 0 <= label < max(k, 2):
        raise GradvizError(f"--label must be a class from 0 to {max(k, 2) - 1}, got {label}")
    target = np.array([[float(label)]]) if k == 1 else one_hot([label], k)
    f = classification_loss(out, const(np.asarray(target, dtype=dtype), dtype=dtype))
    rng = np.random.default_rng(seed)
    values = model.init(np.random.default_rng([seed, 1]))
    if x_value is None:
        x_value = rng.normal(size=(1, *shape))
    env = {x: np.asarray(x_value, dtype=dtype).reshape(x.shape)}
    env.update({p: np.asarray(v, dtype=dtype) for p, v in values.items()})
    return f, env, x


def draw_model(name: str, path: str, *, input_file: str | None = None, random_input: bool = False,
               seed: int = 0, label: int = 0, view: str = "both", collapse: bool = False,
               check: bool = False, input_shape=None, fmt: str | None = None,
               rankdir: str | None = None, legend: bool = True, scale: float | None = None,
               dpi: float | None = None) -> str:
    """Draw a model: its forward graph (no input given), or the loss at one input with values
    and gradients (`input_file`, a .npy file, or `random_input`). Returns the path written.
    `rankdir`, `legend` as `gradviz.render.draw`; `scale`/`dpi` for PNG."""
    from gradviz.ops import var
    from gradviz.render import draw

    model = load_any_model(name, input_shape, logits=input_file is not None or random_input)
    title = getattr(model, "description", "") or name
    if input_file is None and not random_input:
        if check or view == "backward-graph":
            raise GradvizError("this view needs an input: --input FILE.npy or --random-input")
        params = model.parameters()
        x = var("x", (1, *model.input_shape), params[0].dtype if params else "float32")
        diagram = draw(model(x, train=False), None, collapse=collapse, title=title,
                       rankdir=rankdir, legend=legend)
    else:
        x_value = None if input_file is None else read_input(input_file, model.input_shape)
        f, env, _ = model_point(model, x_value=x_value, seed=seed, label=label)
        diagram = draw(f, env, view=view, check=check, collapse=collapse,
                       title=f"{title}: loss for class {label} at "
                             f"{'a random input' if input_file is None else input_file}",
                       output_name="loss", rankdir=rankdir, legend=legend)
    diagram.render(path, fmt, scale=scale, dpi=dpi)
    return path


@dataclass
class TensorCheck:
    """One parameter tensor: the directional derivative <grad, v> by backprop and by central
    differences along a random unit direction v, and whether they agree."""

    name: str
    size: int
    backprop: float
    numeric: float
    agree: bool


@dataclass
class GradientCheck:
    model: str
    loss: float
    rows: list[TensorCheck]
    wrong_nodes: list[dict] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        return all(r.agree for r in self.rows)

    def to_json(self) -> dict:
        return {"model": self.model, "loss": self.loss, "agree": self.agree,
                "tensors": [r.__dict__ for r in self.rows], "wrong_nodes": self.wrong_nodes}

    def table(self) -> str:
        head = ("parameter", "size", "backprop", "finite diff.", "")
        cells = [head] + [(r.name, f"{r.size:,}", f"{r.backprop:.10g}", f"{r.numeric:.10g}",
                           "agree" if r.agree else "DISAGREE") for r in self.rows]
        widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
        lines = [f"{self.model}: loss {self.loss:.10g} at a random input (float64); "
                 "directional derivatives along a random direction per tensor"]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
        if self.agree:
            lines.append(f"backprop and finite differences agree for all {len(self.rows)} "
                         "parameter tensors")
        else:
            bad = [r.name for r in self.rows if not r.agree]
            lines.append(f"backprop and finite differences disagree for {', '.join(bad)}")
            for w in self.wrong_nodes:
                lines.append(f"the rule of node {w['node']} is wrong (its input {w['input']}: "
                             f"VJP rule vs finite differences of the node alone)")
        return "\n".join(lines)


def gradient_check(name: str, *, seed: int = 0, label: int = 0, input_shape=None,
                   nodes: bool = True) -> GradientCheck:
    """Backprop vs finite differences for every parameter tensor of a model, in float64, at a
    random input; where one disagrees (and `nodes`), every node is checked on its own."""
    from gradviz.core.autodiff import backprop
    from gradviz.core.interpret import evaluate

    model = load_any_model(name, input_shape, logits=True, dtype="float64")
    f, env, _ = model_point(model, seed=seed, label=label, dtype="float64")
    result = backprop(f, env)
    rng = np.random.default_rng([seed, 3])
    rows = []
    for p in model.parameters():
        v = rng.normal(size=p.shape)
        v /= np.linalg.norm(v) or 1.0
        analytic = float(np.sum(np.asarray(result.grad(p)) * v))
        base = env[p]
        h = 1e-6 * max(1.0, float(np.max(np.abs(base))) if base.size else 1.0)
        plus = float(evaluate(f, {**env, p: base + h * v})[f])
        minus = float(evaluate(f, {**env, p: base - h * v})[f])
        numeric = (plus - minus) / (2 * h)
        ok = abs(analytic - numeric) <= RTOL * max(1.0, abs(analytic), abs(numeric)) * 10 \
            or abs(analytic - numeric) <= 1e-7
        rows.append(TensorCheck(p.name, p.size, analytic, numeric, ok))
    report = GradientCheck(name, float(result.value), rows)
    if not report.agree and nodes:
        from gradviz.verify.node_checks import check_nodes

        found = check_nodes(f, env, symbolic=False, seed=seed)
        report.wrong_nodes = [{"node": r.label, "input": r.operand_label}
                              for r in found.rows if r.status == "wrong"][:5]
    return report


def gradient_check_json(report: GradientCheck) -> str:
    return json.dumps(report.to_json())
