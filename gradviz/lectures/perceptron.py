"""Rosenblatt's perceptron learning rule, with a trace of every step.

A single neuron with a step (hard-limit) activation::

    n = w . p + b
    a = 1 if n >= 0 else 0
    e = t - a
    w <- w + lr * e * p
    b <- b + lr * e

Samples are presented one at a time, epoch after epoch, until an epoch makes no errors (the data
are then separated; the perceptron convergence theorem says this happens in finitely many steps
when they can be) or ``max_epochs`` is reached (XOR never gets there).

This trainer is plain NumPy and separate from the expression graph: the step activation has no
useful gradient, so this is the rule as the slides state it, not gradient descent.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradviz.errors import GradvizError


#: At most this many sample presentations (epochs x samples) per run: each one is kept in the
#: trace (about 160 MB at the limit), so `--epochs 1000000000` is refused up front instead of
#: filling the memory.
MAX_PRESENTATIONS = 200_000

def hardlim(n):
    """The step activation: 1 where ``n >= 0``, else 0 (int64; scalar in, scalar out)."""
    out = (np.asarray(n) >= 0).astype(np.int64)
    return int(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class PerceptronStep:
    """One presented sample: its epoch (from 1), its row ``index`` in the data, the input ``p``,
    target ``t``, net input ``n = w . p + b``, output ``a``, error ``e = t - a``, and the weights
    and bias before and after the update (equal when ``e == 0``)."""

    epoch: int
    index: int
    p: np.ndarray
    t: int
    n: float
    a: int
    e: int
    w_before: np.ndarray
    w_after: np.ndarray
    b_before: float
    b_after: float

    @property
    def updated(self) -> bool:
        """True when this sample was misclassified and the weights moved."""
        return self.e != 0


@dataclass(frozen=True)
class PerceptronResult:
    """What `train_perceptron` returns: final ``w`` and ``b``, whether an epoch ended with no
    errors (``converged``), the number of epochs run, the error count of each epoch, and the
    trace (one `PerceptronStep` per presented sample; empty when tracing was off)."""

    w: np.ndarray
    b: float
    converged: bool
    epochs: int
    errors_per_epoch: list[int]
    trace: list[PerceptronStep] = field(default_factory=list)
    use_bias: bool = True

    def predict(self, X) -> np.ndarray:
        """Outputs (0/1, int64) of the trained perceptron for the rows of ``X``."""
        return predict(self.w, self.b, X)

    @property
    def weight_history(self) -> list[np.ndarray]:
        """The initial weights followed by the weights after each update (unchanged steps
        skipped): the sequence the slides write out."""
        if not self.trace:
            return [self.w.copy()]
        return [self.trace[0].w_before] + [s.w_after for s in self.trace if s.updated]


def predict(w, b, X) -> np.ndarray:
    """Perceptron outputs ``hardlim(X @ w + b)`` for the rows of ``X`` (int64 0/1)."""
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    w = np.asarray(w, dtype=np.float64)
    if X.shape[1] != w.shape[0]:
        raise GradvizError(f"inputs have {X.shape[1]} features but the perceptron has "
                           f"{w.shape[0]} weights")
    return hardlim(X @ w + float(b))


def perceptron_update(w, b, p, t, lr: float = 1.0, *, use_bias: bool = True):
    """One application of the rule to sample ``(p, t)``.

    Returns ``(w_new, b_new, n, a, e)``: the updated weights and bias, the net input, the output
    and the error. With ``use_bias=False`` the bias is left as it is (the "no bias" neuron of
    Hagan's test problem).
    """
    w = np.asarray(w, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    n = float(w @ p + b)
    a = hardlim(n)
    e = int(t) - a
    w_new = w + lr * e * p
    b_new = float(b + lr * e) if use_bias else float(b)
    return w_new, b_new, n, a, e


def _check_lr(lr) -> None:
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)) \
            or not np.isfinite(lr) or lr <= 0:
        raise GradvizError(f"learning rate must be a positive number, got {lr!r}")


def _check_binary_targets(t: np.ndarray) -> np.ndarray:
    t = np.asarray(t)
    if t.ndim != 1:
        raise GradvizError(f"targets must be a 1-D array of 0/1, got shape {t.shape}")
    if t.size and not np.all((t == 0) | (t == 1)):
        bad = np.asarray(t)[~((t == 0) | (t == 1))][0]
        raise GradvizError(f"perceptron targets must be 0 or 1, found {bad!r}")
    return t.astype(np.int64)


def perceptron_data(spec: str, target: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, 0/1 targets) of a data set: a boolean gate (and, or, xor) or a CSV file whose
    `target` column holds 0 and 1."""
    from gradviz.data import boolean_gate, read_csv

    if spec.lower() in ("and", "or", "xor"):
        return boolean_gate(spec.lower())
    if target is None:
        raise GradvizError(f"name the 0/1 column of {spec} with --target")
    table = read_csv(spec, target, "classification")
    labels = np.asarray(table.class_names)[table.y]
    try:
        y = labels.astype(float)
    except ValueError:
        raise GradvizError(f"{spec}: the perceptron needs 0/1 targets in {target!r}") from None
    return table.X, y


def train_perceptron(X, t, *, w0=None, b0: float = 0.0, lr: float = 1.0, max_epochs: int = 100,
                     use_bias: bool = True, shuffle: bool = False, seed: int = 0,
                     record_trace: bool = True) -> PerceptronResult:
    """Train one perceptron on rows ``X`` (shape ``(N, d)``) with 0/1 targets ``t``.

    ``w0`` is the initial weight vector (zeros when None), ``b0`` the initial bias, ``lr`` the
    learning rate. Samples are presented in order (or in a fresh seeded order each epoch with
    ``shuffle=True``). Stops after the first epoch with no errors (``converged=True``) or after
    ``max_epochs`` epochs (``converged=False``). ``use_bias=False`` keeps the bias at ``b0``.

    Example, the slides' learning-rule test problem (Hagan, *Neural Network Design*, ch. 4)::

        >>> r = train_perceptron([[1, 2], [-1, 2], [0, -1]], [1, 0, 0], w0=[1.0, -0.8],
        ...                      use_bias=False)
        >>> [w.round(12).tolist() for w in r.weight_history]  # 0.2 is 0.19999999999999996
        [[1.0, -0.8], [2.0, 1.2], [3.0, -0.8], [3.0, 0.2]]
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise GradvizError(f"inputs must be a 2-D array (samples x features), got shape {X.shape}")
    t = _check_binary_targets(t)
    if len(t) != len(X):
        raise GradvizError(f"{len(X)} input rows but {len(t)} targets")
    if len(t) == 0:
        raise GradvizError("no training samples")
    if not np.all(np.isfinite(X)):
        raise GradvizError("inputs contain NaN or infinity")
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, (int, np.integer)) \
            or max_epochs < 1:
        raise GradvizError(f"max_epochs must be a positive integer, got {max_epochs!r}")
    if int(max_epochs) * len(t) > MAX_PRESENTATIONS:
        raise GradvizError(f"--epochs {int(max_epochs):,} x {len(t):,} samples is more than "
                           f"{MAX_PRESENTATIONS:,} presentations (every one is kept for the "
                           "trace): lower --epochs")
    _check_lr(lr)
    if w0 is None:
        w = np.zeros(X.shape[1])
    else:
        w = np.array(w0, dtype=np.float64).reshape(-1)
        if w.shape[0] != X.shape[1]:
            raise GradvizError(f"w0 has {w.shape[0]} weights but the inputs have "
                               f"{X.shape[1]} features")
    b = float(b0)
    rng = np.random.default_rng(seed)
    trace: list[PerceptronStep] = []
    errors_per_epoch: list[int] = []
    converged = False
    for epoch in range(1, int(max_epochs) + 1):
        order = rng.permutation(len(t)) if shuffle else range(len(t))
        errors = 0
        for i in order:
            w_new, b_new, n, a, e = perceptron_update(w, b, X[i], t[i], lr, use_bias=use_bias)
            if record_trace:
                trace.append(PerceptronStep(epoch, int(i), X[i].copy(), int(t[i]), n, a, e,
                                            w, w_new, b, b_new))
            errors += e != 0
            w, b = w_new, b_new
        errors_per_epoch.append(int(errors))
        if errors == 0:
            converged = True
            break
    return PerceptronResult(w=w, b=b, converged=converged, epochs=len(errors_per_epoch),
                            errors_per_epoch=errors_per_epoch, trace=trace, use_bias=use_bias)


@dataclass(frozen=True)
class LineUpdate:
    """One "move the line toward the point" step on a line ``w . x + c = 0``.

    ``before`` and ``after`` are the coefficients ``(w1, ..., wd, c)``; ``delta`` is what was added
    (``lr * e * (x1, ..., xd, 1)``); ``a`` is the side the line put the point on (1 when
    ``w . x + c >= 0``), ``t`` its label, ``e = t - a``.
    """

    before: np.ndarray
    after: np.ndarray
    delta: np.ndarray
    point: np.ndarray
    a: int
    t: int
    e: int

    @property
    def misclassified(self) -> bool:
        """True when the point was on the wrong side, so the line moved."""
        return self.e != 0

    def equation(self) -> str:
        """The new line as the slides write it, e.g. ``2.6x1 + 3.5x2 - 10.1 = 0``."""
        return format_line(self.after)


def format_line(coefficients) -> str:
    """``(3, 4, -10)`` -> ``"3x1 + 4x2 - 10 = 0"`` (numbers with up to 6 significant digits)."""
    c = [float(v) for v in np.asarray(coefficients, dtype=np.float64).reshape(-1)]
    if len(c) < 2:
        raise GradvizError("a line needs at least one weight and a constant")
    parts = []
    for k, v in enumerate(c):
        term = f"{abs(v):g}" + (f"x{k + 1}" if k < len(c) - 1 else "")
        if not parts:
            parts.append(("-" if v < 0 else "") + term)
        else:
            parts.append(("- " if v < 0 else "+ ") + term)
    return " ".join(parts) + " = 0"


def move_line(line, point, label: int, lr: float = 0.1) -> LineUpdate:
    """The perceptron trick on one point: if the line ``w . x + c = 0`` (``line = (w..., c)``)
    puts ``point`` on the wrong side for ``label`` (0 or 1), move it toward the point.

    A point labelled 0 on the positive side gets ``lr * (point, 1)`` subtracted; a point labelled
    1 on the negative side gets it added; a correctly classified point leaves the line alone.
    The slides' example: line ``3x1 + 4x2 - 10 = 0``, point (4, 5) labelled negative, rate 0.1::

        >>> move_line((3, 4, -10), (4, 5), label=0, lr=0.1).equation()
        '2.6x1 + 3.5x2 - 10.1 = 0'
    """
    line = np.asarray(line, dtype=np.float64).reshape(-1)
    point = np.asarray(point, dtype=np.float64).reshape(-1)
    if line.shape[0] != point.shape[0] + 1:
        raise GradvizError(f"a line in {point.shape[0]} dimensions needs {point.shape[0] + 1} "
                           f"coefficients (weights and a constant), got {line.shape[0]}")
    if label not in (0, 1):
        raise GradvizError(f"label must be 0 or 1, got {label!r}")
    _check_lr(lr)
    w_new, c_new, _, a, e = perceptron_update(line[:-1], line[-1], point, label, lr)
    after = np.append(w_new, c_new)
    return LineUpdate(before=line, after=after, delta=after - line, point=point, a=a, t=int(label),
                      e=e)


def format_trace(result: PerceptronResult) -> str:
    """The trace as a text table: one row per presented sample (epoch, p, t, n, a, e, w and b
    after), then a line saying whether and when the perceptron converged."""
    rows = [("epoch", "p", "t", "n", "a", "e", "w", "b")]
    fmt = lambda v: "[" + ", ".join(f"{x:g}" for x in np.asarray(v).reshape(-1)) + "]"  # noqa: E731
    for s in result.trace:
        rows.append((str(s.epoch), fmt(s.p), str(s.t), f"{s.n:g}", str(s.a), f"{s.e:+d}" if s.e else "0",
                     fmt(s.w_after), f"{s.b_after:g}"))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(wd) for cell, wd in zip(r, widths)) for r in rows]
    status = (f"converged after {result.epochs} epoch(s)" if result.converged
              else f"did not converge in {result.epochs} epoch(s)")
    lines.append(f"{status}: w = {fmt(result.w)}, b = {result.b:g}")
    return "\n".join(lines)
