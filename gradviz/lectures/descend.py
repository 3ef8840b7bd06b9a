"""Gradient descent on an expression, one row per iteration, like the slides' table.

    from gradviz.lectures.descend import descend
    run = descend("w**2", {"w": 1.0}, lr=0.1)
    [round(s.new_point["w"], 3) for s in run.steps[:3]]      # [0.8, 0.64, 0.512]
    run.status, run.minimum                                   # 'converged', {'w': ...}

The gradients are gradviz's own (the backward graph of the expression) and the update rules are
the optimizers of `gradviz.nn.optim` (SGD, momentum, RMSprop, Adam, ...): one step graph holds the
expression, its gradient and the update, evaluated once per iteration by the interpreter.

The stopping rule is the slides' one: stop when |f(w1) - f(w0)| < eps. A run ends in one of
`STATUSES`: converged, oscillating (|Δf| < eps while the gradient is as large as at the start:
the steps jump across a valley), diverged (f grew without bound: the rate overshoots), unbounded
(f falls without bound: no minimum along the path), or max-iter (still moving after `max_iter`
steps).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Mapping

import numpy as np

from gradviz.errors import GradvizError
from gradviz.core.ir import Node
from gradviz.core.text import format_number

STATUSES = ("converged", "oscillating", "diverged", "unbounded", "max-iter")
BLOWUP = 1e12          # |f| beyond BLOWUP * (1 + |f(start)|) counts as "without bound"
LR_NAME = "__lr"       # the learning-rate input; the parser refuses names starting with "__"


@dataclass(frozen=True)
class Iteration:
    """One row of the table: from `point` (value `value`, gradient `gradient`) to `new_point`
    (value `new_value`); `change` is |new_value - value|. `iteration` counts from 1."""

    iteration: int
    point: dict[str, float]
    value: float
    gradient: dict[str, float]
    new_point: dict[str, float]
    new_value: float
    change: float


@dataclass
class Descent:
    """A finished run: every iteration, why it stopped (`status`, `message`), and the settings."""

    expression: str
    variables: list[str]
    optimizer: str
    lr: float
    eps: float
    max_iter: int
    start: dict[str, float]
    steps: list[Iteration] = field(default_factory=list)
    status: str = "max-iter"
    message: str = ""

    @property
    def minimum(self) -> dict[str, float]:
        """The last point reached (the start if no step was taken)."""
        return self.steps[-1].new_point if self.steps else dict(self.start)

    @property
    def value(self) -> float:
        """f at the last point reached."""
        return self.steps[-1].new_value if self.steps else math.nan

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    def path(self) -> np.ndarray:
        """The points visited, start first: an array (iterations + 1, variables)."""
        rows = [[self.start[n] for n in self.variables]]
        rows += [[s.new_point[n] for n in self.variables] for s in self.steps]
        return np.asarray(rows, dtype=np.float64)

    def to_dict(self) -> dict:
        """The `descend --json` object."""
        return {
            "expression": self.expression, "variables": self.variables,
            "optimizer": self.optimizer, "lr": self.lr, "eps": self.eps,
            "max_iter": self.max_iter, "start": self.start, "status": self.status,
            "message": self.message, "iterations": len(self.steps),
            "minimum": {"point": self.minimum, "value": self.value},
            "steps": [_json_row(asdict(s)) for s in self.steps],
        }


#: The most iterations one descent may run: each is kept (point, value, gradient) for the table,
#: the JSON and the plot, so the bound is on memory (about 100 MB at 100,000 for a few
#: variables). `gradviz fit` descends through the same code and has the same bound.
MAX_ITER = 100_000

def _json_row(row: dict) -> dict:
    # JSON has no inf/nan: a diverged run's last values become null
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v if not isinstance(v, float) or math.isfinite(v) else None
    return {k: clean(v) for k, v in row.items()}


class _Stepper:
    """The step graph of one expression and optimizer: inputs are the point, the learning rate
    and the optimizer state; outputs are f, its gradient, the next point and the next state."""

    def __init__(self, output: Node, variables: dict[str, Node], optimizer):
        from gradviz.core.autodiff import grad
        from gradviz.ops import var

        self.names = list(variables)
        params = [variables[n] for n in self.names]
        self.lr = var(LR_NAME)
        grads = grad(output, params)
        update = optimizer.build(params, grads, self.lr)
        self.params = params
        self.state_nodes = update.state
        self.state = {node: float(update.initial[node.name]) for node in update.state}
        self.outputs = [output, *grads, *update.new_params, *update.new_state]

    def __call__(self, point: dict[str, float], lr: float):
        """(f, gradient, next point) at `point`; advances the optimizer state."""
        from gradviz.core.interpret import evaluate

        env = {p: point[n] for p, n in zip(self.params, self.names)}
        env[self.lr] = lr
        env.update(self.state)
        values = evaluate(self.outputs, env)
        out = [values[o] for o in self.outputs]
        k = len(self.names)
        f, g, new = out[0], out[1:1 + k], out[1 + k:1 + 2 * k]
        self.state = dict(zip(self.state_nodes, out[1 + 2 * k:]))
        return (float(f), dict(zip(self.names, map(float, g))),
                dict(zip(self.names, map(float, new))))


def descend(expression: str | Node, start: Mapping[str, float], *, optimizer: str = "sgd",
            lr: float | None = None, eps: float = 1e-6, max_iter: int = 10_000,
            variables: dict[str, Node] | None = None) -> Descent:
    """Minimize `expression` (a string, or a node whose variables are in `variables`) from
    `start` ({name: value}, one per variable) with `optimizer` (sgd, momentum, rmsprop, adam,
    adamax, adadelta) at rate `lr` (default: the optimizer's), until |f(w1) - f(w0)| < `eps`
    or `max_iter` iterations. Never raises on divergence: the result's status says what happened.
    """
    from gradviz.nn.optim import get_optimizer

    text, output, variables = _scalar_expression(expression, variables)
    opt = get_optimizer(optimizer)
    lr = opt.default_lr if lr is None else lr
    _check_settings(lr, eps, max_iter)
    point = _start_point(variables, start)
    run = Descent(text, list(variables), opt.name, float(lr), float(eps), int(max_iter),
                  dict(point))
    _iterate(run, _Stepper(output, variables, opt), point, lr, eps, max_iter)
    return run


def _scalar_expression(expression: str | Node, variables: dict[str, Node] | None):
    """(text, output node, {name: variable}) of a scalar expression with variables."""
    from gradviz.core.parser import parse
    from gradviz.core.text import expression_text

    if isinstance(expression, str):
        text = expression
        variables = {}
        output = parse(expression, variables)
    else:
        if variables is None:
            raise GradvizError("give the variables of a node expression as {name: node}")
        output, text = expression, expression_text(expression)
    if output.shape != ():
        raise GradvizError("gradient descent needs a scalar expression")
    if not variables:
        raise GradvizError(f"{text!r} has no variables to descend on")
    return text, output, variables


def _iterate(run: Descent, step: _Stepper, point: dict[str, float], lr: float, eps: float,
             max_iter: int) -> None:
    """Step from `point` until |Δf| < eps, an unbounded or non-finite f, or `max_iter` steps,
    recording every iteration and why it stopped in `run`."""
    f0, g0, new = step(point, lr)
    if not math.isfinite(f0):
        raise GradvizError(f"the expression is not defined at the start ({f0} at "
                           f"{_point_text(point)})")
    first_f, first_g = f0, _norm(g0)
    bound = BLOWUP * (1.0 + abs(first_f))
    for k in range(1, max_iter + 1):
        f1, g1, after = step(new, lr)
        run.steps.append(Iteration(k, point, f0, g0, new, f1, abs(f1 - f0)))
        finite = math.isfinite(f1) and all(math.isfinite(v) for v in new.values())
        if not finite or abs(f1) > bound:
            _stop_unbounded(run, first_f, f1, k)
            return
        if abs(f1 - f0) < eps:
            _stop_small_change(run, g0, g1, first_g, abs(f1 - f0), k)
            return
        point, f0, g0, new = new, f1, g1, after
    run.status = "max-iter"
    last = run.steps[-1]
    run.message = (f"stopped after {max_iter} iterations without converging: the last |Δf| was "
                   f"{last.change:.3g} (eps {eps:g}); raise --max-iter or --lr")


def _stop_small_change(run: Descent, g0: dict[str, float], g1: dict[str, float],
                       first_g: float, change: float, k: int) -> None:
    if _jumped_across(g0, g1, first_g):
        # f(w1) == f(w0) on both sides of a valley: the rule fires while jumping across
        run.status = "oscillating"
        run.message = (f"stopped after {k} iteration{'s' * (k != 1)} because |Δf| < eps, "
                       f"but the gradient is still {_norm(g1):.3g} (it was "
                       f"{first_g:.3g} at the start): the steps jump across the minimum "
                       "(overshooting); try a smaller --lr")
        return
    run.status = "converged"
    run.message = (f"converged after {k} iteration{'s' * (k != 1)}: |Δf| = "
                   f"{change:.3g} < eps = {run.eps:g}")


def _stop_unbounded(run: Descent, first_f: float, f1: float, k: int) -> None:
    if math.isnan(f1) or f1 > first_f:
        run.status = "diverged"
        run.message = (f"diverged after {k} iteration{'s' * (k != 1)}: f went from "
                       f"{first_f:.6g} to {f1:.3g}; the learning rate {run.lr:g} is too large "
                       "(each step overshoots the minimum), try a smaller --lr")
    else:
        run.status = "unbounded"
        run.message = (f"f decreases without bound (from {first_f:.6g} to {f1:.3g} in {k} "
                       "iterations): the expression has no minimum along this path")


def _jumped_across(g0: dict[str, float], g1: dict[str, float], first: float) -> bool:
    """The step reversed the gradient (it crossed the valley floor) and landed about as steep
    as it left, and as steep as the start: not the end of a descent."""
    reversed_ = sum(g0[n] * g1[n] for n in g0) < 0
    return reversed_ and _norm(g1) > 0.5 * max(_norm(g0), first) > 0


def _norm(g: dict[str, float]) -> float:
    return math.sqrt(sum(v * v for v in g.values()))


def _check_settings(lr: float, eps: float, max_iter: int) -> None:
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise GradvizError(f"--lr must be a positive number, got {lr!r}")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise GradvizError(f"--eps must be a positive number, got {eps!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise GradvizError(f"--max-iter must be a positive integer, got {max_iter!r}")
    if max_iter > MAX_ITER:
        raise GradvizError(f"--max-iter is at most {MAX_ITER:,} (every iteration is kept for "
                           f"the table and the plot), got {max_iter:,}")


def _start_point(variables: dict[str, Node], start: Mapping[str, float]) -> dict[str, float]:
    from gradviz.core.points import require_values

    require_values(variables, start, option="--from", noun="starting value")
    point = {}
    for name in variables:
        value = float(start[name])
        if not math.isfinite(value):
            raise GradvizError(f"--from {name}: the start must be finite, got {value}")
        point[name] = value
    return point


def _point_text(point: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in point.items())


# -- comparing optimizers -------------------------------------------------------------------------
def iteration_table(run: Descent, digits: int | None = None, rows: int = 10) -> list[list[str]]:
    """The slides' iteration table as text cells, header first: numbers to `digits` decimals
    (default: 6 significant digits); with more than 2 * `rows` iterations only the first and
    last `rows` are kept, with a row of dots between (`rows` 0: all)."""
    names = run.variables
    one = len(names) == 1
    arg = names[0] if one else ""
    header = ["iteration", *names, f"f({arg})" if one else "f",
              *(f"df/d{n}" for n in names), *(f"new {n}" for n in names),
              f"f(new {arg})" if one else "f(new)", "|Δf|"]
    steps = run.steps
    shown: list = list(steps)
    if rows and len(steps) > 2 * rows:
        shown = [*steps[:rows], None, *steps[-rows:]]
    out = [header]
    for s in shown:
        if s is None:
            out.append([":"] * len(header))
            continue
        out.append([str(s.iteration), *(_cell(s.point[n], digits) for n in names),
                    _cell(s.value, digits), *(_cell(s.gradient[n], digits) for n in names),
                    *(_cell(s.new_point[n], digits) for n in names),
                    _cell(s.new_value, digits), _cell(s.change, digits)])
    return out


def _cell(value: float, digits: int | None) -> str:
    return format_number(value, 6, decimals=digits, exact_integers=False)


def parse_compare(text: str) -> list[tuple[str, float | None]]:
    """`"sgd,momentum:0.01,adam"` -> [("sgd", None), ("momentum", 0.01), ("adam", None)]:
    optimizer names, each with an optional learning rate after a colon."""
    from gradviz.nn.optim import OPTIMIZERS

    runs: list[tuple[str, float | None]] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        name, _, rate = item.partition(":")
        name = name.strip().lower()
        if name not in OPTIMIZERS:
            raise GradvizError(f"--compare: unknown optimizer {name!r} (choose from "
                               f"{', '.join(OPTIMIZERS)})")
        lr = None
        if rate.strip():
            try:
                lr = float(rate)
            except ValueError:
                raise GradvizError(f"--compare {item}: {rate!r} is not a learning rate") from None
        runs.append((name, lr))
    if not runs:
        raise GradvizError("--compare needs optimizer names, e.g. sgd,momentum,adam")
    return runs


def compare(expression: str, start: Mapping[str, float], runs: list[tuple[str, float | None]],
            *, lr: float | None = None, eps: float = 1e-6,
            max_iter: int = 10_000) -> list[Descent]:
    """One `descend` per (optimizer, rate) from the same start; a run's own rate wins over `lr`,
    which wins over the optimizer's default."""
    return [descend(expression, start, optimizer=name, lr=own if own is not None else lr,
                    eps=eps, max_iter=max_iter) for name, own in runs]


# -- pictures ------------------------------------------------------------------------------------
def plot_paths(runs: list[Descent], path: str) -> None:
    """Draw the runs' paths (same expression): on the curve f(w) for one variable, on a contour
    plot of f for two. Format from the extension (png, svg, pdf); written atomically."""
    import io
    import os

    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    if fmt not in ("png", "svg", "pdf"):
        raise GradvizError(f"--plot writes .png, .svg or .pdf files, not {path!r}")
    names = runs[0].variables
    if len(names) > 2:
        raise GradvizError(f"--plot draws expressions of one or two variables; "
                           f"{runs[0].expression!r} has {len(names)}")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.subplots()
    f = _vectorized(runs[0].expression, names)
    paths = [_plottable(r.path()) for r in runs]
    colors = ["tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown"]
    if len(names) == 1:
        lo, hi = _span(np.concatenate([p[:, 0] for p in paths]))
        xs = np.linspace(lo, hi, 400)
        ax.plot(xs, f(xs), color="0.3", lw=1.5, label=f"f({names[0]}) = {runs[0].expression}")
        for run, p, c in zip(runs, paths, colors * 4):
            ys = f(p[:, 0])
            ax.plot(p[:, 0], ys, "o-", color=c, ms=4, lw=1, alpha=0.85, label=_label(run))
            ax.plot(p[:1, 0], ys[:1], "s", color=c, ms=8)
        ax.set(xlabel=names[0], ylabel="f")
    else:
        everything = np.concatenate(paths)
        (x0, x1), (y0, y1) = _span(everything[:, 0]), _span(everything[:, 1])
        X, Y = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
        Z = f(X, Y)
        finite = Z[np.isfinite(Z)]
        if finite.size and finite.max() > finite.min() and finite.min() >= 0 \
                and finite.max() / max(finite.min(), 1e-12) > 1e3:
            levels = np.geomspace(max(finite.min(), finite.max() * 1e-6), finite.max(), 25)
        else:
            levels = 25
        ax.contour(X, Y, Z, levels=levels, cmap="viridis", linewidths=0.8)
        for run, p, c in zip(runs, paths, colors * 4):
            ax.plot(p[:, 0], p[:, 1], ".-", color=c, ms=3, lw=1.2, label=_label(run))
            ax.plot(p[:1, 0], p[:1, 1], "s", color=c, ms=7)
            ax.plot(p[-1:, 0], p[-1:, 1], "*", color=c, ms=11)
        ax.set(xlabel=names[0], ylabel=names[1])
    ax.set_title(f"gradient descent on {runs[0].expression}")
    ax.legend(fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=100)
    from gradviz.files import write_atomic

    write_atomic(path, buffer.getvalue())


def _label(run: Descent) -> str:
    return f"{run.optimizer} lr={run.lr:g}: {len(run.steps)} steps, {run.status}"


def _plottable(path: np.ndarray) -> np.ndarray:
    # a diverged path ends far away (or at inf): draw only its finite, first steps of growth
    keep = np.all(np.isfinite(path), axis=1)
    path = path[keep] if keep.any() else path[:1]
    scale = np.max(np.abs(path[:1])) + 1.0
    small = np.all(np.abs(path) < 10 * scale, axis=1)
    cut = int(np.argmin(small)) if not small.all() else len(path)
    return path[:max(cut, 2)]


def _span(values: np.ndarray) -> tuple[float, float]:
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = 0.15 * (hi - lo) if hi > lo else 1.0
    return lo - pad, hi + pad


def _vectorized(expression: str, names: list[str]):
    """f as a NumPy function of arrays (one per variable), through the graph interpreter."""
    from gradviz.core.interpret import evaluate
    from gradviz.core.parser import parse

    def f(*arrays):
        arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
        shape = np.broadcast(*arrays).shape
        flat = [np.broadcast_to(a, shape).ravel() for a in arrays]
        variables = {n: _vector_var(n, flat[0].size) for n in names}
        out = parse(expression, variables)
        env = {variables[n]: flat[i] for i, n in enumerate(names)}
        with np.errstate(all="ignore"):
            value = evaluate(out, env)[out]
        return np.broadcast_to(np.asarray(value, dtype=np.float64), flat[0].shape).reshape(shape)

    return f


def _vector_var(name: str, size: int) -> Node:
    from gradviz.ops import var

    return var(name, (size,), "float64")
