"""Loss functions as graph builders: each returns a scalar node, averaged over the batch.

All are composites of existing primitives (so their gradients, SymPy forms and kernels come for
free); stability comes from `log_softmax` (max-shifted) and `softplus` (logaddexp).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from gradviz.errors import GradvizError, ShapeError
from gradviz.core.ir import Node
from gradviz.ops import add, const, log_softmax, mean, mul, neg, softplus, sqrt, sub
from gradviz.ops import sum as sum_


def _same_shape(what: str, a: Node, b: Node) -> None:
    if a.shape != b.shape:
        raise ShapeError(f"{what}: prediction {a.shape} and target {b.shape} differ in shape")


def cross_entropy(logits: Node, onehot: Node) -> Node:
    """Categorical cross-entropy from logits: mean over the batch of -sum_k t_k log softmax(z)_k.

    `logits` is (N, K) (or (K,) for one sample); `onehot` has the same shape and holds target
    probabilities (one-hot rows for integer labels; see `one_hot`).
    """
    _same_shape("cross_entropy", logits, onehot)
    per_sample = neg(sum_(mul(onehot, log_softmax(logits, -1)), -1))
    return mean(per_sample) if per_sample.shape else per_sample


def binary_cross_entropy(logits: Node, targets: Node) -> Node:
    """Binary cross-entropy from logits z with targets t in [0, 1]: the mean of
    -t log sigmoid(z) - (1 - t) log(1 - sigmoid(z)), written as softplus(z) - t*z (stable)."""
    _same_shape("binary_cross_entropy", logits, targets)
    return mean(sub(softplus(logits), mul(targets, logits)))


def mse(prediction: Node, target: Node) -> Node:
    """Mean squared error over every entry."""
    _same_shape("mse", prediction, target)
    diff = sub(prediction, target)
    return mean(mul(diff, diff))


def rmse(prediction: Node, target: Node) -> Node:
    """Root mean squared error (its gradient is undefined where the error is exactly 0)."""
    return sqrt(mse(prediction, target))


def l2_penalty(params: Iterable[Node], strength: float) -> Node:
    """strength * sum of the squares of every entry of `params` (the slides' lambda(b^2 + w^2));
    add it to a loss. Pass the weights only to leave biases unregularized."""
    params = list(params)
    if not params:
        raise GradvizError("l2_penalty needs at least one parameter")
    total = None
    for p in params:
        term = sum_(mul(p, p)) if p.shape else mul(p, p)
        total = term if total is None else add(total, term)
    return mul(total, const(float(strength), dtype=total.dtype))


def classification_loss(logits: Node, targets: Node) -> Node:
    """The loss that fits a classifier's output: `binary_cross_entropy` for a single logit per
    sample (shape (N, 1)), `cross_entropy` with one-hot targets otherwise."""
    if logits.ndim == 2 and logits.shape[1] == 1:
        return binary_cross_entropy(logits, targets)
    return cross_entropy(logits, targets)


def one_hot(labels, n_classes: int, dtype="float32") -> np.ndarray:
    """Integer class labels (N,) as one-hot rows (N, n_classes), the target input of
    `cross_entropy`. With `n_classes == 1` (a binary model with one logit) gives labels as an
    (N, 1) column of 0/1 instead."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"
                            and not np.all(labels == np.round(labels))):
        raise GradvizError("one_hot needs a 1-D array of integer labels")
    labels = labels.astype(np.int64)
    top = 2 if n_classes == 1 else n_classes
    if labels.size and (labels.min() < 0 or labels.max() >= top):
        raise GradvizError(f"labels must lie in 0..{top - 1}, got {labels.min()}..{labels.max()}")
    if n_classes == 1:
        return labels.reshape(-1, 1).astype(dtype)
    out = np.zeros((labels.size, n_classes), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out


def predicted_classes(logits: np.ndarray) -> np.ndarray:
    """Class labels from logit values: argmax over classes, or logit > 0 for one logit."""
    logits = np.asarray(logits)
    if logits.ndim == 2 and logits.shape[1] == 1:
        return (logits[:, 0] > 0).astype(np.int64)
    return np.argmax(logits, axis=-1)
