"""The op spec table: one row per op case, shared by every test that checks ops.

Each `OpSpec` names the primitive it exercises, builds the op from input nodes, gives an
independent NumPy reference for the forward value, the input shapes, and a sampler for valid
inputs (the op's domain, kept away from kinks). Forward, gradient (float64 central differences),
SymPy, compiler and CUDA-simulator tests all iterate over `SPECS`; kinks are listed separately in
`KINKS`. To cover a new op, add a row here.
"""
from __future__ import annotations

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
