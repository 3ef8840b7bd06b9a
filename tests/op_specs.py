"""The op spec table: one row per op case, shared by every test that checks ops.

Each `OpSpec` names the primitive it exercises, builds the op from input nodes, gives an
independent NumPy reference for the forward value, the input shapes, and a sampler for valid
inputs (the op's domain, kept away from kinks). Forward, gradient (float64 central differences),
SymPy, compiler and CUDA-simulator tests all iterate over `SPECS`; kinks are listed separately in
`KINKS`. To cover a new op, add a row here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import gradviz as gv


def uniform(lo: float, hi: float):
    return lambda rng, shape: rng.uniform(lo, hi, size=shape)


def away_from_zero(lo: float = 0.2, hi: float = 2.0):
    """Magnitudes in [lo, hi] with random signs (keeps relu/abs/... off their kink)."""
    def sample(rng, shape):
        return rng.uniform(lo, hi, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return sample


def distinct_pair(rng, shape):
    """Two operands that never tie (for maximum/minimum)."""
    return rng.uniform(-2, 2, size=shape)


@dataclass
class OpSpec:
    """One op case. `build(*nodes) -> node`; `reference(*arrays) -> array` (NumPy, written
    independently of the op's impl); `shapes` the input shapes; `domain` samples one input."""

    name: str
    primitive: str
    build: Callable
    reference: Callable
    shapes: tuple
    domain: Callable | tuple = field(default_factory=lambda: uniform(-2.0, 2.0))
    rtol: float = 1e-10
    scalar: bool = True  # every input is a scalar (usable by SymPy tests)

    def inputs(self, seed: int = 0, dtype=np.float64) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        domains = self.domain if isinstance(self.domain, tuple) else (self.domain,) * len(self.shapes)
        return [np.asarray(d(rng, s), dtype=dtype) for d, s in zip(domains, self.shapes)]

    def nodes(self, dtype: str = "float64") -> list:
        return [gv.var(f"a{i}", shape, dtype) for i, shape in enumerate(self.shapes)]


_erf = np.vectorize(math.erf, otypes=[np.float64])
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _elu(alpha):
    return lambda x: np.where(x > 0, x, alpha * (np.exp(x) - 1.0))


S = ()
V = (3,)
M = (2, 3)

SPECS: list[OpSpec] = [
    # scalar elementwise
    OpSpec("add", "add", lambda a, b: a + b, np.add, (S, S)),
    OpSpec("sub", "sub", lambda a, b: a - b, np.subtract, (S, S)),
    OpSpec("mul", "mul", lambda a, b: a * b, np.multiply, (S, S)),
    OpSpec("div", "div", lambda a, b: a / b, np.divide, (S, S),
           domain=(uniform(-2, 2), away_from_zero(0.5, 2.0))),
    OpSpec("neg", "neg", lambda a: -a, np.negative, (S,)),
    OpSpec("pow_const", "pow", lambda a: a ** 3, lambda a: a ** 3, (S,)),
    OpSpec("pow_const_frac", "pow", lambda a: a ** 1.5, lambda a: a ** 1.5, (S,),
           domain=uniform(0.3, 3.0)),
    OpSpec("pow_var", "pow", lambda a, b: a ** b, np.power, (S, S),
           domain=(uniform(0.3, 3.0), uniform(-2, 2))),
    # pow's gradient halves (d/db = xlogy(a**b, a), d/da = dpow(a, b)); their values at 0 are in
    # tests/test_pow_edges.py
    OpSpec("xlogy", "xlogy", gv.xlogy, lambda u, v: u * np.log(v), (S, S),
           domain=(uniform(-2, 2), uniform(0.3, 3.0))),
    OpSpec("dpow", "dpow", gv.dpow, lambda a, b: b * a ** (b - 1), (S, S),
           domain=(uniform(0.3, 3.0), uniform(-2, 2))),
    OpSpec("exp", "exp", gv.exp, np.exp, (S,)),
    OpSpec("log", "log", gv.log, np.log, (S,), domain=uniform(0.2, 4.0)),
    OpSpec("sqrt", "sqrt", gv.sqrt, np.sqrt, (S,), domain=uniform(0.2, 4.0)),
    OpSpec("abs", "abs", lambda a: abs(a), np.abs, (S,), domain=away_from_zero()),
    OpSpec("sin", "sin", gv.sin, np.sin, (S,)),
    OpSpec("cos", "cos", gv.cos, np.cos, (S,)),
    OpSpec("tanh", "tanh", gv.tanh, np.tanh, (S,)),
    OpSpec("sigmoid", "sigmoid", gv.sigmoid, _sigmoid, (S,), domain=uniform(-6, 6)),
    OpSpec("relu", "relu", gv.relu, lambda a: np.maximum(a, 0.0), (S,), domain=away_from_zero()),
    OpSpec("leaky_relu", "leaky_relu", lambda a: gv.leaky_relu(a, 0.1),
           lambda a: np.where(a > 0, a, 0.1 * a), (S,), domain=away_from_zero()),
    OpSpec("elu", "elu", lambda a: gv.elu(a, 0.7), _elu(0.7), (S,), domain=away_from_zero()),
    OpSpec("maximum", "maximum", gv.maximum, np.maximum, (S, S), domain=distinct_pair),
    OpSpec("minimum", "minimum", gv.minimum, np.minimum, (S, S), domain=distinct_pair),
    OpSpec("step", "step", gv.step, lambda a: (a > 0).astype(float), (S,), domain=away_from_zero()),
    OpSpec("sign", "sign", gv.sign, np.sign, (S,), domain=away_from_zero()),
    OpSpec("softsign", "softsign", gv.softsign, lambda a: a / (1 + np.abs(a)), (S,)),
    OpSpec("asin", "asin", gv.asin, np.arcsin, (S,), domain=uniform(-0.9, 0.9)),
    OpSpec("acos", "acos", gv.acos, np.arccos, (S,), domain=uniform(-0.9, 0.9)),
    OpSpec("atan", "atan", gv.atan, np.arctan, (S,), domain=uniform(-3.0, 3.0)),
    OpSpec("atan2", "atan2", gv.atan2, np.arctan2, (S, S),  # x > 0: off the branch cut
           domain=(uniform(-2.0, 2.0), uniform(0.3, 2.0))),
    OpSpec("atan2_left", "atan2", gv.atan2, np.arctan2, (S, S),  # x < 0, y away from the cut
           domain=(away_from_zero(0.3, 2.0), uniform(-2.0, -0.3))),
    OpSpec("erf", "erf", gv.erf, lambda a: 1.0 - _erfc(a), (S,)),
    OpSpec("gelu", "gelu", gv.gelu, lambda a: a * (1.0 + _erf(a / np.sqrt(2.0))) / 2, (S,),
           domain=uniform(-4.0, 4.0)),
    OpSpec("gelu_tensor", "gelu", gv.gelu, lambda a: a * (1.0 + _erf(a / np.sqrt(2.0))) / 2,
           (M,), scalar=False),
    # composites of the expression language (no rule tables: the primitive they rest on)
    OpSpec("tan", "sin", gv.tan, np.tan, (S,), domain=uniform(-1.2, 1.2)),
    OpSpec("sinh", "exp", gv.sinh, np.sinh, (S,)),
    OpSpec("cosh", "exp", gv.cosh, np.cosh, (S,)),
    OpSpec("log10", "log", gv.log10, np.log10, (S,), domain=uniform(0.2, 4.0)),
    OpSpec("log2", "log", gv.log2, np.log2, (S,), domain=uniform(0.2, 4.0)),
    OpSpec("silu", "sigmoid", gv.silu, lambda a: a / (1.0 + np.exp(-a)), (S,),
           domain=uniform(-6.0, 6.0)),
    OpSpec("clip", "minimum", lambda a: gv.clip(a, -1.0, 1.5), lambda a: np.clip(a, -1.0, 1.5),
           (S,), domain=lambda rng, shape: rng.choice([-1.7, -0.3, 0.4, 1.2, 2.2], size=shape)
           + rng.uniform(-0.1, 0.1, size=shape)),  # off the kinks at -1 and 1.5
    # tensors, broadcasting, reductions, shapes, matmul
    OpSpec("add_broadcast", "broadcast_to", lambda a, b: a + b, np.add, (M, V), scalar=False),
    OpSpec("mul_scalar_tensor", "broadcast_to", lambda a, b: a * b, np.multiply, (S, M),
           scalar=False),
    OpSpec("mul_tensor", "mul", lambda a, b: a * b, np.multiply, (M, M), scalar=False),
    OpSpec("tanh_tensor", "tanh", gv.tanh, np.tanh, (M,), scalar=False),
    OpSpec("sigmoid_tensor", "sigmoid", gv.sigmoid, _sigmoid, (M,), scalar=False),
    OpSpec("broadcast_rows", "broadcast_to", lambda a: gv.broadcast_to(a, (4, 1, 3)),
           lambda a: np.broadcast_to(a, (4, 1, 3)), ((1, 3),), scalar=False),
    OpSpec("sum_all", "sum", lambda a: gv.sum(a), np.sum, (M,), scalar=False),
    OpSpec("sum_axis0", "sum", lambda a: gv.sum(a, 0), lambda a: np.sum(a, 0), (M,), scalar=False),
    OpSpec("sum_keepdims", "sum", lambda a: gv.sum(a, 1, keepdims=True),
           lambda a: np.sum(a, 1, keepdims=True), (M,), scalar=False),
    OpSpec("mean_axis1", "sum", lambda a: gv.mean(a, 1), lambda a: np.mean(a, 1), (M,),
           scalar=False),
    OpSpec("reshape", "reshape", lambda a: gv.reshape(a, (3, 2)), lambda a: a.reshape(3, 2),
           (M,), scalar=False),
    OpSpec("transpose", "transpose", lambda a: a.T, lambda a: a.T, (M,), scalar=False),
    OpSpec("transpose3", "transpose", lambda a: gv.transpose(a, (1, 2, 0)),
           lambda a: np.transpose(a, (1, 2, 0)), ((2, 3, 4),), scalar=False),
    OpSpec("matmul", "matmul", lambda a, b: a @ b, np.matmul, ((2, 3), (3, 4)), scalar=False),
    OpSpec("matvec", "matmul", lambda a, b: a @ b, np.matmul, ((2, 3), (3,)), scalar=False),
    OpSpec("vecmat", "matmul", lambda a, b: a @ b, np.matmul, ((3,), (3, 4)), scalar=False),
]



# -- network ops (gradviz.ops: conv, reduce, composite; gradviz.nn.losses): naive loop references --
def _windows_of(h, w, kernel, stride, pad=0):
    """(i, j, row slice, column slice) of every window of a padded h x w plane."""
    (kh, kw), (sh, sw) = kernel, stride
    for i in range((h + 2 * pad - kh) // sh + 1):
        for j in range((w + 2 * pad - kw) // sw + 1):
            yield i, j, slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)


def _pad(x, pad):
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def _conv_ref(stride, pad):
    def ref(x, w):
        kernel = w.shape[2:]
        wins = list(_windows_of(*x.shape[2:], kernel, (stride, stride), pad))
        out = np.zeros((x.shape[0], w.shape[0], wins[-1][0] + 1, wins[-1][1] + 1))
        for i, j, rows, cols in wins:
            out[:, :, i, j] = np.einsum("nckl,ockl->no", _pad(x, pad)[:, :, rows, cols], w)
        return out
    return ref


def _conv_transpose_ref(in_hw, stride, pad):
    def ref(g, w):
        out = np.zeros((g.shape[0], w.shape[1], in_hw[0] + 2 * pad, in_hw[1] + 2 * pad))
        for i, j, rows, cols in _windows_of(*in_hw, w.shape[2:], (stride, stride), pad):
            out[:, :, rows, cols] += np.einsum("no,ockl->nckl", g[:, :, i, j], w)
        return out[:, :, pad:pad + in_hw[0], pad:pad + in_hw[1]]
    return ref


def _conv_weight_grad_ref(kernel, stride, pad):
    def ref(x, g):
        out = np.zeros((g.shape[1], x.shape[1], *kernel))
        for i, j, rows, cols in _windows_of(*x.shape[2:], kernel, (stride, stride), pad):
            out += np.einsum("nckl,no->ockl", _pad(x, pad)[:, :, rows, cols], g[:, :, i, j])
        return out
    return ref


def _pool_ref(kernel, stride, reduce):
    def ref(x):
        wins = list(_windows_of(*x.shape[2:], (kernel, kernel), (stride, stride)))
        out = np.zeros((*x.shape[:2], wins[-1][0] + 1, wins[-1][1] + 1))
        for i, j, rows, cols in wins:
            out[:, :, i, j] = reduce(x[:, :, rows, cols], axis=(2, 3))
        return out
    return ref


def _argmax_cells(x, kernel, stride):
    """(n, c, i, j, row, col) for the first maximum of every window."""
    for i, j, rows, cols in _windows_of(*x.shape[2:], (kernel, kernel), (stride, stride)):
        for n in range(x.shape[0]):
            for c in range(x.shape[1]):
                a, b = np.unravel_index(np.argmax(x[n, c, rows, cols]), (kernel, kernel))
                yield n, c, i, j, rows.start + a, cols.start + b


def _max_pool_grad_ref(kernel, stride):
    def ref(x, g):
        out = np.zeros_like(x)
        for n, c, i, j, r, q in _argmax_cells(x, kernel, stride):
            out[n, c, r, q] += g[n, c, i, j]
        return out
    return ref


def _max_pool_gather_ref(kernel, stride):
    def ref(x, h):
        out = _pool_ref(kernel, stride, np.max)(x)
        for n, c, i, j, r, q in _argmax_cells(x, kernel, stride):
            out[n, c, i, j] = h[n, c, r, q]
        return out
    return ref


def _avg_pool_transpose_ref(in_hw, kernel, stride):
    def ref(g):
        out = np.zeros((*g.shape[:2], *in_hw))
        for i, j, rows, cols in _windows_of(*in_hw, (kernel, kernel), (stride, stride)):
            out[:, :, rows, cols] += g[:, :, i, j][:, :, None, None] / kernel ** 2
        return out
    return ref


def _log_softmax_ref(x, axis=-1):
    return x - np.log(np.sum(np.exp(x), axis=axis, keepdims=True))


def _softplus_ref(x):
    return np.log1p(np.exp(x))


def _onehot_rows(rng, shape):
    """Target distributions: rows of non-negative numbers summing to 1."""
    p = rng.uniform(0.1, 1.0, size=shape)
    return p / p.sum(axis=-1, keepdims=True)


def _mask(rng, shape):
    return rng.integers(0, 2, size=shape).astype(float)


def _nn_specs() -> list[OpSpec]:
    from gradviz.nn import losses
    from gradviz.ops import conv as nn

    img, filt = (2, 2, 5, 6), (3, 2, 3, 2)
    return [
        OpSpec("conv2d", "conv2d", nn.conv2d, _conv_ref(1, 0), ((2, 2, 5, 5), (3, 2, 3, 3)),
               scalar=False),
        OpSpec("conv2d_stride_pad", "conv2d", lambda x, w: nn.conv2d(x, w, 2, 1),
               _conv_ref(2, 1), (img, filt), scalar=False),
        OpSpec("conv2d_transpose", "conv2d_transpose",
               lambda g, w: nn.conv2d_transpose(g, w, (5, 6), 2, 1),
               _conv_transpose_ref((5, 6), 2, 1), ((2, 3, 3, 4), filt), scalar=False),
        OpSpec("conv2d_weight_grad", "conv2d_weight_grad",
               lambda x, g: nn.conv2d_weight_grad(x, g, (3, 2), 2, 1),
               _conv_weight_grad_ref((3, 2), 2, 1), (img, (2, 3, 3, 4)), scalar=False),
        OpSpec("max_pool2d", "max_pool2d", lambda x: nn.max_pool2d(x, 2),
               _pool_ref(2, 2, np.max), ((2, 2, 4, 5),), scalar=False),
        OpSpec("max_pool2d_overlap", "max_pool2d", lambda x: nn.max_pool2d(x, 3, 1),
               _pool_ref(3, 1, np.max), ((1, 2, 4, 5),), scalar=False),
        OpSpec("max_pool2d_grad", "max_pool2d_grad", lambda x, g: nn.max_pool2d_grad(x, g, 3, 1),
               _max_pool_grad_ref(3, 1), ((1, 2, 4, 5), (1, 2, 2, 3)), scalar=False),
        OpSpec("max_pool2d_gather", "max_pool2d_gather",
               lambda x, h: nn.max_pool2d_gather(x, h, 3, 1), _max_pool_gather_ref(3, 1),
               ((1, 2, 4, 5), (1, 2, 4, 5)), scalar=False),
        OpSpec("avg_pool2d", "avg_pool2d", lambda x: nn.avg_pool2d(x, 2),
               _pool_ref(2, 2, np.mean), ((2, 2, 4, 5),), scalar=False),
        OpSpec("avg_pool2d_transpose", "avg_pool2d_transpose",
               lambda g: nn.avg_pool2d_transpose(g, (5, 5), 3, 2),
               _avg_pool_transpose_ref((5, 5), 3, 2), ((2, 2, 2, 2),), scalar=False),
        OpSpec("amax_axis1", "amax", lambda x: gv.amax(x, 1), lambda x: np.max(x, 1), (M,),
               scalar=False),
        OpSpec("amax_all", "amax", gv.amax, np.max, (M,), scalar=False),
        OpSpec("softplus", "softplus", gv.softplus, _softplus_ref, (S,), domain=uniform(-6, 6)),
        OpSpec("softplus_tensor", "softplus", gv.softplus, _softplus_ref, (M,), scalar=False),
        OpSpec("flatten", "reshape", gv.flatten, lambda x: x.reshape(2, -1), ((2, 2, 3),),
               scalar=False),
        OpSpec("log_softmax", "amax", gv.log_softmax, _log_softmax_ref, ((3, 4),), scalar=False),
        OpSpec("softmax_axis0", "amax", lambda x: gv.softmax(x, 0),
               lambda x: np.exp(_log_softmax_ref(x, 0)), ((3, 4),), scalar=False),
        OpSpec("maxout", "amax", lambda x: gv.maxout(x, 2),
               lambda x: x.reshape(3, 2, 2).max(-1), ((3, 4),), scalar=False),
        OpSpec("dropout", "mul", lambda x, m: gv.dropout(x, m, 0.25),
               lambda x, m: x * m / 0.75, (M, M), domain=(uniform(-2, 2), _mask), scalar=False),
        OpSpec("cross_entropy", "amax", losses.cross_entropy,
               lambda z, t: np.mean(-np.sum(t * _log_softmax_ref(z), -1)), ((3, 4), (3, 4)),
               domain=(uniform(-3, 3), _onehot_rows), scalar=False),
        OpSpec("binary_cross_entropy", "softplus", losses.binary_cross_entropy,
               lambda z, t: np.mean(-t * np.log(_sigmoid(z)) - (1 - t) * np.log(1 - _sigmoid(z))),
               ((4, 1), (4, 1)), domain=(uniform(-4, 4), uniform(0, 1)), scalar=False),
        OpSpec("mse", "mul", losses.mse, lambda a, b: np.mean((a - b) ** 2), (M, M),
               scalar=False),
        OpSpec("rmse", "sqrt", losses.rmse, lambda a, b: np.sqrt(np.mean((a - b) ** 2)), (M, M),
               scalar=False),
        OpSpec("l2_penalty", "mul", lambda w, b: losses.l2_penalty([w, b], 0.01),
               lambda w, b: 0.01 * (np.sum(w ** 2) + np.sum(b ** 2)), (M, V), scalar=False),
    ]


SPECS += _nn_specs()

@dataclass
class KinkCase:
    """An expression evaluated exactly on a kink: finite differences must say so."""

    expression: str
    point: dict
    variable: str


KINKS = [
    KinkCase("relu(x)", {"x": 0.0}, "x"),
    KinkCase("abs(x)", {"x": 0.0}, "x"),
    KinkCase("abs(4 - (x*w + b))", {"x": 1.0, "w": 3.0, "b": 1.0}, "w"),
    KinkCase("max(x, y)", {"x": 1.5, "y": 1.5}, "x"),
    KinkCase("min(x, y)", {"x": -0.5, "y": -0.5}, "y"),
    KinkCase("leaky_relu(x, 0.1)", {"x": 0.0}, "x"),
    KinkCase("elu(x, 0.5)", {"x": 0.0}, "x"),
]
