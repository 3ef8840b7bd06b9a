"""Sizes that are numbers now and names in generated code.

A `Size` is an `int` (its value: shape rules, NumPy and the interpreter see a plain number) that
also carries an expression over named sizes, such as `d_batch` or `(d_batch * d_width1)`. Graphs
built with `Size`s in their shapes (the trainer names the batch size, flat input features and
layer widths) compile to code that reads those names as arguments, so one compiled kernel serves
every size of the same structure:

    batch = Size.named("batch", 32)
    x = gv.var("x", (batch, 784))          # x.shape == (32, 784); code(x.shape[0]) == "d_batch"

Arithmetic on a `Size` gives a `Size` (`+ - * // %`, unary `-`; `/` gives a `SizeRatio`), on
plain ints it gives ints, so a size that was computed from other sizes keeps its formula. `str`
and `repr` print the value, so listings and messages are unchanged; `code(...)`, and formatting
inside `as_code()`, print the formula. Adding or subtracting plain ints folds into one offset, so
a 3x3 convolution with padding 1 keeps its input's size: `(d_h + 2) - 3 + 1` is `d_h`. Every
formula but a bare name is parenthesized (a floor division too), so it can stand anywhere in an
expression.

Images: with `named_images()` (or GRADVIZ_NAMED_IMAGES=1), `image_sizes(h, w)` names an input
image's height and width (`d_h`, `d_w`); the shapes of convolutions, pools and flattens computed
from them are formulas (`(((d_h - 2) // 2) + 1)`), so one compiled CNN step serves every image
size (nn/step.py, and `Sequential`, which gives a Linear layer after a Flatten those formulas as
its input width). Off by default: the step ran slower (see `_name_images`).

Generated code stays correct whatever decisions a generator makes on a size's value (drop an axis
of length 1, pick a tile): the text records each decision, so two graphs that give the same text
made the same decisions, and a size whose formula was lost is written as its digits.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Mapping

_writing_code = False   # set by `as_code()`: while true, formatting a size gives its formula


@contextmanager
def as_code():
    """While generating code: `f"{size}"` and `str.format` give formulas, not values."""
    global _writing_code
    before, _writing_code = _writing_code, True
    try:
        yield
    finally:
        _writing_code = before


class Size(int):
    """An int with a formula over named sizes (see the module docstring)."""

    expr: str
    symbols: Mapping[str, int]
    # a formula `base + offset` (offset a nonzero int) remembers both, so that further ints
    # added or subtracted fold into the offset instead of nesting
    _base: "Size | None" = None
    _offset: int = 0

    def __new__(cls, value: int, expr: str, symbols: Mapping[str, int]):
        obj = super().__new__(cls, value)
        obj.expr = expr
        obj.symbols = symbols
        return obj

    @classmethod
    def named(cls, name: str, value: int) -> "Size":
        """A size called `name` in generated code, `value` now."""
        if not name.isidentifier():
            raise ValueError(f"a size name must be an identifier, not {name!r}")
        code_name = f"d_{name}"   # apart from the generated code's own names (a0, i0, t3...)
        return cls(int(value), code_name, {code_name: int(value)})

    def __reduce__(self):   # pickles and copies as the plain number
        return int, (int(self),)

    def __repr__(self) -> str:
        return int.__repr__(self)

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        if _writing_code and not spec:
            return self.expr
        return format(int(self), spec)

    # -- arithmetic keeps the formula -------------------------------------------------------
    def __add__(self, other):
        return _combine(self, other, "+")

    def __radd__(self, other):
        return _combine(other, self, "+")

    def __sub__(self, other):
        return _combine(self, other, "-")

    def __rsub__(self, other):
        return _combine(other, self, "-")

    def __mul__(self, other):
        return _combine(self, other, "*")

    def __rmul__(self, other):
        return _combine(other, self, "*")

    def __floordiv__(self, other):
        return _combine(self, other, "//")

    def __rfloordiv__(self, other):
        return _combine(other, self, "//")

    def __mod__(self, other):
        return _combine(self, other, "%")

    def __rmod__(self, other):
        return _combine(other, self, "%")

    def __neg__(self):
        return Size(-int(self), f"(-{self.expr})", self.symbols)

    # A ratio's formula divides in the code's own float type (`F`): a float64 division in a
    # float32 CUDA kernel would be float64 arithmetic on the GPU.
    def __truediv__(self, other):
        if not isinstance(other, (int, float)) or isinstance(other, bool):
            return NotImplemented
        return SizeRatio(int(self) / other, f"(F({self.expr}) / F({code(other)}))", self.symbols)

    def __rtruediv__(self, other):
        if not isinstance(other, (int, float)) or isinstance(other, bool):
            return NotImplemented
        return SizeRatio(other / int(self), f"(F({code(other)}) / F({self.expr}))", self.symbols)

    def __pos__(self):
        return self

    def __hash__(self) -> int:
        return int.__hash__(self)

    def __eq__(self, other) -> bool:
        return int.__eq__(self, other)

    def __ne__(self, other) -> bool:
        return int.__ne__(self, other)


class SizeRatio(float):
    """A float computed from sizes (`1 / batch` for a mean), with its formula, so a constant
    such as a mean's scale stays a runtime value of generated code."""

    expr: str
    symbols: Mapping[str, int]

    def __new__(cls, value: float, expr: str, symbols: Mapping[str, int]):
        obj = super().__new__(cls, value)
        obj.expr = expr
        obj.symbols = symbols
        return obj

    def __reduce__(self):
        return float, (float(self),)

    def __repr__(self) -> str:
        return float.__repr__(self)

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        if _writing_code and not spec:
            return self.expr
        return format(float(self), spec)

    def __hash__(self) -> int:
        return float.__hash__(self)

    def __eq__(self, other) -> bool:
        return float.__eq__(self, other)

    def __ne__(self, other) -> bool:
        return float.__ne__(self, other)

    def __mul__(self, other):
        if isinstance(other, bool) or not isinstance(other, (int, float)):
            return NotImplemented
        symbols = {**self.symbols, **getattr(other, "symbols", {})}
        return SizeRatio(float(self) * other, f"({self.expr} * F({code(other)}))", symbols)

    __rmul__ = __mul__

    def __neg__(self):
        return SizeRatio(-float(self), f"(-{self.expr})", self.symbols)


def _value(x) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        return NotImplemented
    return int(x)


_ARITHMETIC = {"+": int.__add__, "-": int.__sub__, "*": int.__mul__, "//": int.__floordiv__,
               "%": int.__mod__}


def _combine(a, b, op: str):
    if _value(a) is NotImplemented or _value(b) is NotImplemented:
        return NotImplemented   # a float operand: Python asks the float, which gives a float
    value = _ARITHMETIC[op](int(a), int(b))
    if not isinstance(a, Size) and not isinstance(b, Size):
        return value
    # identities keep formulas short: x * 1, x + 0, x - 0, x // 1
    if op in ("*", "//") and not isinstance(b, Size) and int(b) == 1:
        return a
    if op == "*" and not isinstance(a, Size) and int(a) == 1:
        return b
    if op in ("+", "-") and not isinstance(b, Size) and int(b) == 0:
        return a
    if op == "+" and not isinstance(a, Size) and int(a) == 0:
        return b
    # a size plus or minus an int: one offset (`(d_h + 2) - 3` is `(d_h - 1)`)
    if op in ("+", "-") and not isinstance(b, Size):
        return _shift(a, int(b) if op == "+" else -int(b))
    if op == "+" and not isinstance(a, Size):
        return _shift(b, int(a))
    symbols = {**getattr(a, "symbols", {}), **getattr(b, "symbols", {})}
    return Size(value, f"({code(a)} {op} {code(b)})", symbols)


def _shift(size: Size, k: int) -> Size:
    """`size + k` with the ints added to one size folded into one offset."""
    base, offset = (size._base, size._offset) if size._base is not None else (size, 0)
    offset += k
    if offset == 0:
        return base
    text = f"({base.expr} + {offset})" if offset > 0 else f"({base.expr} - {-offset})"
    out = Size(int(base) + offset, text, base.symbols)
    out._base, out._offset = base, offset
    return out


IMAGE_SIZE_NAMES = ("h", "w")
# Whether image sizes are named (see `image_sizes`); None: GRADVIZ_NAMED_IMAGES=1 in the
# environment says so. Off by default: the compiled LeNet-5 step took about 1.1x as long with
# runtime image sizes (docs/benchmarks.md, "Kernels keyed by structure").
_name_images: bool | None = None


def names_images() -> bool:
    """Whether `image_sizes` names an image's height and width now."""
    if _name_images is not None:
        return _name_images
    return os.environ.get("GRADVIZ_NAMED_IMAGES", "").strip() == "1"


@contextmanager
def named_images(enabled: bool = True):
    """Within the block, `image_sizes` names image sizes (or, with `enabled=False`, does not),
    whatever GRADVIZ_NAMED_IMAGES says. Models and steps built inside keep what they got."""
    global _name_images
    before, _name_images = _name_images, enabled
    try:
        yield
    finally:
        _name_images = before


def image_sizes(height: int, width: int) -> tuple[int, int]:
    """An input image's height and width for the graphs of a model (nn/step.py, `Sequential`):
    the named sizes `d_h` and `d_w` when image sizes are named (`named_images()`, or
    GRADVIZ_NAMED_IMAGES=1), so that one compiled CNN step serves every image size; else
    plain numbers, which the compiled code has as constants. Sizes that are `Size`s already are
    kept. Channel counts, kernels, strides and padding stay numbers: they are the structure of a
    network."""
    if not names_images():
        return tuple(v if isinstance(v, Size) else int(v) for v in (height, width))
    return tuple(v if isinstance(v, Size) else Size.named(name, v)
                 for name, v in zip(IMAGE_SIZE_NAMES, (height, width)))


def code(x) -> str:
    """The text of `x` in generated code: its formula for a `Size` or `SizeRatio`, else its
    digits."""
    if isinstance(x, (Size, SizeRatio)):
        return x.expr
    return repr(x)


def symbols_of(*values) -> dict[str, int]:
    """The named sizes that `values` (sizes, or nested tuples/lists of them) refer to."""
    found: dict[str, int] = {}
    stack = list(values)
    while stack:
        v = stack.pop()
        if isinstance(v, (Size, SizeRatio)):
            found.update(v.symbols)
        elif isinstance(v, (tuple, list)):
            stack.extend(v)
    return found


def graph_sizes(nodes) -> dict[str, int]:
    """The named sizes that `nodes`' shapes and attributes use, sorted by name: the size
    arguments of code generated for them, with their values."""
    nodes = list(nodes)
    found = symbols_of(*(n.shape for n in nodes), *(v for n in nodes for v in n.attrs.values()))
    return dict(sorted(found.items()))


def plain(x):
    """`x` with every `Size` in it (nested tuples and lists too) replaced by its value."""
    if isinstance(x, Size):
        return int(x)
    if isinstance(x, SizeRatio):
        return float(x)
    if isinstance(x, tuple):
        return tuple(plain(v) for v in x)
    if isinstance(x, list):
        return [plain(v) for v in x]
    return x


def broadcast_shapes(*shapes) -> tuple:
    """NumPy's broadcast of `shapes` (raising ValueError as it does), keeping named sizes: each
    output axis is the operands' size there that is not 1, a `Size` when one of them is."""
    import numpy as np

    out = list(np.broadcast_shapes(*(plain(tuple(s)) for s in shapes)))
    ndim = len(out)
    for shape in shapes:
        for axis, d in enumerate(shape, start=ndim - len(shape)):
            if isinstance(d, Size) and int(d) == out[axis] and not isinstance(out[axis], Size):
                out[axis] = d
    return tuple(out)


def size_min(*values):
    """`min(values)`, written `min(...)` when one of them is a named size: for host-side code
    such as a launch geometry (not for kernels: Numba's CUDA target cannot compile `min`)."""
    value = min(int(v) for v in values)
    if not any(isinstance(v, Size) for v in values):
        return value
    return Size(value, f"min({', '.join(code(v) for v in values)})", symbols_of(*values))


def size_max(*values):
    """`max(values)`, written `max(...)` when one of them is a named size (see `size_min`)."""
    value = max(int(v) for v in values)
    if not any(isinstance(v, Size) for v in values):
        return value
    return Size(value, f"max({', '.join(code(v) for v in values)})", symbols_of(*values))
