"""Linear regression by gradient descent, as on the slides: weight = b + w * height.

    from gradviz.lectures.regression import fit_linear, load_table
    table = load_table("heights")
    fit = fit_linear(table)
    fit.intercept, fit.coefficients, fit.loss        # 4.057, {'height': 0.3769}, 1.00795
    fit.predict([174.0])                             # 69.6376

The loss (`LOSSES`: the slides' RMSE, the MSE, or the quadratic cost 1/(2n) sum (t - a)**2) is a
gradviz graph over the data, and `gradviz.lectures.descend.descend` minimizes it with gradviz's own
gradients. By default the features are standardized first (z = (x - mean) / std) and the
coefficients converted back: on raw heights around 174 cm the loss is a valley about 10**5 times
longer than it is wide, and plain gradient descent crawls along it (`standardize=False` shows it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from gradviz.lectures.descend import Descent, descend
from gradviz.errors import GradvizError
from gradviz.core.ir import Node

LOSSES = {
    "rmse": "sqrt(1/n sum (y - prediction)**2), the slides' loss for the heights",
    "mse": "1/n sum (y - prediction)**2",
    "half-mse": "1/(2n) sum (y - prediction)**2, the quadratic cost C(w, b)",
}


@dataclass(frozen=True)
class Table:
    """Raw regression data: X (n, k) features, y (n,) targets, and their names."""

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    target: str


def load_table(spec: str, target: str | None = None) -> Table:
    """`"heights"` (the slides' 200 people) or a CSV file with `target` as the column to predict
    (every other column is a feature). Raw values: nothing is normalized or split."""
    from gradviz.data import read_csv
    from gradviz.data.synthetic import make_heights

    if spec.strip().lower() == "heights":
        if target not in (None, "weight"):
            raise GradvizError("heights predicts the column 'weight'")
        X, y = make_heights()
        return Table("heights", X, y, ("height",), "weight")
    if target is None:
        raise GradvizError(f"name the column to predict in {spec} with --target")
    table = read_csv(spec, target, "regression")
    if len(table.y) < 2:
        raise GradvizError(f"{spec}: a line needs at least 2 rows, got {len(table.y)}")
    return Table(spec, np.asarray(table.X, np.float64), np.asarray(table.y, np.float64),
                 tuple(table.feature_names), table.target)


def variable_names(table: Table) -> list[str]:
    """The coefficients' names in expressions and `--from`: b and w (one feature), or b and
    w1..wk (several, in column order)."""
    k = len(table.feature_names)
    return ["b", "w"] if k == 1 else ["b", *(f"w{i + 1}" for i in range(k))]


@dataclass
class LinearFit:
    """A fitted line (or plane): target = intercept + sum of coefficient * feature."""

    table: Table
    loss_name: str
    intercept: float
    coefficients: dict[str, float]
    loss: float
    descent: Descent
    standardized: bool

    def predict(self, features: Sequence[float]) -> float:
        """The prediction for one example (its feature values in column order)."""
        if len(features) != len(self.coefficients):
            raise GradvizError(f"a prediction needs {len(self.coefficients)} value(s) "
                               f"({', '.join(self.coefficients)}), got {len(features)}")
        return self.intercept + sum(w * float(x) for w, x in
                                    zip(self.coefficients.values(), features))

    def equation(self, digits: int = 4) -> str:
        """`weight = 4.0570 + 0.3769 * height`."""
        terms = [f"{self.intercept:.{digits}f}"]
        for name, w in self.coefficients.items():
            terms.append(f"{'-' if w < 0 else '+'} {abs(w):.{digits}f} * {name}")
        return f"{self.table.target} = {' '.join(terms)}"

    def to_dict(self) -> dict:
        return {"data": self.table.name, "target": self.table.target,
                "examples": int(len(self.table.y)), "loss_name": self.loss_name,
                "intercept": self.intercept, "coefficients": self.coefficients,
                "loss": self.loss, "standardized": self.standardized,
                "status": self.descent.status, "message": self.descent.message,
                "iterations": len(self.descent.steps), "optimizer": self.descent.optimizer,
                "lr": self.descent.lr}


def loss_node(table: Table, loss: str, variables: dict[str, Node],
              center: np.ndarray | None = None, scale: np.ndarray | None = None) -> Node:
    """The loss as a graph of the coefficient variables, with the data as constants; features
    enter as (x - center) / scale when those are given."""
    from gradviz.ops import const, mean, sqrt

    if loss not in LOSSES:
        raise GradvizError(f"unknown loss {loss!r} (choose from {', '.join(LOSSES)})")
    X = table.X if center is None else (table.X - center) / scale
    names = variable_names(table)
    prediction = variables[names[0]]
    for j, name in enumerate(names[1:]):
        prediction = prediction + variables[name] * const(np.ascontiguousarray(X[:, j]))
    residual = const(table.y) - prediction
    mse = mean(residual * residual)
    if loss == "rmse":
        return sqrt(mse)
    return mse if loss == "mse" else mse * 0.5


def cost(table: Table, point: Mapping[str, float], loss: str = "rmse") -> float:
    """The loss at given coefficients (`{"b": 3, "w": 0.2}`), on the raw data."""
    from gradviz.core.interpret import value
    from gradviz.ops import var

    names = variable_names(table)
    _check_names(names, point, "--at")
    variables = {n: var(n) for n in names}
    return float(value(loss_node(table, loss, variables), {n: point[n] for n in names}))


def _check_names(names: list[str], point: Mapping[str, float], option: str) -> None:
    missing = [n for n in names if n not in point]
    unknown = [n for n in point if n not in names]
    if missing or unknown:
        raise GradvizError(f"{option} takes a value for each of {', '.join(names)}"
                           + (f"; {', '.join(unknown)} is not one" if unknown else ""))


def fit_linear(table: Table, *, loss: str = "rmse", optimizer: str = "sgd",
               lr: float | None = None, eps: float = 1e-12, max_iter: int = 10_000,
               start: Mapping[str, float] | None = None, standardize: bool = True) -> LinearFit:
    """Fit target = b + w . x by gradient descent on `loss`, from `start` (default all zeros;
    in the data's own units). With `standardize`, descent runs on standardized features
    (rate default 0.5) and the coefficients are converted back; without, on the raw ones."""
    from gradviz.ops import var

    names = variable_names(table)
    start = dict(start) if start else {n: 0.0 for n in names}
    _check_names(names, start, "--from")
    if standardize:
        center = table.X.mean(axis=0)
        scale = table.X.std(axis=0)
        constant = [table.feature_names[j] for j in np.flatnonzero(scale == 0)]
        if constant:
            raise GradvizError(f"feature {constant[0]!r} is constant: it cannot be standardized "
                               "(and it adds nothing to the intercept)")
        ws = np.array([start[n] for n in names[1:]])
        # b + w.x = (b + w.center) + (w * scale).z
        begin = {names[0]: start[names[0]] + float(ws @ center),
                 **{n: float(w * s) for n, w, s in zip(names[1:], ws, scale)}}
        lr = 0.5 if lr is None and optimizer == "sgd" else lr
    else:
        center = scale = None
        begin = start
    variables = {n: var(n) for n in names}
    objective = loss_node(table, loss, variables, center, scale)
    run = descend(objective, begin, optimizer=optimizer, lr=lr, eps=eps, max_iter=max_iter,
                  variables=variables)
    run.expression = f"{loss} of {table.target} - ({' + '.join(_terms(table, names))})"
    found = run.minimum
    ws = np.array([found[n] for n in names[1:]])
    b = found[names[0]]
    if standardize:
        ws = ws / scale
        b = b - float(ws @ center)
    coefficients = {f: float(w) for f, w in zip(table.feature_names, ws)}
    final = cost(table, {names[0]: b, **dict(zip(names[1:], ws))}, loss)
    if not math.isfinite(final):
        final = math.nan
    return LinearFit(table, loss, float(b), coefficients, final, run, standardize)


def _terms(table: Table, names: list[str]) -> list[str]:
    return [names[0], *(f"{n} * {f}" for n, f in zip(names[1:], table.feature_names))]


def plot_fit(fit: LinearFit, path: str) -> None:
    """The data and the fitted line (one feature), or predicted against actual (several)."""
    import io
    import os

    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    if fmt not in ("png", "svg", "pdf"):
        raise GradvizError(f"--plot writes .png, .svg or .pdf files, not {path!r}")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    table = fit.table
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.subplots()
    if len(table.feature_names) == 1:
        x = table.X[:, 0]
        ax.scatter(x, table.y, s=12, alpha=0.6, label=f"{len(x)} examples")
        xs = np.linspace(x.min(), x.max(), 2)
        ax.plot(xs, [fit.predict([v]) for v in xs], "r-", lw=2, label=fit.equation())
        ax.set(xlabel=table.feature_names[0], ylabel=table.target)
    else:
        predicted = fit.intercept + table.X @ np.array(list(fit.coefficients.values()))
        ax.scatter(table.y, predicted, s=12, alpha=0.6)
        lo, hi = float(table.y.min()), float(table.y.max())
        ax.plot([lo, hi], [lo, hi], "r-", lw=1, label="prediction = actual")
        ax.set(xlabel=f"actual {table.target}", ylabel=f"predicted {table.target}")
    ax.set_title(f"{table.name}: {fit.loss_name} {fit.loss:.6g} after "
                 f"{len(fit.descent.steps)} steps of {fit.descent.optimizer}")
    ax.legend(fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=100)
    from gradviz.files import write_atomic

    write_atomic(path, buffer.getvalue())
