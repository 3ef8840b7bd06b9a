"""Elementwise code shared by the CPU and CUDA generators.

`scalar_code[op]`: one elementwise op as an expression template over scalars (`{0}`, `{1}` are
the operands, `{z}`/`{one}` typed 0 and 1, other names are the node's attrs as typed literals).
Templates use only `exp log sqrt expm1 log1p sin cos abs`, the helpers `tanh_ sigmoid_
softplus_`, which each backend defines in its prelude (`helpers`), and Python's `asin acos atan
atan2 erf erfc` (`MATH`, which Numba compiles in both dtypes on CPU and CUDA). Literals are
typed, `F(...)`: a float64 literal would promote float32 math.
"""
from __future__ import annotations

import math

from gradviz import ops  # noqa: F401  (registers every elementwise op's template)
from gradviz.compiler.schedule import Access
from gradviz.core import rules
from gradviz.core.ir import Node
from gradviz.core.sizes import Size, SizeRatio

# op -> template, registered by each elementwise op where it is defined (`code=` of
# `gradviz.core.rules.primitive`); the same dict as `rules.scalar_code`.
scalar_code: dict[str, str] = rules.scalar_code

# Helpers the templates call, per dtype. They must vectorize: np.tanh inside njit is a scalar
# libm call (about 5x slower than NumPy's), and so is exp. float32 tanh is Eigen's (and so
# PyTorch's) clamped rational approximation, within 4e-7 of tanh: pure arithmetic, so loops over
# it vectorize; float32 sigmoid is 1/2 + tanh(x/2)/2 (absolute error ~1e-7, fine next to float32
# rounding). float64 keeps the exp forms, which never overflow.
HELPERS = {
    "float32": '''
@{jit}
def tanh_(x):
    y = x if x < F(7.90531110763549805) else F(7.90531110763549805)
    y = y if y > F(-7.90531110763549805) else F(-7.90531110763549805)
    y2 = y * y
    p = y2 * F(-2.76076847742355e-16) + F(2.00018790482477e-13)
    p = p * y2 + F(-8.60467152213735e-11)
    p = p * y2 + F(5.12229709037114e-08)
    p = p * y2 + F(1.48572235717979e-05)
    p = p * y2 + F(6.37261928875436e-04)
    p = p * y2 + F(4.89352455891786e-03)
    q = y2 * F(1.19825839466702e-06) + F(1.18534705686654e-04)
    q = q * y2 + F(2.26843463243900e-03)
    q = q * y2 + F(4.89352518554385e-03)
    return y * p / q


@{jit}
def sigmoid_(x):
    return F(0.5) + F(0.5) * tanh_(F(0.5) * x)
''',
    "float64": '''
@{jit}
def tanh_(x):
    e = exp(F(-2.0) * abs(x))
    y = (F(1.0) - e) / (F(1.0) + e)
    return y if x >= F(0.0) else -y


@{jit}
def sigmoid_(x):
    e = exp(-abs(x))
    return F(1.0) / (F(1.0) + e) if x >= F(0.0) else e / (F(1.0) + e)
''',
}
SOFTPLUS = '''

@{jit}
def softplus_(x):
    return (x if x > F(0.0) else F(0.0)) + log1p(exp(-abs(x)))
'''


# Python's math functions that Numba compiles for float32 (atanf, erff, ...: no float64) and
# float64, on CPU and CUDA alike, so templates may call them: asin, acos, atan, atan2, erf, gelu.
MATH = "\nfrom math import acos, asin, atan, atan2, erf, erfc  # noqa: E402\n"


def helpers(dtype: str, jit: str) -> str:
    """The helper functions for `dtype`, decorated with `jit` (and the math functions the
    templates call besides the prelude's: `MATH`)."""
    return MATH + (HELPERS[dtype] + SOFTPLUS).format(jit=jit)


def lit(value: float) -> str:
    """A typed literal: `F(0.5)`, `F(np.inf)`; `F((1 / d_batch))` for a value computed from named
    sizes while code is written (see core/sizes.py)."""
    if isinstance(value, (Size, SizeRatio)) and f"{value}" != repr(value):
        return f"F({value})"
    value = float(value)
    if math.isnan(value):
        return "F(np.nan)"
    if math.isinf(value):
        return "F(np.inf)" if value > 0 else "F(-np.inf)"
    return f"F({value!r})"


def index(strides, loops) -> str:
    """`i0 * 12 + i1` for the given strides and loop variables (0-stride axes drop out)."""
    terms = [v if s == 1 else f"{v} * {s}" for s, v in zip(strides, loops) if s != 0]
    return " + ".join(terms) or "0"


def load(name: str, a: Access, loops) -> str:
    """The element of `a` at the given loop indices (a literal for scalar constants)."""
    if a.literal:
        return lit(a.base.attrs["value"])
    return f"{name}[{index(a.strides, loops)}]"


def expression(node: Node, args: list[str]) -> str:
    """The scalar expression of elementwise `node` applied to operand expressions `args`."""
    attrs = {k: lit(v) for k, v in node.attrs.items() if isinstance(v, (int, float))}
    return scalar_code[node.op].format(*args, z=lit(0.0), one=lit(1.0), **attrs)
