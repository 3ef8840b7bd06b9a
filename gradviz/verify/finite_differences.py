"""Gradients by central finite differences, in float64, with an error estimate and kink detection.

For each variable entry x the step is h = cbrt(eps) * max(|x|, 1), rounded so that x + h is
exact. With D(h) = (f(x+h) - f(x-h)) / 2h, Richardson extrapolation R(h) = (4 D(h/2) - D(h)) / 3
cancels the h**2 error term; the estimate is R(h/2), and |R(h) - R(h/2)| plus the rounding error
eps*|f|/h bounds its error.

A kink shows as one-sided slopes that disagree: for a smooth f the gap between
(f(x+h) - f(x))/h and (f(x) - f(x-h))/h is about h*f''(x) and halves with h; at a kink (relu or
abs at 0, max at a tie) it is the jump in the derivative and does not shrink.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from gradviz.core.interpret import bind, evaluate
from gradviz.core.ir import Node, toposort

EPS = np.finfo(np.float64).eps
OK, KINK, UNDEFINED = "ok", "kink", "undefined"


@dataclass
class NumericGradient:
    """A finite-difference derivative: `value`, its `error` bound, the `step` used, and `status`:
    "ok", "kink" (not differentiable here) or "undefined" (f is not finite around the point).
    For tensor variables each field is an array over the entries (`status` an array of str)."""

    value: float | np.ndarray
    error: float | np.ndarray
    step: float | np.ndarray
    status: str | np.ndarray

    @property
    def differentiable(self) -> bool:
        return bool(np.all(np.asarray(self.status) == OK))


def step_size(x: float) -> float:
    """The finite-difference step for a variable whose value is x."""
    h = np.cbrt(EPS) * max(abs(x), 1.0)
    return float((x + h) - x)


def _derivative(f, x: float) -> tuple[float, float, float, str]:
    h = step_size(x)
    f0 = f(x)
    fp, fm = f(x + h), f(x - h)
    fp2, fm2 = f(x + h / 2), f(x - h / 2)
    fp4, fm4 = f(x + h / 4), f(x - h / 4)
    if not all(np.isfinite(v) for v in (f0, fp, fm, fp2, fm2, fp4, fm4)):
        return float("nan"), float("nan"), h, UNDEFINED
    d1 = (fp - fm) / (2 * h)
    d2 = (fp2 - fm2) / h
    d4 = (fp4 - fm4) / (h / 2)
    r1, r2 = (4 * d2 - d1) / 3, (4 * d4 - d2) / 3  # Richardson: the h**2 error terms cancel
    rounding = 8 * EPS * max(abs(f0), abs(fp), abs(fm)) / h
    error = float(abs(r1 - r2) + rounding)
    gap1 = (fp - f0) / h - (f0 - fm) / h
    gap2 = (fp2 - f0) / (h / 2) - (f0 - fm2) / (h / 2)
    scale = max(1.0, abs((fp - f0) / h), abs((f0 - fm) / h))
    if abs(gap1) > max(1e-6 * scale, 100 * rounding) and abs(gap2) > 0.75 * abs(gap1):
        # one-sided slopes, the best estimates of the derivative on each side
        return (fp4 - f0) / (h / 4), error, h, KINK
    return r2, error, h, OK


def numeric_grad(output: Node, env: Mapping, wrt: Iterable[Node] | None = None
                 ) -> dict[Node, NumericGradient]:
    """Finite-difference derivatives of the scalar `output` at the point `env` with respect to
    each variable in `wrt` (default: every `var`/`param` leaf)."""
    order = toposort(output)
    base = bind(order, env)
    wrt = [n for n in order if n.op in ("var", "param")] if wrt is None else list(wrt)
    return {w: _numeric_for(output, order, base, w) for w in wrt}


def _numeric_for(output: Node, order, base: dict, w: Node) -> NumericGradient:
    forward = [n for n in order if n.op not in ("var", "param")]

    if w.shape == ():
        def f(x: float) -> float:
            values = dict(base)
            values[w] = float(x) if w.dtype == "float64" else np.asarray(x, w.dtype)
            return float(evaluate(output, order=forward, values=values)[output])

        value, error, h, status = _derivative(f, float(base[w]))
        return NumericGradient(value, error, h, status)

    point = np.asarray(base[w], dtype=np.float64)
    fields = [np.zeros(w.shape), np.zeros(w.shape), np.zeros(w.shape),
              np.full(w.shape, OK, dtype=object)]
    for index in np.ndindex(*w.shape):
        def f(x: float, index=index) -> float:
            moved = point.copy()
            moved[index] = x
            values = dict(base)
            values[w] = moved.astype(w.dtype)
            return float(evaluate(output, order=forward, values=values)[output])

        for field, got in zip(fields, _derivative(f, float(point[index]))):
            field[index] = got
    return NumericGradient(*fields)


def agrees(analytic, numeric: NumericGradient, rtol: float = 1e-6, atol: float = 1e-8):
    """Whether an analytic derivative matches a finite-difference one within tolerance:
    True or False, or None where the point is a kink or the function is undefined nearby.

    The tolerance is atol + rtol * magnitude + 10 * the finite-difference error estimate.
    """
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric.value, dtype=np.float64)
    status = np.asarray(numeric.status)
    if np.any(status != OK):
        return None
    tol = atol + rtol * np.maximum(np.abs(a), np.abs(n)) + 10 * np.asarray(numeric.error)
    return bool(np.all(np.abs(a - n) <= tol))
