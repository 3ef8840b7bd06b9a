"""Gradients by central finite differences, in float64, with an error estimate, and the places
where there is no derivative: kinks, jumps, an undefined neighbourhood, overflow.

For each variable entry x the step is h = cbrt(eps) * max(|x|, 1), rounded so that x + h is
exact. With D(h) = (f(x+h) - f(x-h)) / 2h, Richardson extrapolation R(h) = D(h) + (D(h) - D(2h))/3
cancels the h**2 error term; the estimate is R(h/2), and |R(h) - R(h/2)| plus the rounding error
eps*|f|/h bounds its error.

What the points around x show, at one step h:
- a jump: f(x+h) - f(x-h) does not shrink when h does (a smooth or kinked f changes by about
  h*f'), so the difference quotient grows like 1/h (sign or step at 0, 0**y at 0);
- a kink: one-sided slopes (f(x+h) - f(x))/h and (f(x) - f(x-h))/h that disagree, by a gap that
  does not halve with h (relu or abs at 0, max at a tie; for a smooth f it is about h*f'');
- not finite: a domain boundary (log, sqrt) or overflow (exp near 709) within the step.
None of these is believed at the first step alone: a steep but smooth function (1/x at 1e-300,
sin(1e10*x)) looks kinked or jumping at a step much larger than |x|, so the step shrinks (by
1e-4 at a time, and finally to cbrt(eps)*|x|) and the first step at which f looks smooth
gives the derivative. Only what persists at the smallest step is reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from gradviz.core.interpret import bind, evaluate
from gradviz.core.ir import Node, toposort

EPS = np.finfo(np.float64).eps
OK, KINK, UNDEFINED = "ok", "kink", "undefined"
# `NumericGradient.detail` refines a status: a KINK that is a "jump" (f itself is discontinuous),
# an UNDEFINED that is an "overflow" (f is finite at x but not within any step around it)
JUMP, OVERFLOW = "jump", "overflow"
SHRINK = 1e-4   # the factor by which the step shrinks when f does not look smooth
SHRINKS = 3     # at most how many times, before the last try at cbrt(eps) * |x|


@dataclass
class NumericGradient:
    """A finite-difference derivative: `value`, its `error` bound, the `step` used, and `status`:
    "ok", "kink" (not differentiable here) or "undefined" (f is not finite around the point);
    `detail` says "jump" for a kink where f itself jumps and "overflow" for an undefined
    neighbourhood where f overflows (None otherwise).
    For tensor variables each field is an array over the entries (`status` an array of str)."""

    value: float | np.ndarray
    error: float | np.ndarray
    step: float | np.ndarray
    status: str | np.ndarray
    detail: str | None | np.ndarray = None

    @property
    def differentiable(self) -> bool:
        return bool(np.all(np.asarray(self.status) == OK))


def step_size(x: float) -> float:
    """The finite-difference step for a variable whose value is x."""
    h = np.cbrt(EPS) * max(abs(x), 1.0)
    return float((x + h) - x)


def _steps(x: float) -> list[float]:
    """The steps tried in turn: the usual one, then smaller ones down to cbrt(eps) * |x| (a
    smaller step than that, relative to x, is mostly rounding noise)."""
    h = step_size(x)
    smallest = float(np.cbrt(EPS) * abs(x))
    steps = [h] + [h * SHRINK ** k for k in range(1, SHRINKS + 1) if h * SHRINK ** k > smallest]
    if 0 < smallest < steps[-1]:
        steps.append(smallest)
    return [float((x + s) - x) for s in steps if (x + s) - x > 0]


def _derivative(f, x: float) -> tuple[float, float, float, str, str | None]:
    f0 = f(x)
    if not np.isfinite(f0):
        return float("nan"), float("nan"), step_size(x), UNDEFINED, None
    tried = []
    steps = _steps(x)
    regular = len(steps)
    # where f is not finite within the step (overflow, a domain edge), smaller steps still
    # help even below cbrt(eps) * |x|: exp at 709.78 is finite only within 0.003
    steps += [steps[-1] * SHRINK ** k for k in (1, 2) if x + steps[-1] * SHRINK ** k != x]
    with np.errstate(all="ignore"):
        for i, h in enumerate(steps):
            if i >= regular and tried[-1][3] != UNDEFINED:
                break
            result = _at_step(f, x, h, f0)
            if result[3] == OK and not _noisy(result):
                return result
            tried.append(result)
    # nothing smooth at any step: what the smallest step that was not lost in rounding showed
    clear = [r for r in tried if r[3] != OK]
    if not clear:
        return min(tried, key=lambda r: r[1] / max(abs(r[0]), 1e-300))
    last = clear[-1]
    if last[4] == _INFINITE:  # f is infinite right next to x at every step
        if abs(f0) > _NEAR_OVERFLOW:  # because f0 is near the end of float64 (exp at 709.78)
            return last[:4] + (OVERFLOW,)
        return last[0], last[1], last[2], KINK, JUMP  # because f really jumps to infinity (0**x)
    return last


_INFINITE = "infinite"
_NEAR_OVERFLOW = 1e300


def _noisy(result) -> bool:
    """An estimate whose error bound is not small next to it (a pole or a jump inside the step
    makes the Richardson steps disagree wildly): a smaller step may do better."""
    value, error = result[0], result[1]
    return not error <= 1e-3 * abs(value) + 1e-8


def _at_step(f, x: float, h: float, f0: float):
    fp, fm = f(x + h), f(x - h)
    fp2, fm2 = f(x + h / 2), f(x - h / 2)
    fp4, fm4 = f(x + h / 4), f(x - h / 4)
    around = (fp, fm, fp2, fm2, fp4, fm4)
    if not all(np.isfinite(v) for v in around):
        overflow = any(np.isinf(v) for v in around) and not any(np.isnan(v) for v in around)
        return float("nan"), float("nan"), h, UNDEFINED, _INFINITE if overflow else None
    big = max(abs(v) for v in (f0, *around))
    rounding_f = 8 * EPS * big  # rounding error of one value of f
    rounding = rounding_f / h
    # jump: f(x+h) - f(x-h) does not shrink with h (for a smooth f it quarters, with h/4)
    spread1, spread4 = abs(fp - fm), abs(fp4 - fm4)
    if spread1 > 100 * rounding_f and spread4 > 0.5 * spread1:
        return float("nan"), float("nan"), h, KINK, JUMP
    d1 = (fp - fm) / (2 * h)
    d2 = (fp2 - fm2) / h
    d4 = (fp4 - fm4) / (h / 2)
    # Richardson, written so that nothing overflows before the difference is taken
    if not all(np.isfinite(d) for d in (d1, d2, d4)):  # the derivative overflows float64
        return float("nan"), float("nan"), h, UNDEFINED, OVERFLOW
    r1, r2 = d2 + (d2 - d1) / 3, d4 + (d4 - d2) / 3
    error = float(abs(r1 - r2) + rounding)
    gap1 = (fp - f0) / h - (f0 - fm) / h
    gap2 = (fp2 - f0) / (h / 2) - (f0 - fm2) / (h / 2)
    scale = max(1.0, abs((fp - f0) / h), abs((f0 - fm) / h))
    if abs(gap1) > max(1e-6 * scale, 100 * rounding) and abs(gap2) > 0.75 * abs(gap1):
        # one-sided slopes, the best estimates of the derivative on each side
        return (fp4 - f0) / (h / 4), error, h, KINK, None
    return r2, error, h, OK, None


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

        return NumericGradient(*_derivative(f, float(base[w])))

    point = np.asarray(base[w], dtype=np.float64)
    fields = [np.zeros(w.shape), np.zeros(w.shape), np.zeros(w.shape),
              np.full(w.shape, OK, dtype=object), np.full(w.shape, None, dtype=object)]
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
