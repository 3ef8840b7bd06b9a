"""Elementwise primitives and their builders.

Primitive rather than composite, and why:
- `sub`, `div`: drawn as one gate, as on the slides, and keep formulas as the user wrote them.
- `sqrt`, `tanh`, `sigmoid`: their derivatives reuse the output (1/(2y), 1-y², y(1-y)); sigmoid
  is also evaluated stably for large |x| (`--expand` still draws the slides' gate chain).
- `relu`, `leaky_relu`, `elu`, `abs`, `maximum`, `minimum`: each owns its kink, so finite
  differences can say "not differentiable here", and each is one fused op in kernels.
- `step` (1 where x > 0) and `sign`: indicator functions with zero derivative; the VJPs of the
  kinked ops above are built from them.
- `softplus` log(1 + e**x): computed stably as logaddexp(0, x), with derivative sigmoid(x). The
  composite relu(x) + log(1 + exp(-|x|)) is stable too, but its VJP is wrong at exactly x = 0
  (the kinks of relu and abs cancel in value, not in their one-sided gradients), and a logit of
  exactly 0 is what a zero-initialised model produces.

Each `primitive(...)` call below is the whole definition of its op: meaning (shape, NumPy and
float implementations, VJPs, kinks) and translations (SymPy, compiled scalar code, diagram
style); each `@builder` makes a function public (`gv.<name>`) and, with `parse=`, callable from
expression strings. See docs/adding-an-op.md.
"""
from __future__ import annotations

import math
from types import MappingProxyType

import numpy as np

from gradviz.errors import ShapeError
from gradviz.core.ir import Node
from gradviz.ops.leaves import const, const_value, lift
from gradviz.ops.shape import broadcast_to, make
from gradviz.core.rules import builder, primitive
from gradviz.core.sizes import broadcast_shapes


# -- shape rules --------------------------------------------------------------------------------
def _same(*src: Node, **_attrs):
    first = src[0]
    for other in src[1:]:
        if other.shape != first.shape:
            raise ShapeError(f"elementwise operands differ in shape: {first.shape} vs {other.shape}")
        if other.dtype != first.dtype:
            raise ShapeError(f"elementwise operands differ in dtype: {first.dtype} vs {other.dtype}")
    return first.shape, first.dtype


_NO_ATTRS = MappingProxyType({})


def _scale(g: Node, local: Node) -> Node:
    """g * local inside VJP rules, written as just `local` when g is the scalar constant 1 (the
    seed, or the probe of `local_derivatives`), so backward graphs and formulas stay readable."""
    if g.op == "const" and g.shape == () and g.attrs["value"] == 1.0 and local.shape == ():
        return local
    return mul(g, local)


def _binary(op: str, a, b) -> Node:
    """Build `op(a, b)`, lifting numbers to constants and broadcasting explicitly."""
    # Fast paths for the common scalar cases: building big scalar graphs is dominated by this.
    if type(b) is float and type(a) is Node:
        b = Node("const", (), {"value": b}, (), a.dtype)
    elif not isinstance(b, Node):
        b = lift(b, like=a if isinstance(a, Node) else None)
    if not isinstance(a, Node):
        a = lift(a, like=b)
    if a.shape == b.shape and a.dtype == b.dtype:  # what `_same` checks, without the call
        return Node(op, (a, b), _NO_ATTRS, a.shape, a.dtype)
    if a.shape != b.shape:
        try:
            shape = broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ShapeError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together") \
                from None
        a, b = broadcast_to(a, shape), broadcast_to(b, shape)
    return make(op, a, b)


# -- arithmetic ---------------------------------------------------------------------------------
primitive("add", shape=_same, impl=lambda n, a, b: np.add(a, b), scalar=lambda n, a, b: a + b,
          vjp=lambda n, g: (g, g), scalar_vjp=lambda n, g, y, a, b: (g, g),
          sympy=lambda sp, a, b: a + b, code="{0} + {1}", style=("+", "gate"))
primitive("sub", shape=_same, impl=lambda n, a, b: np.subtract(a, b),
          scalar=lambda n, a, b: a - b, vjp=lambda n, g: (g, neg(g)),
          scalar_vjp=lambda n, g, y, a, b: (g, -g),
          sympy=lambda sp, a, b: a - b, code="{0} - {1}", style=("-", "gate"))
primitive("mul", shape=_same, impl=lambda n, a, b: np.multiply(a, b),
          scalar=lambda n, a, b: a * b, vjp=lambda n, g: (_scale(g, n.src[1]), _scale(g, n.src[0])),
          scalar_vjp=lambda n, g, y, a, b: (g * b, g * a),
          sympy=lambda sp, a, b: a * b, code="{0} * {1}", style=("*", "gate"))


def _div_vjp(node: Node, g: Node):
    ga = div(g, node.src[1])
    return ga, neg(mul(ga, node))  # d(a/b)/db = -(a/b)/b


def _div_scalar_vjp(n, g, y, a, b):
    ga = g / b
    return ga, -(ga * y)


primitive("div", shape=_same, impl=lambda n, a, b: np.divide(a, b),
          scalar=lambda n, a, b: a / b, vjp=_div_vjp, scalar_vjp=_div_scalar_vjp,
          sympy=lambda sp, a, b: a / b, code="{0} / {1}", style=("/", "gate"))
primitive("neg", shape=_same, impl=lambda n, x: np.negative(x), scalar=lambda n, x: -x,
          vjp=lambda n, g: (neg(g),), scalar_vjp=lambda n, g, y, x: (-g,),
          sympy=lambda sp, a: -a, code="-{0}", style=("*-1", "gate"))


def _pow_scalar(node, a, b):
    if a < 0 and b != int(b):
        raise ValueError("negative base, fractional exponent")
    return math.pow(a, b)


# Edges, as autograd and PyTorch do where they agree with the maths: a constant exponent 0
# gives d(a**0)/da = 0 everywhere (0 * a**-1 would be 0 * inf = nan at a = 0), and a constant
# base 0 gives d(0**b)/db = 0 (0**b is 0 for every b > 0; log(0) * 0 would be nan). Where the
# maths has no derivative (0**b at b = 0 jumps from inf to 1 to 0) finite differences say so.
# With both operands variables the same conventions are kept by two helper primitives (below):
# d/da = dpow(a, b) (b*a**(b-1), 0 where b = 0) and d/db = xlogy(a**b, a) (a**b*log(a), 0 where
# a**b = 0), so at a = 0, b > 0 both are 0, as PyTorch and autograd give (they are the limits
# as a -> 0+). Their SymPy rules are the plain formulas, so the backward graph still
# translates to exactly what sympy.diff gives and the proofs are unchanged.
def _pow_vjp(node: Node, g: Node):
    a, b = node.src
    bv = const_value(b)
    if bv is not None and b.shape == ():
        if bv == 0.0:
            ga = None
        else:
            lowered = a if bv == 2.0 else pow_(a, const(bv - 1.0, a.dtype))
            ga = _scale(g, mul(b, lowered))
    else:
        ga = _scale(g, dpow(a, b))
    av = const_value(a)
    if av is not None and a.shape == ():
        if av == 0.0:
            return ga, None
        return ga, _scale(g, mul(log(a), node))  # d(a**b)/db = log(a) * a**b
    return ga, _scale(g, xlogy(node, a))


def _pow_scalar_vjp(node, g, y, a, b):
    if node.src[1].op == "const":
        if b == 0.0:
            return 0.0, 0.0
        lowered = a if b == 2.0 else _pow_scalar(node, a, b - 1.0)
        return g * (b * lowered), 0.0  # a constant exponent gets no gradient
    ga = g * _dpow_scalar(node, a, b)
    if node.src[0].op == "const":
        if a == 0.0:
            return ga, 0.0
        return ga, g * (math.log(a) * y)
    return ga, g * _xlogy_scalar(node, y, a)


def _pow_sympy(sp, a, b):
    if a == 0 and not b.is_number:  # 0**b: 1 at b = 0, 0 for b > 0 (SymPy's d/db is nan)
        return sp.Piecewise((1, sp.Eq(b, 0)), (0, b > 0), (sp.oo, True))
    return a ** b


primitive("pow", shape=_same, impl=lambda n, a, b: np.power(a, b), scalar=_pow_scalar,
          vjp=_pow_vjp, scalar_vjp=_pow_scalar_vjp,
          sympy=_pow_sympy, code="{0} ** {1}", style=("**", "gate"))


# The two halves of pow's gradient, as primitives so that the conventions at 0 hold in every
# backend and the backward graph can be differentiated again (their own VJPs are built from
# pow, log, xlogy and dpow). Their SymPy rules are the formulas without the convention: where
# it applies, the formula is 0 * inf, whose limit is the convention's 0 (see
# gradviz.verify.symbolic.value_at).
# xlogy(u, v) = u*log(v), 0 where u = 0 (scipy's and PyTorch's xlogy): d(a**b)/db is
# xlogy(a**b, a), 0 at a = 0 for b > 0.
def _xlogy_np(n, u, v):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(u == 0, 0.0, u * np.log(v)).astype(n.dtype, copy=False)


def _xlogy_scalar(n, u, v):
    return 0.0 if u == 0.0 else u * math.log(v)  # log(v <= 0) raises: NumPy's -inf, nan


def _xlogy_vjp(n: Node, g: Node):
    u, v = n.src
    return _scale(g, log(v)), _scale(g, div(u, v))


primitive("xlogy", shape=_same, impl=_xlogy_np, scalar=_xlogy_scalar, vjp=_xlogy_vjp,
          scalar_vjp=lambda n, g, y, u, v: (g * math.log(v), g * (u / v)),
          sympy=lambda sp, u, v: u * sp.log(v), code="({z} if {0} == {z} else {0} * log({1}))",
          style=("xlogy", "function"))


# dpow(a, b) = b*a**(b-1), 0 where b = 0: d(a**b)/da, which is 0 where b = 0 for every a (a**0
# is 1), also at a = 0 where b*a**(b-1) would be 0 * inf.
def _dpow_np(n, a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, 0.0, b * np.power(a, b - 1.0)).astype(n.dtype, copy=False)


def _dpow_scalar(n, a, b):
    return 0.0 if b == 0.0 else b * _pow_scalar(n, a, b - 1.0)


def _dpow_vjp(n: Node, g: Node):
    a, b = n.src
    lowered = sub(b, 1.0)
    # d/da = b*(b-1)*a**(b-2); d/db = a**(b-1) + b*a**(b-1)*log(a)
    return (_scale(g, mul(b, dpow(a, lowered))),
            _scale(g, add(pow_(a, lowered), xlogy(n, a))))


def _dpow_scalar_vjp(n, g, y, a, b):
    lowered = b - 1.0
    return (g * (b * _dpow_scalar(n, a, lowered)),
            g * (_pow_scalar(n, a, lowered) + _xlogy_scalar(n, y, a)))


primitive("dpow", shape=_same, impl=_dpow_np, scalar=_dpow_scalar, vjp=_dpow_vjp,
          scalar_vjp=_dpow_scalar_vjp, sympy=lambda sp, a, b: b * a ** (b - 1),
          code="({z} if {1} == {z} else {1} * {0} ** ({1} - {one}))", style=("dpow", "function"))


# -- unary functions ----------------------------------------------------------------------------
def _sigmoid_np(n, x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(n.dtype, copy=False)


def _sigmoid_scalar(n, x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _relu_np(n, x):
    return np.maximum(x, 0).astype(n.dtype, copy=False)


def _leaky_np(n, x):
    return np.where(x > 0, x, n.attrs["slope"] * x).astype(n.dtype, copy=False)


def _elu_np(n, x):
    with np.errstate(over="ignore"):
        return np.where(x > 0, x, n.attrs["alpha"] * np.expm1(np.minimum(x, 0))).astype(
            n.dtype, copy=False)


def _elu_scalar(n, x):
    return x if x > 0 else n.attrs["alpha"] * math.expm1(x)


def _elu_vjp(n: Node, g: Node):
    x = n.src[0]
    s = step(x)
    return (_scale(g, add(s, mul(sub(1.0, s), add(n, n.attrs["alpha"])))),)  # 1, or y + alpha


def _step(x: float) -> float:
    return 1.0 if x > 0 else 0.0


def _sign(x: float) -> float:
    return (x > 0) - (x < 0) + 0.0


def _at_zero(n, x):
    return bool(np.any(np.asarray(x) == 0))


primitive("exp", shape=_same, impl=lambda n, x: np.exp(x), scalar=lambda n, x: math.exp(x),
          vjp=lambda n, g: (_scale(g, n),), scalar_vjp=lambda n, g, y, x: (g * y,),
          sympy=lambda sp, x: sp.exp(x), code="exp({0})", style=("exp", "function"))
primitive("log", shape=_same, impl=lambda n, x: np.log(x), scalar=lambda n, x: math.log(x),
          vjp=lambda n, g: (div(g, n.src[0]),), scalar_vjp=lambda n, g, y, x: (g / x,),
          sympy=lambda sp, x: sp.log(x), code="log({0})", style=("log", "function"))
primitive("sqrt", shape=_same, impl=lambda n, x: np.sqrt(x), scalar=lambda n, x: math.sqrt(x),
          vjp=lambda n, g: (div(g, mul(2.0, n)),),
          scalar_vjp=lambda n, g, y, x: (g / (2.0 * y),),
          sympy=lambda sp, x: sp.sqrt(x), code="sqrt({0})", style=("sqrt", "function"))
primitive("abs", shape=_same, impl=lambda n, x: np.abs(x), scalar=lambda n, x: abs(x),
          vjp=lambda n, g: (_scale(g, sign(n.src[0])),), kink=_at_zero,
          scalar_vjp=lambda n, g, y, x: (g * _sign(x),),
          sympy=lambda sp, x: sp.Abs(x), code="abs({0})", style=("abs", "function"))
primitive("sin", shape=_same, impl=lambda n, x: np.sin(x), scalar=lambda n, x: math.sin(x),
          vjp=lambda n, g: (_scale(g, cos(n.src[0])),),
          scalar_vjp=lambda n, g, y, x: (g * math.cos(x),),
          sympy=lambda sp, x: sp.sin(x), code="sin({0})", style=("sin", "function"))
primitive("cos", shape=_same, impl=lambda n, x: np.cos(x), scalar=lambda n, x: math.cos(x),
          vjp=lambda n, g: (neg(_scale(g, sin(n.src[0]))),),
          scalar_vjp=lambda n, g, y, x: (-(g * math.sin(x)),),
          sympy=lambda sp, x: sp.cos(x), code="cos({0})", style=("cos", "function"))
primitive("tanh", shape=_same, impl=lambda n, x: np.tanh(x), scalar=lambda n, x: math.tanh(x),
          vjp=lambda n, g: (_scale(g, sub(1.0, mul(n, n))),),
          scalar_vjp=lambda n, g, y, x: (g * (1.0 - y * y),),
          sympy=lambda sp, x: sp.tanh(x), code="tanh_({0})", style=("tanh", "function"))
primitive("sigmoid", shape=_same, impl=_sigmoid_np, scalar=_sigmoid_scalar,
          vjp=lambda n, g: (_scale(g, mul(n, sub(1.0, n))),),
          scalar_vjp=lambda n, g, y, x: (g * (y * (1.0 - y)),),
          sympy=lambda sp, x: 1 / (1 + sp.exp(-x)), code="sigmoid_({0})",
          style=("sigmoid", "function"))
primitive("relu", shape=_same, impl=_relu_np, scalar=lambda n, x: x if x > 0 else 0.0,
          vjp=lambda n, g: (_scale(g, step(n.src[0])),), kink=_at_zero,
          scalar_vjp=lambda n, g, y, x: (g * _step(x),),
          sympy=lambda sp, x: sp.Max(x, 0), code="({0} if {0} > {z} else {z})",
          style=("relu", "function"))
primitive("leaky_relu", shape=_same, impl=_leaky_np,
          scalar=lambda n, x: x if x > 0 else n.attrs["slope"] * x,
          vjp=lambda n, g: (_scale(g, add(n.attrs["slope"],
                                       mul(1.0 - n.attrs["slope"], step(n.src[0])))),),
          scalar_vjp=lambda n, g, y, x: (
              g * (n.attrs["slope"] + (1.0 - n.attrs["slope"]) * _step(x)),),
          kink=_at_zero,
          sympy=lambda sp, x, slope: slope * x + (1 - slope) * sp.Max(x, 0),
          code="({0} if {0} > {z} else {slope} * {0})", style=("leaky relu", "function"))


def _elu_scalar_vjp(n, g, y, x):
    s = _step(x)
    return (g * (s + (1.0 - s) * (y + n.attrs["alpha"])),)


primitive("elu", shape=_same, impl=_elu_np, scalar=_elu_scalar, vjp=_elu_vjp,
          scalar_vjp=_elu_scalar_vjp,
          kink=lambda n, x: n.attrs["alpha"] != 1.0 and _at_zero(n, x),
          sympy=lambda sp, x, alpha: sp.Max(x, 0) + alpha * (sp.exp(sp.Min(x, 0)) - 1),
          code="({0} if {0} > {z} else {alpha} * expm1({0}))", style=("elu", "function"))
primitive("step", shape=_same,
          impl=lambda n, x: (np.asarray(x) > 0).astype(n.dtype),
          scalar=lambda n, x: _step(x), vjp=None, kink=_at_zero,
          # step(0) = 0, as in gradviz; SymPy's own default is 1/2
          sympy=lambda sp, x: sp.Heaviside(x, 0), code="({one} if {0} > {z} else {z})",
          style=("step", "indicator"))
primitive("sign", shape=_same, impl=lambda n, x: np.sign(x),
          scalar=lambda n, x: _sign(x), vjp=None, kink=_at_zero,
          sympy=lambda sp, x: sp.sign(x),
          code="({one} if {0} > {z} else (-{one} if {0} < {z} else {z}))",
          style=("sign", "indicator"))


def _softplus_scalar(node, x):
    return max(x, 0.0) + float(np.log1p(np.exp(-abs(x))))


primitive("softplus", shape=lambda x: (x.shape, x.dtype),
          impl=lambda n, x: np.logaddexp(0.0, x).astype(n.dtype, copy=False),
          scalar=_softplus_scalar, vjp=lambda n, g: (_scale(g, sigmoid(n.src[0])),),
          scalar_vjp=lambda n, g, y, x: (g * _sigmoid_scalar(n, x),),
          sympy=lambda sp, x: sp.log(1 + sp.exp(x)), code="softplus_({0})",
          style=("softplus", "function"))


# softsign x / (1 + |x|): a primitive rather than the composite, which would borrow abs's kink at
# 0 (finite differences would call it "not differentiable" there) and be three ops, not one.
def _softsign_vjp(n: Node, g: Node):
    d = add(1.0, abs_(n.src[0]))
    return (div(g, mul(d, d)),)  # 1 / (1 + |x|)**2


primitive("softsign", shape=_same, impl=lambda n, x: x / (1.0 + np.abs(x)),
          scalar=lambda n, x: x / (1.0 + abs(x)), vjp=_softsign_vjp,
          scalar_vjp=lambda n, g, y, x: (g / ((1.0 + abs(x)) * (1.0 + abs(x))),),
          sympy=lambda sp, x: x / (1 + sp.Abs(x)), code="{0} / ({one} + abs({0}))",
          style=("softsign", "function"))


# asin, acos, atan, atan2, erf, gelu: primitives, since their derivatives are not built from other
# ops' values (1/sqrt(1 - x**2), 1/(1 + x**2), x/(x**2 + y**2), 2/sqrt(pi)*exp(-x**2)), and
# gelu's x*Phi(x) is one op in pictures and kernels, computed with erfc so that it stays exact
# for large negative x (1 + erf(x/sqrt(2)) cancels to 0 there). Scalar code calls Python's
# math functions, which Numba compiles for both dtypes on CPU and CUDA
# (gradviz.compiler.templates.MATH). NumPy has no erf: the reference impl maps math.erf.
_SQRT1_2 = math.sqrt(0.5)
_2_SQRTPI = 2.0 / math.sqrt(math.pi)
_1_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)
_ERF = np.vectorize(math.erf, otypes=[np.float64])
_ERFC = np.vectorize(math.erfc, otypes=[np.float64])


def _asin_vjp(n: Node, g: Node):
    x = n.src[0]
    return (div(g, sqrt(sub(1.0, mul(x, x)))),)


def _acos_vjp(n: Node, g: Node):
    x = n.src[0]
    return (neg(div(g, sqrt(sub(1.0, mul(x, x))))),)


def _atan_vjp(n: Node, g: Node):
    x = n.src[0]
    return (div(g, add(1.0, mul(x, x))),)


def _atan2_vjp(n: Node, g: Node):
    y, x = n.src  # d atan2(y, x) = (x dy - y dx) / (x**2 + y**2)
    r = add(mul(x, x), mul(y, y))
    return _scale(g, div(x, r)), neg(_scale(g, div(y, r)))


def _atan2_scalar_vjp(n, g, out, y, x):
    r = x * x + y * y
    return g * (x / r), -(g * (y / r))


def _erf_vjp(n: Node, g: Node):
    x = n.src[0]
    return (_scale(g, mul(_2_SQRTPI, exp(neg(mul(x, x))))),)


def _gelu_vjp(n: Node, g: Node):
    x = n.src[0]  # Phi(x) + x*phi(x)
    cdf = mul(0.5, add(1.0, erf(mul(x, _SQRT1_2))))
    pdf = mul(_1_SQRT2PI, exp(mul(-0.5, mul(x, x))))
    return (_scale(g, add(cdf, mul(x, pdf))),)


def _gelu_scalar_vjp(n, g, y, x):
    cdf = 0.5 * (1.0 + math.erf(x * _SQRT1_2))
    pdf = _1_SQRT2PI * math.exp(-0.5 * (x * x))
    return (g * (cdf + x * pdf),)


def _real(f):
    """A float rule that is nan outside the domain, as NumPy's (math.asin(2) raises)."""
    return lambda n, x: f(x) if -1.0 <= x <= 1.0 else math.nan


primitive("asin", shape=_same, impl=lambda n, x: np.arcsin(x), scalar=_real(math.asin),
          vjp=_asin_vjp, scalar_vjp=lambda n, g, y, x: (g / math.sqrt(1.0 - x * x),),
          sympy=lambda sp, x: sp.asin(x), code="asin({0})", style=("asin", "function"))
primitive("acos", shape=_same, impl=lambda n, x: np.arccos(x), scalar=_real(math.acos),
          vjp=_acos_vjp, scalar_vjp=lambda n, g, y, x: (-(g / math.sqrt(1.0 - x * x)),),
          sympy=lambda sp, x: sp.acos(x), code="acos({0})", style=("acos", "function"))
primitive("atan", shape=_same, impl=lambda n, x: np.arctan(x), scalar=lambda n, x: math.atan(x),
          vjp=_atan_vjp, scalar_vjp=lambda n, g, y, x: (g / (1.0 + x * x),),
          sympy=lambda sp, x: sp.atan(x), code="atan({0})", style=("atan", "function"))
primitive("atan2", shape=_same, impl=lambda n, y, x: np.arctan2(y, x),
          scalar=lambda n, y, x: math.atan2(y, x), vjp=_atan2_vjp, scalar_vjp=_atan2_scalar_vjp,
          sympy=lambda sp, y, x: sp.atan2(y, x), code="atan2({0}, {1})",
          style=("atan2", "function"))
primitive("erf", shape=_same, impl=lambda n, x: _ERF(x).astype(n.dtype, copy=False),
          scalar=lambda n, x: math.erf(x), vjp=_erf_vjp,
          scalar_vjp=lambda n, g, y, x: (g * (_2_SQRTPI * math.exp(-(x * x))),),
          sympy=lambda sp, x: sp.erf(x), code="erf({0})", style=("erf", "function"))
primitive("gelu", shape=_same,
          impl=lambda n, x: (0.5 * x * _ERFC(-x * _SQRT1_2)).astype(n.dtype, copy=False),
          scalar=lambda n, x: 0.5 * x * math.erfc(-x * _SQRT1_2), vjp=_gelu_vjp,
          scalar_vjp=_gelu_scalar_vjp,
          sympy=lambda sp, x: x * (1 + sp.erf(x / sp.sqrt(2))) / 2,
          code=f"F(0.5) * {{0}} * erfc(-{{0}} * F({_SQRT1_2!r}))", style=("gelu", "function"))


@builder(parse="asin", summary="inverse sine, on [-1, 1]")
def asin(x) -> Node:
    """Inverse sine (arcsin), defined on [-1, 1]; its derivative is 1/sqrt(1 - x**2)."""
    return _unary("asin", x)


@builder(parse="acos", summary="inverse cosine, on [-1, 1]")
def acos(x) -> Node:
    """Inverse cosine (arccos), defined on [-1, 1]; its derivative is -1/sqrt(1 - x**2)."""
    return _unary("acos", x)


@builder(parse="atan", summary="inverse tangent")
def atan(x) -> Node:
    """Inverse tangent (arctan); its derivative is 1/(1 + x**2)."""
    return _unary("atan", x)


@builder(parse="atan2", arity=2, summary="atan2(y, x): the angle of the point (x, y)")
def atan2(y, x) -> Node:
    """The angle of the point (x, y) in (-pi, pi], as NumPy's arctan2(y, x): it jumps by 2*pi
    across the negative x axis and is undefined at the origin."""
    return _binary("atan2", y, x)


@builder(parse="erf", summary="error function")
def erf(x) -> Node:
    """The error function 2/sqrt(pi) * integral of exp(-t**2) from 0 to x."""
    return _unary("erf", x)


@builder(parse="gelu", summary="x*Phi(x) = x*(1 + erf(x/sqrt(2)))/2")
def gelu(x) -> Node:
    """GELU (Hendrycks and Gimpel), exact form: x * Phi(x), Phi the standard normal CDF."""
    return _unary("gelu", x)


@builder(parse="softsign", summary="x/(1+|x|)")
def softsign(x) -> Node:
    """x / (1 + |x|), a smooth squashing to (-1, 1); its derivative is 1 / (1 + |x|)**2."""
    return _unary("softsign", x)


# -- binary max / min ---------------------------------------------------------------------------
def _tie(n, a, b):
    return bool(np.any(np.asarray(a) == np.asarray(b)))


def _maximum_vjp(n: Node, g: Node):
    ga = _scale(g, step(sub(n.src[0], n.src[1])))  # at a tie the gradient goes to b
    return ga, sub(g, ga)


def _minimum_vjp(n: Node, g: Node):
    ga = _scale(g, step(sub(n.src[1], n.src[0])))
    return ga, sub(g, ga)


def _maximum_scalar_vjp(n, g, y, a, b):
    ga = g * _step(a - b)
    return ga, g - ga


def _minimum_scalar_vjp(n, g, y, a, b):
    ga = g * _step(b - a)
    return ga, g - ga


primitive("maximum", shape=_same, impl=lambda n, a, b: np.maximum(a, b),
          scalar=lambda n, a, b: a if a >= b else b, vjp=_maximum_vjp,
          scalar_vjp=_maximum_scalar_vjp, kink=_tie,
          sympy=lambda sp, a, b: sp.Max(a, b), code="({0} if {0} >= {1} else {1})",
          style=("max", "gate"))
primitive("minimum", shape=_same, impl=lambda n, a, b: np.minimum(a, b),
          scalar=lambda n, a, b: a if a <= b else b, vjp=_minimum_vjp,
          scalar_vjp=_minimum_scalar_vjp, kink=_tie,
          sympy=lambda sp, a, b: sp.Min(a, b), code="({0} if {0} <= {1} else {1})",
          style=("min", "gate"))


# -- builders -----------------------------------------------------------------------------------
@builder()
def add(a, b) -> Node:
    """a + b (broadcasting)."""
    return _binary("add", a, b)


@builder()
def sub(a, b) -> Node:
    """a - b (broadcasting)."""
    return _binary("sub", a, b)


@builder()
def mul(a, b) -> Node:
    """a * b, elementwise (broadcasting)."""
    return _binary("mul", a, b)


@builder()
def div(a, b) -> Node:
    """a / b, elementwise (broadcasting)."""
    return _binary("div", a, b)


@builder("power")
def pow_(a, b) -> Node:
    """a ** b, elementwise; the exponent may be a constant or any node."""
    return _binary("pow", a, b)


@builder(parse="xlogy", arity=2, summary="xlogy(x, y) = x*log(y), 0 where x = 0")
def xlogy(x, y) -> Node:
    """x * log(y), and 0 where x = 0 (also where y = 0): d(a**b)/db is xlogy(a**b, a)."""
    return _binary("xlogy", x, y)


@builder(parse="dpow", arity=2, summary="dpow(x, y) = y*x**(y-1), 0 where y = 0")
def dpow(x, y) -> Node:
    """y * x**(y - 1), and 0 where y = 0 (also where x = 0): d(x**y)/dx."""
    return _binary("dpow", x, y)


@builder(parse="max", arity=None, summary="max(a, b, ...)")
def maximum(a, b) -> Node:
    """Elementwise maximum of a and b (a kink where they tie)."""
    return _binary("maximum", a, b)


@builder(parse="min", arity=None, summary="min(a, b, ...)")
def minimum(a, b) -> Node:
    """Elementwise minimum of a and b (a kink where they tie)."""
    return _binary("minimum", a, b)


def _unary(op: str, x, **attrs) -> Node:
    return make(op, lift(x), **attrs)


@builder()
def neg(x) -> Node:
    """-x."""
    return _unary("neg", x)


@builder(parse="exp", summary="e**x")
def exp(x) -> Node:
    """e**x."""
    return _unary("exp", x)


@builder(parse="log", summary="natural logarithm")
def log(x) -> Node:
    """Natural logarithm."""
    return _unary("log", x)


@builder(parse="sqrt", summary="square root")
def sqrt(x) -> Node:
    """Square root."""
    return _unary("sqrt", x)


@builder("abs", parse="abs", summary="|x|")
def abs_(x) -> Node:
    """|x| (a kink at 0)."""
    return _unary("abs", x)


@builder(parse="sin", summary="sine")
def sin(x) -> Node:
    """Sine."""
    return _unary("sin", x)


@builder(parse="cos", summary="cosine")
def cos(x) -> Node:
    """Cosine."""
    return _unary("cos", x)


@builder(parse="tanh", summary="hyperbolic tangent")
def tanh(x) -> Node:
    """Hyperbolic tangent."""
    return _unary("tanh", x)


@builder(parse="sigmoid", summary="1/(1+exp(-x))")
def sigmoid(x) -> Node:
    """Logistic sigmoid 1 / (1 + e**-x)."""
    return _unary("sigmoid", x)


@builder(parse="relu", summary="max(0, x)")
def relu(x) -> Node:
    """max(0, x) (a kink at 0)."""
    return _unary("relu", x)


@builder(parse="leaky_relu", constants=1, summary="leaky_relu(x, slope=0.1)")
def leaky_relu(x, slope: float = 0.1) -> Node:
    """x where x > 0, else slope * x (the slides use slope 0.1)."""
    return _unary("leaky_relu", x, slope=float(slope))


@builder(parse="elu", constants=1, summary="elu(x, alpha=1)")
def elu(x, alpha: float = 1.0) -> Node:
    """x where x > 0, else alpha * (e**x - 1)."""
    return _unary("elu", x, alpha=float(alpha))


@builder(parse="softplus", summary="log(1 + exp(x))")
def softplus(x) -> Node:
    """log(1 + e**x), computed without overflow; its derivative is sigmoid(x)."""
    return make("softplus", lift(x))


@builder(parse="step", summary="1 if x > 0 else 0")
def step(x) -> Node:
    """1 where x > 0, else 0 (the perceptron's activation; zero derivative)."""
    return _unary("step", x)


@builder(parse="sign", summary="-1, 0 or 1")
def sign(x) -> Node:
    """-1, 0 or 1 by the sign of x (zero derivative)."""
    return _unary("sign", x)


# -- composites: functions of the expression language made of the primitives above --------------
# Each is exact as written and adds no kink of its own, so a composite is cheaper than a
# primitive (no rule tables, no kernel code, no spec row; its derivative, SymPy form and compiled
# code come from its parts). Primitives would buy stability only: tan near pi/2, sinh and cosh
# past |x| = 709 overflow either way.
@builder(parse="tan", summary="sin(x)/cos(x)")
def tan(x) -> Node:
    """Tangent, as sin(x) / cos(x)."""
    return div(sin(x), cos(x))


@builder(parse="sinh", summary="(exp(x) - exp(-x))/2")
def sinh(x) -> Node:
    """Hyperbolic sine, as (e**x - e**-x) / 2."""
    return mul(sub(exp(x), exp(neg(x))), 0.5)


@builder(parse="cosh", summary="(exp(x) + exp(-x))/2")
def cosh(x) -> Node:
    """Hyperbolic cosine, as (e**x + e**-x) / 2."""
    return mul(add(exp(x), exp(neg(x))), 0.5)


@builder(parse="log10", summary="log(x)/log(10)")
def log10(x) -> Node:
    """Base-10 logarithm, as log(x) / log(10)."""
    return div(log(x), math.log(10.0))


@builder(parse="log2", summary="log(x)/log(2)")
def log2(x) -> Node:
    """Base-2 logarithm, as log(x) / log(2)."""
    return div(log(x), math.log(2.0))


@builder(parse="silu", summary="x*sigmoid(x)")
def silu(x) -> Node:
    """x * sigmoid(x) (also called swish), built from the stable sigmoid primitive."""
    return mul(x, sigmoid(x))


@builder(parse="swish", summary="x*sigmoid(x), the same as silu")
def swish(x) -> Node:
    """x * sigmoid(x): silu under its other name."""
    return silu(x)


@builder(parse="clip", constants=2, summary="clip(x, lo, hi) = min(max(x, lo), hi)")
def clip(x, lo: float = -1.0, hi: float = 1.0) -> Node:
    """x limited to [lo, hi], as min(max(x, lo), hi): kinks at lo and hi (max's and min's)."""
    if not lo <= hi:
        from gradviz.errors import GradvizError

        raise GradvizError(f"clip(x, lo, hi) needs lo <= hi, got {lo:g} > {hi:g}")
    return minimum(maximum(x, float(lo)), float(hi))
