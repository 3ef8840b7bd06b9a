"""Composite network ops: builders made of other ops, with no rule tables of their own.

`flatten` (a reshape), `log_softmax` (x - max - log(sum(exp(x - max))), stable for any logits),
`softmax`, `dropout` (x * mask / (1 - rate); the 0/1 mask is an *input*, so a step is
reproducible), `maxout` (amax over groups of units).
"""
from __future__ import annotations

from gradviz.core.ir import Node
from gradviz.core.rules import builder
from gradviz.errors import GradvizError, ShapeError
from gradviz.ops.elementwise import div, exp, log, mul, sub
from gradviz.ops.reduce import amax, sum as sum_
from gradviz.ops.shape import reshape


@builder()
def flatten(x: Node) -> Node:
    """(N, d1, d2, ...) -> (N, d1*d2*...): keeps the batch axis (a reshape)."""
    if x.ndim < 1:
        raise ShapeError("flatten needs at least a batch axis")
    features = 1
    for d in x.shape[1:]:
        features = features * d   # a product, not -1: named sizes keep their formula
    return reshape(x, (x.shape[0], features)) if x.ndim != 2 else x


@builder()
def log_softmax(x: Node, axis: int = -1) -> Node:
    """log(softmax(x)) along `axis`, as x - m - log(sum(exp(x - m))) with m the maximum, so no
    exp overflows and the log never sees 0."""
    shifted = sub(x, amax(x, axis, keepdims=True))
    return sub(shifted, log(sum_(exp(shifted), axis, keepdims=True)))


@builder()
def softmax(x: Node, axis: int = -1) -> Node:
    """e**x_i / sum_j e**x_j along `axis` (shifted by the maximum first, so it never overflows)."""
    e = exp(sub(x, amax(x, axis, keepdims=True)))
    return div(e, sum_(e, axis, keepdims=True))


@builder()
def dropout(x: Node, mask: Node, rate: float) -> Node:
    """Inverted dropout: x * mask / (1 - rate). `mask` is an input of x's shape holding 0 or 1
    (1 with probability 1 - rate), drawn outside the graph so that a step can be replayed."""
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise GradvizError(f"dropout rate must be in [0, 1), got {rate}")
    if mask.shape != x.shape:
        raise ShapeError(f"dropout mask {mask.shape} is not shaped like its input {x.shape}")
    if rate == 0.0:
        return x
    return mul(mul(x, mask), 1.0 / (1.0 - rate))


@builder()
def maxout(x: Node, pieces: int, axis: int = -1) -> Node:
    """Maxout: the features along `axis` form groups of `pieces` consecutive ones, and each
    group gives its maximum (so max(w1.x + b1, w2.x + b2) is maxout of a 2-wide linear layer)."""
    axis = axis % x.ndim
    size = x.shape[axis]
    if pieces < 1 or size % pieces:
        raise ShapeError(f"maxout: {size} features do not split into groups of {pieces}")
    grouped = reshape(x, (*x.shape[:axis], size // pieces, pieces, *x.shape[axis + 1:]))
    return amax(grouped, axis + 1)
