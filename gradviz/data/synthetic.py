"""Small data sets made on the spot: the boolean gates and seeded 2-D point clouds.

Every generator returns raw ``(X, y)``: ``X`` float64 of shape ``(n, 2)``, ``y`` int64 class
indices. Same arguments and seed, same points, on every machine (NumPy's PCG64 ``default_rng``).
"""
from __future__ import annotations

import numpy as np

from gradviz.errors import GradvizError

#: The four inputs of a two-input boolean gate, in truth-table order.
BOOLEAN_INPUTS = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])

#: Targets of each gate for `BOOLEAN_INPUTS`.
BOOLEAN_TARGETS = {
    "and": np.array([0, 0, 0, 1], dtype=np.int64),
    "or": np.array([0, 1, 1, 1], dtype=np.int64),
    "xor": np.array([0, 1, 1, 0], dtype=np.int64),
}


def boolean_gate(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The truth table of ``"and"``, ``"or"`` or ``"xor"``: X (4, 2) of 0/1, y (4,) of 0/1."""
    try:
        y = BOOLEAN_TARGETS[name]
    except KeyError:
        raise GradvizError(
            f"unknown boolean gate {name!r} (choose from {', '.join(BOOLEAN_TARGETS)})") from None
    return BOOLEAN_INPUTS.copy(), y.copy()


def _check(n: int, noise: float, min_n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < min_n:
        raise GradvizError(f"number of points must be an integer >= {min_n}, got {n!r}")
    if not isinstance(noise, (int, float)) or not np.isfinite(noise) or noise < 0:
        raise GradvizError(f"noise must be a finite number >= 0, got {noise!r}")


def _shuffled(rng: np.random.Generator, X: np.ndarray, y: np.ndarray):
    order = rng.permutation(len(y))
    return X[order], y[order]


def make_spiral(n: int = 300, classes: int = 3, noise: float = 0.2,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one per class, as in CS231n's and convnetjs's demo.

    Arm ``j`` has radius going linearly from 0 to 1 and angle from ``4j`` to ``4(j+1)`` radians,
    plus Gaussian angle noise of standard deviation ``noise``. ``n`` is the total number of points,
    shared as evenly as possible between the arms. Not linearly separable for ``classes >= 2``.
    """
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes < 2:
        raise GradvizError(f"spiral needs an integer number of classes >= 2, got {classes!r}")
    _check(n, noise, classes)
    rng = np.random.default_rng(seed)
    counts = [n // classes + (1 if j < n % classes else 0) for j in range(classes)]
    xs, ys = [], []
    for j, m in enumerate(counts):
        r = np.linspace(0.0, 1.0, m)
        t = np.linspace(4.0 * j, 4.0 * (j + 1), m) + rng.normal(0.0, noise, m)
        xs.append(np.column_stack([r * np.sin(t), r * np.cos(t)]))
        ys.append(np.full(m, j, dtype=np.int64))
    return _shuffled(rng, np.concatenate(xs), np.concatenate(ys))


def make_moons(n: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles: class 0 is the upper moon (radius 1 around the origin),
    class 1 the lower one shifted to (1, 0.5) and flipped; Gaussian noise of std ``noise`` on
    both coordinates. ``n`` points in total (the first class gets the odd one)."""
    _check(n, noise, 2)
    rng = np.random.default_rng(seed)
    n0 = n - n // 2
    n1 = n // 2
    t0 = np.linspace(0.0, np.pi, n0)
    t1 = np.linspace(0.0, np.pi, n1)
    X = np.concatenate([np.column_stack([np.cos(t0), np.sin(t0)]),
                        np.column_stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)])])
    X = X + rng.normal(0.0, noise, X.shape)
    y = np.concatenate([np.zeros(n0, np.int64), np.ones(n1, np.int64)])
    return _shuffled(rng, X, y)


def make_circles(n: int = 200, noise: float = 0.05, factor: float = 0.5,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric circles: class 0 on the unit circle, class 1 on a circle of radius
    ``factor`` (0 < factor < 1), points at evenly spaced angles plus Gaussian noise of std
    ``noise``. ``n`` points in total (the outer circle gets the odd one)."""
    _check(n, noise, 2)
    if not isinstance(factor, (int, float)) or not 0 < factor < 1:
        raise GradvizError(f"circles factor must be between 0 and 1, got {factor!r}")
    rng = np.random.default_rng(seed)
    n0 = n - n // 2
    n1 = n // 2
    t0 = np.linspace(0.0, 2 * np.pi, n0, endpoint=False)
    t1 = np.linspace(0.0, 2 * np.pi, n1, endpoint=False)
    X = np.concatenate([np.column_stack([np.cos(t0), np.sin(t0)]),
                        factor * np.column_stack([np.cos(t1), np.sin(t1)])])
    X = X + rng.normal(0.0, noise, X.shape)
    y = np.concatenate([np.zeros(n0, np.int64), np.ones(n1, np.int64)])
    return _shuffled(rng, X, y)


#: The slides' height/weight regression (seed 001): least-squares line, its RMSE, and the RMSE
#: of the guess w = 0.2, b = 3 that the slides start from.
HEIGHTS_LINE = (4.057, 0.3769)      # weight = b + w * height
HEIGHTS_RMSE = 1.00795
HEIGHTS_GUESS = ((3.0, 0.2), 31.86411)
HEIGHTS_SPREAD = 0.7                # std of the heights (cm), like the slides' rows


def make_heights(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The slides' people: X (n, 1) heights in cm around 174, y (n,) weights in kg.

    Built so that the slides' figures hold exactly for every seed: the least-squares line is
    weight = 4.057 + 0.3769 * height with RMSE 1.00795, and w = 0.2, b = 3 has RMSE 31.86411.
    (The residuals are made orthogonal to 1 and to the heights, so least squares recovers the
    line exactly; the mean height is the one that gives the guess its RMSE.)"""
    _check(n, 0.0, 3)
    rng = np.random.default_rng([seed, 174])
    (b, w), rmse = HEIGHTS_LINE, HEIGHTS_RMSE
    (b0, w0), guess = HEIGHTS_GUESS
    z = rng.standard_normal(n)
    z = (z - z.mean()) / z.std()
    # RMSE(b0, w0)**2 = (mean residual)**2 + (w - w0)**2 var(height) + rmse**2
    gap = np.sqrt(guess ** 2 - (w - w0) ** 2 * HEIGHTS_SPREAD ** 2 - rmse ** 2)
    mean_height = (gap - (b - b0)) / (w - w0)
    height = mean_height + HEIGHTS_SPREAD * z
    noise = rng.standard_normal(n)
    basis = np.column_stack([np.ones(n), height])
    noise -= basis @ np.linalg.lstsq(basis, noise, rcond=None)[0]
    noise *= rmse / np.sqrt(np.mean(noise ** 2))
    return height[:, None], b + w * height + noise
