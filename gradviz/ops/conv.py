"""Network ops: convolution and pooling. (`amax` is in `gradviz.ops.reduce`, `softplus` in
`gradviz.ops.elementwise`, and the composites flatten, softmax, log-softmax, dropout and maxout
in `gradviz.ops.composite`.)

Primitives, and why each is one:

- `conv2d` (NCHW input, OIHW weight, stride, zero padding) with its two adjoints
  `conv2d_transpose` (gradient wrt the input) and `conv2d_weight_grad` (wrt the weight). The
  three are the partial derivatives of one trilinear form B(x, w, g) = <g, conv2d(x, w)>, so the
  VJPs of each are built from the other two and second order works to any depth.
- `max_pool2d` routes its gradient to each window's first maximum with `max_pool2d_grad`
  (a scatter); that scatter's adjoint is `max_pool2d_gather`, and the pair closes under VJP.
- `avg_pool2d` and its adjoint `avg_pool2d_transpose` (linear, each the other's VJP).

Convolution and pooling run as strided views plus one matrix product or a few strided adds, over
the whole batch at once (no Python loop over samples).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from gradviz.errors import GradvizError, ShapeError
from gradviz.core.ir import Node
from gradviz.core.sizes import Size
from gradviz.ops.shape import make
from gradviz.core.rules import builder, primitive


def _int(v) -> int:
    return v if isinstance(v, Size) else int(v)   # named sizes (an image's) stay named


def _pair(value, what: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        value = (value, value)
    try:
        a, b = (_int(v) for v in value)
    except (TypeError, ValueError):
        raise GradvizError(f"{what} must be an int or a pair of ints, got {value!r}") from None
    return a, b


def _out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def _check_4d(op: str, *nodes: Node) -> None:
    for n in nodes:
        if n.ndim != 4:
            raise ShapeError(f"{op} takes 4-D (N, C, H, W) operands, got shape {n.shape}")
    if len({n.dtype for n in nodes}) > 1:
        raise ShapeError(f"{op}: operand dtypes differ: {[n.dtype for n in nodes]}")


# -- conv2d and its adjoints --------------------------------------------------------------------
def _conv_out_hw(h, w, kh, kw, stride, padding):
    oh = _out_size(h, kh, stride[0], padding[0])
    ow = _out_size(w, kw, stride[1], padding[1])
    if oh < 1 or ow < 1:
        raise ShapeError(f"conv2d: a {kh}x{kw} kernel does not fit a {h}x{w} input with "
                         f"padding {padding}")
    return oh, ow


def _conv2d_shape(x: Node, w: Node, *, stride, padding):
    _check_4d("conv2d", x, w)
    n, c, h, wd = x.shape
    o, cw, kh, kw = w.shape
    if c != cw:
        raise ShapeError(f"conv2d: input has {c} channels but the weight {w.shape} expects {cw}")
    return (n, o, *_conv_out_hw(h, wd, kh, kw, stride, padding)), x.dtype


def _conv2d_transpose_shape(g: Node, w: Node, *, stride, padding, in_hw):
    _check_4d("conv2d_transpose", g, w)
    o, c, kh, kw = w.shape
    if g.shape[1] != o or g.shape[2:] != _conv_out_hw(*in_hw, kh, kw, stride, padding):
        raise ShapeError(f"conv2d_transpose: gradient {g.shape} does not match weight {w.shape} "
                         f"on a {in_hw[0]}x{in_hw[1]} input")
    return (g.shape[0], c, *in_hw), g.dtype


def _conv2d_weight_grad_shape(x: Node, g: Node, *, stride, padding, kernel):
    _check_4d("conv2d_weight_grad", x, g)
    n, c, h, wd = x.shape
    if g.shape[0] != n or g.shape[2:] != _conv_out_hw(h, wd, *kernel, stride, padding):
        raise ShapeError(f"conv2d_weight_grad: gradient {g.shape} does not match input {x.shape} "
                         f"and kernel {kernel}")
    return (g.shape[1], c, *kernel), x.dtype


def _pad(x: np.ndarray, padding) -> np.ndarray:
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _windows(xp: np.ndarray, kh, kw, stride, oh, ow) -> np.ndarray:
    """View (N, C, OH, OW, KH, KW) of every kernel-sized window (no copy)."""
    view = sliding_window_view(xp, (kh, kw), axis=(2, 3))
    return view[:, :, ::stride[0], ::stride[1]][:, :, :oh, :ow]


def _im2col(x: np.ndarray, kh, kw, stride, padding, oh, ow) -> np.ndarray:
    """(N, C*KH*KW, OH*OW): per sample, one column per output position holding its window.
    This layout makes the convolution one batched product with no transpose of the output."""
    win = _windows(_pad(x, padding), kh, kw, stride, oh, ow)
    n, c = x.shape[:2]
    return win.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, oh * ow)


def _im2rows(x: np.ndarray, kh, kw, stride, padding, oh, ow) -> np.ndarray:
    """(N*OH*OW, C*KH*KW): one row per output position of every sample, holding its window."""
    win = _windows(_pad(x, padding), kh, kw, stride, oh, ow)
    n, c = x.shape[:2]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)


def _conv2d_impl(node: Node, x, w):
    n, o, oh, ow = node.shape
    kh, kw = w.shape[2:]
    cols = _im2col(x, kh, kw, node.attrs["stride"], node.attrs["padding"], oh, ow)
    return np.matmul(w.reshape(o, -1), cols).reshape(n, o, oh, ow)


def _conv2d_transpose_impl(node: Node, g, w):
    # col2im: each kernel offset (a, b) adds its block of columns back onto a strided slice of
    # the padded input; a loop over the KH*KW offsets, never over the batch.
    n, c, h, wd = node.shape
    o, _, kh, kw = w.shape
    oh, ow = g.shape[2:]
    (sh, sw), (ph, pw) = node.attrs["stride"], node.attrs["padding"]
    cols = np.matmul(w.reshape(o, -1).T, g.reshape(n, o, oh * ow)).reshape(n, c, kh, kw, oh, ow)
    out = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=cols.dtype)
    for a in range(kh):
        for b in range(kw):
            out[:, :, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw] += cols[:, :, a, b]
    return out[:, :, ph:ph + h, pw:pw + wd]


def _conv2d_weight_grad_impl(node: Node, x, g):
    o, c, kh, kw = node.shape
    n, _, oh, ow = g.shape
    args = (kh, kw, node.attrs["stride"], node.attrs["padding"], oh, ow)
    g3 = g.reshape(n, o, oh * ow)
    if oh * ow >= 128:  # large maps: per-sample products, then a sum over the batch
        dw = np.matmul(g3, _im2col(x, *args).transpose(0, 2, 1)).sum(axis=0)
    else:  # small maps: one product over every sample and position
        dw = g3.transpose(1, 0, 2).reshape(o, -1) @ _im2rows(x, *args)
    return dw.reshape(o, c, kh, kw)


# With B(x, w, g) = <g, conv2d(x, w)>: conv2d_transpose(g, w) = dB/dx and
# conv2d_weight_grad(x, g) = dB/dw. Pairing each with an upstream gradient h and differentiating
# B again gives every VJP below from the same three ops.
def _conv2d_vjp(node: Node, g: Node):
    x, w = node.src
    attrs = node.attrs
    return (conv2d_transpose(g, w, x.shape[2:], **attrs),
            conv2d_weight_grad(x, g, w.shape[2:], **attrs))


def _conv2d_transpose_vjp(node: Node, h: Node):
    g, w = node.src
    stride, padding = node.attrs["stride"], node.attrs["padding"]
    return (conv2d(h, w, stride, padding),
            conv2d_weight_grad(h, g, w.shape[2:], stride, padding))


def _conv2d_weight_grad_vjp(node: Node, h: Node):
    x, g = node.src
    stride, padding = node.attrs["stride"], node.attrs["padding"]
    return (conv2d_transpose(g, h, x.shape[2:], stride, padding),
            conv2d(x, h, stride, padding))


primitive("conv2d", shape=_conv2d_shape, impl=_conv2d_impl, vjp=_conv2d_vjp, tensor_only=True,
          style=("conv2d", "layer"))
primitive("conv2d_transpose", shape=_conv2d_transpose_shape, impl=_conv2d_transpose_impl,
          vjp=_conv2d_transpose_vjp, tensor_only=True, style=("conv2d^T", "layer"))
primitive("conv2d_weight_grad", shape=_conv2d_weight_grad_shape, impl=_conv2d_weight_grad_impl,
          vjp=_conv2d_weight_grad_vjp, tensor_only=True, style=("conv2d dW", "layer"))


@builder()
def conv2d(x: Node, w: Node, stride=1, padding=0) -> Node:
    """2-D cross-correlation of `x` (N, C, H, W) with `w` (O, C, KH, KW): shape (N, O, OH, OW)
    where OH = (H + 2*padding - KH) // stride + 1. `stride` and `padding` are ints or pairs;
    padding adds zeros. Add a bias separately (the `Conv2d` layer does)."""
    return make("conv2d", x, w, stride=_pair(stride, "stride"), padding=_pair(padding, "padding"))


def conv2d_transpose(g: Node, w: Node, in_hw, stride=1, padding=0) -> Node:
    """The adjoint of `conv2d` in its input: for an output-shaped `g`, the (N, C, H, W) gradient
    of <g, conv2d(x, w)> wrt x (a transposed convolution); `in_hw` is (H, W)."""
    return make("conv2d_transpose", g, w, stride=_pair(stride, "stride"),
                padding=_pair(padding, "padding"), in_hw=_pair(in_hw, "in_hw"))


def conv2d_weight_grad(x: Node, g: Node, kernel, stride=1, padding=0) -> Node:
    """The adjoint of `conv2d` in its weight: the (O, C, KH, KW) gradient of <g, conv2d(x, w)>
    wrt w, for a weight of kernel size `kernel` = (KH, KW)."""
    return make("conv2d_weight_grad", x, g, stride=_pair(stride, "stride"),
                padding=_pair(padding, "padding"), kernel=_pair(kernel, "kernel"))


# -- pooling ------------------------------------------------------------------------------------
def _pool_out(op: str, x_shape, kernel, stride):
    n, c, h, w = x_shape
    oh, ow = _out_size(h, kernel[0], stride[0], 0), _out_size(w, kernel[1], stride[1], 0)
    if oh < 1 or ow < 1:
        raise ShapeError(f"{op}: a {kernel[0]}x{kernel[1]} window does not fit a {h}x{w} input")
    return n, c, oh, ow


def _pool_shape(op):
    def rule(x: Node, *, kernel, stride):
        _check_4d(op, x)
        return _pool_out(op, x.shape, kernel, stride), x.dtype
    return rule


def _unpool_shape(op, pooled_index):
    """Shape rule of the pooling adjoints: output shaped like the input x (or `in_hw`)."""
    def rule(*src: Node, kernel, stride, in_hw=None):
        _check_4d(op, *src)
        pooled = src[pooled_index]
        if in_hw is None:
            x_shape = src[0].shape
        else:
            x_shape = (*pooled.shape[:2], *in_hw)
        if _pool_out(op, x_shape, kernel, stride) != pooled.shape:
            raise ShapeError(f"{op}: pooled shape {pooled.shape} does not match input {x_shape}")
        return x_shape, pooled.dtype
    return rule


def _offsets(x: np.ndarray, kernel, stride, oh, ow):
    """(a*kw + b, view) for each kernel offset (a, b): the (N, C, OH, OW) strided view of the
    entries at that offset of every window. Pooling loops over the KH*KW offsets (vectorized
    over the batch), which is several times faster than reducing a window view."""
    (kh, kw), (sh, sw) = kernel, stride
    for a in range(kh):
        for b in range(kw):
            yield a * kw + b, x[:, :, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw]


def _max_and_where(x: np.ndarray, kernel, stride):
    """Each window's maximum, and the flat index into `x` of its first maximum."""
    n, c, h, w = x.shape
    kw = kernel[1]
    oh, ow = _out_size(h, kernel[0], stride[0], 0), _out_size(w, kw, stride[1], 0)
    best, arg = None, None
    for k, view in _offsets(x, kernel, stride, oh, ow):
        if best is None:
            best, arg = view.copy(), np.zeros(view.shape, dtype=np.intp)
            continue
        better = view > best  # strict: a tie keeps the first maximum
        np.copyto(best, view, where=better)
        arg[better] = k
    rows = np.arange(oh)[:, None] * stride[0] + arg // kw
    cols = np.arange(ow)[None, :] * stride[1] + arg % kw
    planes = np.arange(n * c).reshape(n, c, 1, 1)
    return best, (planes * h + rows) * w + cols


def _max_pool2d_impl(node: Node, x):
    _, _, oh, ow = node.shape
    out = None
    for _, view in _offsets(x, node.attrs["kernel"], node.attrs["stride"], oh, ow):
        out = view.copy() if out is None else np.maximum(out, view, out=out)
    return out


def _max_pool2d_grad_impl(node: Node, x, g):
    where = _max_and_where(x, node.attrs["kernel"], node.attrs["stride"])[1]
    # bincount sums the contributions of overlapping windows that share a maximum
    flat = np.bincount(where.ravel(), weights=np.ravel(g), minlength=x.size)
    return flat.reshape(x.shape)


def _max_pool2d_gather_impl(node: Node, x, h):
    where = _max_and_where(x, node.attrs["kernel"], node.attrs["stride"])[1]
    return np.ravel(h)[where]


def _pool_ties(node: Node, x, *_):
    kernel, stride = node.attrs["kernel"], node.attrs["stride"]
    _, _, oh, ow = _pool_out(node.op, x.shape, kernel, stride)
    win = _windows(np.asarray(x), *kernel, stride, oh, ow)
    top = win.max(axis=(4, 5), keepdims=True)
    return bool(np.any(np.sum(win == top, axis=(4, 5)) > 1))


def _gather_shape(x: Node, h: Node, *, kernel, stride):
    _check_4d("max_pool2d_gather", x, h)
    if h.shape != x.shape:
        raise ShapeError(f"max_pool2d_gather: {h.shape} is not shaped like the input {x.shape}")
    return _pool_out("max_pool2d_gather", x.shape, kernel, stride), x.dtype


def _pool_attrs(node: Node) -> dict:
    return {"kernel": node.attrs["kernel"], "stride": node.attrs["stride"]}


# The positions of the maxima are locally constant in x, so the scatter and the gather have no
# gradient wrt x (None); in their other operand they are linear and adjoint to each other.
primitive("max_pool2d", shape=_pool_shape("max_pool2d"), impl=_max_pool2d_impl,
          vjp=lambda n, g: (make("max_pool2d_grad", n.src[0], g, **_pool_attrs(n)),),
          kink=_pool_ties, tensor_only=True, style=("max pool", "layer"))
primitive("max_pool2d_grad", shape=_unpool_shape("max_pool2d_grad", 1),
          impl=_max_pool2d_grad_impl,
          vjp=lambda n, h: (None, make("max_pool2d_gather", n.src[0], h, **_pool_attrs(n))),
          kink=_pool_ties, tensor_only=True, style=("max pool^T", "layer"))
primitive("max_pool2d_gather", shape=_gather_shape, impl=_max_pool2d_gather_impl,
          vjp=lambda n, k: (None, make("max_pool2d_grad", n.src[0], k, **_pool_attrs(n))),
          kink=_pool_ties, tensor_only=True, style=("max pool gather", "layer"))


def _avg_pool2d_impl(node: Node, x):
    kernel = node.attrs["kernel"]
    _, _, oh, ow = node.shape
    out = None
    for _, view in _offsets(x, kernel, node.attrs["stride"], oh, ow):
        out = view.copy() if out is None else np.add(out, view, out=out)
    return out * (1.0 / (kernel[0] * kernel[1]))


def _avg_pool2d_transpose_impl(node: Node, g):
    kernel = node.attrs["kernel"]
    _, _, oh, ow = g.shape
    out = np.zeros(node.shape, dtype=g.dtype)
    share = g * (1.0 / (kernel[0] * kernel[1]))
    for _, view in _offsets(out, kernel, node.attrs["stride"], oh, ow):
        view += share
    return out


primitive("avg_pool2d", shape=_pool_shape("avg_pool2d"), impl=_avg_pool2d_impl,
          vjp=lambda n, g: (make("avg_pool2d_transpose", g, in_hw=n.src[0].shape[2:],
                                 **_pool_attrs(n)),),
          tensor_only=True, style=("avg pool", "layer"))
primitive("avg_pool2d_transpose", shape=_unpool_shape("avg_pool2d_transpose", 0),
          impl=_avg_pool2d_transpose_impl,
          vjp=lambda n, h: (make("avg_pool2d", h, **_pool_attrs(n)),),
          tensor_only=True, style=("avg pool^T", "layer"))


def _pool_args(kernel, stride):
    kernel = _pair(kernel, "kernel")
    stride = kernel if stride is None else _pair(stride, "stride")
    if min(kernel) < 1 or min(stride) < 1:
        raise GradvizError(f"pooling kernel and stride must be positive, got {kernel}, {stride}")
    return {"kernel": kernel, "stride": stride}


@builder()
def max_pool2d(x: Node, kernel=2, stride=None) -> Node:
    """Max over each `kernel` window of `x` (N, C, H, W), windows `stride` apart (default: the
    kernel, so windows do not overlap). The gradient goes to each window's first maximum."""
    return make("max_pool2d", x, **_pool_args(kernel, stride))


@builder()
def avg_pool2d(x: Node, kernel=2, stride=None) -> Node:
    """Mean over each `kernel` window of `x` (N, C, H, W), windows `stride` apart (default: the
    kernel). LeNet-5's subsampling layers S2 and S4."""
    return make("avg_pool2d", x, **_pool_args(kernel, stride))


def max_pool2d_grad(x: Node, g: Node, kernel=2, stride=None) -> Node:
    """`g` (pooled shape) scattered onto the first maximum of each window of `x`: the VJP of
    `max_pool2d(x)` in x."""
    return make("max_pool2d_grad", x, g, **_pool_args(kernel, stride))


def max_pool2d_gather(x: Node, h: Node, kernel=2, stride=None) -> Node:
    """`h` (shaped like x) read at the first maximum of each window of `x`: the adjoint of
    `max_pool2d_grad` in its gradient operand."""
    return make("max_pool2d_gather", x, h, **_pool_args(kernel, stride))


def avg_pool2d_transpose(g: Node, in_hw, kernel=2, stride=None) -> Node:
    """`g` (pooled shape) spread evenly back over each window of an `in_hw` input: the VJP of
    `avg_pool2d`."""
    return make("avg_pool2d_transpose", g, in_hw=_pair(in_hw, "in_hw"),
                **_pool_args(kernel, stride))


__all__ = ["avg_pool2d", "avg_pool2d_transpose", "conv2d", "conv2d_transpose",
           "conv2d_weight_grad", "max_pool2d", "max_pool2d_gather", "max_pool2d_grad"]
