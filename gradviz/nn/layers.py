"""Layers: Linear, Conv2d, pooling, Flatten, Dropout, activations, and the Sequential container.

Weights start Glorot-uniform (limit sqrt(6 / (fan_in + fan_out)), for tanh/sigmoid/linear
outputs) or He-normal (std sqrt(2 / fan_in), for the ReLU family). With `init="auto"` (the
default) a `Sequential` picks by the first activation after the layer; biases start at zero.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from gradviz.errors import GradvizError, ShapeError
from gradviz.core.ir import Node
from gradviz.core.sizes import Size, image_sizes, names_images
from gradviz.ops import (add, broadcast_to, elu, leaky_relu, matmul, relu, reshape, sigmoid, step,
                         tanh, var)
from gradviz.ops.leaves import _check_dtype
from gradviz.ops.composite import dropout, flatten, maxout, softmax
from gradviz.ops.conv import _pair, avg_pool2d, conv2d, max_pool2d
from gradviz.nn.module import LayerTag, Module, SummaryRow, check_input, tag_nodes

INIT_SCHEMES = ("auto", "glorot", "he")


def _weights(rng: np.random.Generator, scheme: str, shape, fan_in: int, fan_out: int):
    if scheme == "he":
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def _positive(value, what: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise GradvizError(f"{what} must be a positive integer, got {value!r}")
    return value if isinstance(value, Size) else int(value)   # named sizes stay named


class _Weighted(Module):
    """A layer with a weight and an optional bias."""

    def __init__(self, init: str, dtype: str):
        super().__init__()
        if init not in INIT_SCHEMES:
            raise GradvizError(f"init must be one of {', '.join(INIT_SCHEMES)}, got {init!r}")
        self.init_choice = init
        self.auto_scheme = "glorot"  # what "auto" means here; a Sequential sets it
        self.dtype = _check_dtype(dtype)

    @property
    def weight(self) -> Node:
        return self._params["weight"]

    @property
    def bias(self) -> Node | None:
        return self._params.get("bias")

    def _scheme(self) -> str:
        return self.auto_scheme if self.init_choice == "auto" else self.init_choice

    def _fans(self) -> tuple[int, int]:
        raise NotImplementedError

    def _initial_values(self, rng):
        fan_in, fan_out = self._fans()
        values = {"weight": _weights(rng, self._scheme(), self.weight.shape, fan_in, fan_out)}
        if self.bias is not None:
            values["bias"] = np.zeros(self.bias.shape)
        return values


class Linear(_Weighted):
    """y = x @ W + b with W of shape (in_features, out_features); input (N, in_features)."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True,
                 init: str = "auto", dtype: str = "float32"):
        super().__init__(init, dtype)
        self.in_features = _positive(in_features, "in_features")
        self.out_features = _positive(out_features, "out_features")
        self._param("weight", (self.in_features, self.out_features), self.dtype)
        if bias:
            self._param("bias", (self.out_features,), self.dtype)

    def _fans(self):
        return self.in_features, self.out_features

    def _take_input_width(self, features) -> None:
        """Take `features`, a formula of named sizes equal to `in_features` (a Flatten's width
        after convolutions: see `Sequential`), as the input width: the weight is rebuilt with
        it. Only while a container is assembled, before any graph uses the weight."""
        if isinstance(features, Size) and not isinstance(self.in_features, Size) and \
                features == self.in_features:
            self.in_features = features
            self._param("weight", (features, self.out_features), self.dtype)

    def forward(self, x: Node, train: bool) -> Node:
        check_input(self, x, 2, "a flat (N, features) (add a Flatten before it)")
        if x.shape[1] != self.in_features:
            raise ShapeError(f"{self.describe()} got {x.shape[1]} input features")
        y = matmul(x, self.weight)
        return y if self.bias is None else add(y, self.bias)

    def describe(self) -> str:
        return f"Linear({self.in_features} -> {self.out_features})"


class Conv2d(_Weighted):
    """Convolution over (N, C, H, W) inputs with `out_channels` filters of size `kernel`, plus a
    bias per output channel (shared by every position: 26 parameters for one 5x5 map)."""

    def __init__(self, in_channels: int, out_channels: int, kernel, *, stride=1, padding=0,
                 bias: bool = True, init: str = "auto", dtype: str = "float32"):
        super().__init__(init, dtype)
        self.in_channels = _positive(in_channels, "in_channels")
        self.out_channels = _positive(out_channels, "out_channels")
        self.kernel = _pair(kernel, "kernel")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise GradvizError(f"conv2d needs a positive kernel and stride and padding >= 0, got "
                               f"kernel {self.kernel}, stride {self.stride}, padding {self.padding}")
        self._param("weight", (self.out_channels, self.in_channels, *self.kernel), self.dtype)
        if bias:
            self._param("bias", (self.out_channels,), self.dtype)

    def _fans(self):
        area = self.kernel[0] * self.kernel[1]
        return self.in_channels * area, self.out_channels * area

    def forward(self, x: Node, train: bool) -> Node:
        check_input(self, x, 4, "an (N, C, H, W)")
        y = conv2d(x, self.weight, self.stride, self.padding)
        if self.bias is None:
            return y
        return add(y, broadcast_to(reshape(self.bias, (self.out_channels, 1, 1)), y.shape))

    def describe(self) -> str:
        kh, kw = self.kernel
        extra = "".join(f", {name} {v[0] if v[0] == v[1] else v}"
                        for name, v, default in (("stride", self.stride, 1),
                                                 ("pad", self.padding, 0))
                        if v != (default, default))
        return f"Conv2d({self.in_channels} -> {self.out_channels}, {kh}x{kw}{extra})"


class _Pool(Module):
    def __init__(self, kernel=2, stride=None):
        super().__init__()
        self.kernel = _pair(kernel, "kernel")
        self.stride = self.kernel if stride is None else _pair(stride, "stride")
        if min(self.kernel) < 1 or min(self.stride) < 1:
            raise GradvizError(f"pooling needs a positive kernel and stride, got {self.kernel}, "
                               f"{self.stride}")

    def describe(self) -> str:
        kh, kw = self.kernel
        stride = "" if self.stride == self.kernel else f", stride {self.stride[0]}"
        return f"{type(self).__name__}({kh}x{kw}{stride})"


class MaxPool2d(_Pool):
    """Max over each kernel window of an (N, C, H, W) input (windows `stride` apart; default:
    the kernel size)."""

    def forward(self, x: Node, train: bool) -> Node:
        check_input(self, x, 4, "an (N, C, H, W)")
        return max_pool2d(x, self.kernel, self.stride)


class AvgPool2d(_Pool):
    """Mean over each kernel window of an (N, C, H, W) input (LeNet-5's subsampling)."""

    def forward(self, x: Node, train: bool) -> Node:
        check_input(self, x, 4, "an (N, C, H, W)")
        return avg_pool2d(x, self.kernel, self.stride)


class Flatten(Module):
    """(N, C, H, W) or any (N, ...) -> (N, features)."""

    def forward(self, x: Node, train: bool) -> Node:
        return flatten(x)


class Dropout(Module):
    """Inverted dropout with drop probability `rate` while training; the identity otherwise.

    Each training graph reads a 0/1 mask input (a `var` named like `3.mask`, one per input
    shape); `random_inputs(rng, batch)` draws its values, so a step can be replayed exactly.
    """

    def __init__(self, rate: float = 0.5):
        super().__init__()
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise GradvizError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = rate
        self._masks: dict[tuple, Node] = {}

    def _rename(self, prefix: str) -> None:
        super()._rename(prefix)
        self._masks = {shape: var(prefix + "mask", shape, m.dtype)
                       for shape, m in self._masks.items()}

    def mask(self, shape: tuple, dtype: str) -> Node:
        """The mask input for training graphs whose input to this layer has `shape`."""
        shape = tuple(shape)
        found = self._masks.get(shape)
        if found is None or found.dtype != dtype:
            found = var(self._prefix + "mask", shape, dtype)
            self._masks[shape] = found
        return found

    def forward(self, x: Node, train: bool) -> Node:
        if not train or self.rate == 0.0:
            return x
        return dropout(x, self.mask(x.shape, x.dtype), self.rate)

    def _random_values(self, rng, batch):
        return {m: (rng.random(m.shape) >= self.rate).astype(m.dtype)
                for shape, m in self._masks.items() if shape and shape[0] == batch}

    def describe(self) -> str:
        return f"Dropout({self.rate:g})"


class _Activation(Module):
    fn = staticmethod(lambda x: x)

    def forward(self, x: Node, train: bool) -> Node:
        return type(self).fn(x)


class Sigmoid(_Activation):
    """Logistic sigmoid, elementwise."""
    fn = staticmethod(sigmoid)
    init_scheme = "glorot"


class Tanh(_Activation):
    """Hyperbolic tangent, elementwise."""
    fn = staticmethod(tanh)
    init_scheme = "glorot"


class ReLU(_Activation):
    """max(0, x), elementwise."""
    fn = staticmethod(relu)
    init_scheme = "he"


class Step(_Activation):
    """The perceptron's hard limit (1 where x > 0): no gradient, for inference graphs."""
    fn = staticmethod(step)
    init_scheme = "glorot"


class LeakyReLU(Module):
    """x where x > 0, else slope * x (the slides' max(0.1x, x))."""

    init_scheme = "he"

    def __init__(self, slope: float = 0.1):
        super().__init__()
        self.slope = float(slope)

    def forward(self, x: Node, train: bool) -> Node:
        return leaky_relu(x, self.slope)

    def describe(self) -> str:
        return f"LeakyReLU({self.slope:g})"


class ELU(Module):
    """x where x > 0, else alpha * (e**x - 1)."""

    init_scheme = "he"

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: Node, train: bool) -> Node:
        return elu(x, self.alpha)

    def describe(self) -> str:
        return f"ELU({self.alpha:g})"


class Softmax(Module):
    """Softmax over `axis` (class probabilities). Models end in logits instead, because the
    losses take logits; use this layer for inference graphs that should output probabilities."""

    init_scheme = "glorot"

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = int(axis)

    def forward(self, x: Node, train: bool) -> Node:
        return softmax(x, self.axis)


class Maxout(Module):
    """Maxout over groups of `pieces` consecutive features: after a Linear layer with
    units * pieces outputs it gives max(w1.x + b1, ..., wk.x + bk) per unit."""

    init_scheme = "glorot"

    def __init__(self, pieces: int = 2):
        super().__init__()
        self.pieces = _positive(pieces, "pieces")

    def forward(self, x: Node, train: bool) -> Node:
        return maxout(x, self.pieces, axis=1)

    def describe(self) -> str:
        return f"Maxout({self.pieces})"


class Sequential(Module):
    """Layers applied in order; layer i's parameters are named `i.weight`, `i.bias`.

    `input_shape` (without the batch axis) is remembered for `summary()`; `labels` maps a
    layer's index to a note shown in the layer table (LeNet-5's C1, S2, ...); `description` is
    one line about the model.

    With an image `input_shape` (C, H, W) and image sizes named (`core.sizes.named_images`, off
    by default), a Linear layer whose input width follows from H and W
    (after convolutions, pools and a Flatten) gets that width as a formula of the named image
    sizes (`d_h`, `d_w`: core/sizes.py), as the training step's input has them: its weight's
    shape is then the same formula, and one compiled step serves every image size.
    """

    def __init__(self, *layers: Module | Iterable[Module], input_shape=None,
                 labels: Mapping[int, str] | None = None, description: str = ""):
        super().__init__()
        if len(layers) == 1 and not isinstance(layers[0], Module):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            self._child(str(i), layer)
        self.layers: tuple[Module, ...] = tuple(layers)
        self.input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)
        self.labels = dict(labels or {})
        self.description = description
        self._resolve_init()
        self._name_image_widths()

    def _name_image_widths(self) -> None:
        """See the class docstring: a probe with named image sizes runs through the layers,
        and each Linear takes the width it meets as its input width when the numbers agree."""
        if self.input_shape is None or len(self.input_shape) != 3 or not names_images():
            return
        c, h, w = self.input_shape
        x = var("input", (1, c, *image_sizes(h, w)), self._probe_dtype())
        for layer in self.layers:
            if isinstance(layer, Linear) and x.ndim == 2:
                layer._take_input_width(x.shape[1])
            try:
                x = layer(x, train=False)
            except Exception:  # noqa: BLE001 - a model that does not fit its input shape:
                return         # naming is skipped, and building its graph says what is wrong

    def _resolve_init(self) -> None:
        for i, layer in enumerate(self.layers):
            if isinstance(layer, _Weighted) and layer.init_choice == "auto":
                layer.auto_scheme = "glorot"
                for later in self.layers[i + 1:]:
                    if isinstance(later, _Weighted):
                        break
                    if later.init_scheme:
                        layer.auto_scheme = later.init_scheme
                        break

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> Module:
        return self.layers[index]

    def forward(self, x: Node, train: bool) -> Node:
        groups = self.layer_groups()
        for members, tag in groups:
            start = x
            for i in members:
                layer = self.layers[i]
                try:
                    x = layer(x, train=train)
                except ShapeError as exc:
                    raise ShapeError(f"layer {i} ({layer.describe()}): {exc}") from None
            if x is not start:
                tag_nodes(x, start, tag)
        return x

    def layer_groups(self) -> list[tuple[list[int], LayerTag]]:
        """The layers as a picture shows them: each layer with parameters or a name (LeNet-5's
        C1, S2, ...) starts a group, and the unnamed layers without parameters after it
        (activations, Flatten, Dropout) join it (those before the first group join that one).
        Each group comes with its `LayerTag`: the name when the model gives one, else the
        description of its first layer with parameters."""
        starts = [i for i, layer in enumerate(self.layers)
                  if i in self.labels or layer.num_parameters()]
        if not starts:
            starts = [0] if self.layers else []
        elif starts[0] != 0:
            starts[0] = 0
        bounds = starts + [len(self.layers)]
        groups = []
        for order, (a, b) in enumerate(zip(bounds, bounds[1:])):
            members = list(range(a, b))
            named = [i for i in members if i in self.labels]
            main = next((i for i in members if self.layers[i].num_parameters()),
                        named[0] if named else members[0])
            params = sum(self.layers[i].num_parameters() for i in members)
            if named:
                title = self.labels[named[0]]
                detail = " + ".join(self.layers[i].describe() for i in members)
            else:
                title = self.layers[main].describe()
                detail = " + ".join(self.layers[i].describe() for i in members if i != main)
            key = f"{self._prefix}{main}"
            groups.append((members, LayerTag(key, order, title, detail, params)))
        return groups

    def summary(self, input_shape=None) -> list[SummaryRow]:
        """One row per layer for inputs of `input_shape` (default: the model's own)."""
        shape = self._input_shape(input_shape)
        probe = var("input", (1, *shape), self._probe_dtype())
        rows = []
        x = probe
        for i, layer in enumerate(self.layers):
            try:
                x = layer(x, train=False)
            except ShapeError as exc:
                raise ShapeError(f"layer {i} ({layer.describe()}): {exc}") from None
            rows.append(SummaryRow(str(i), layer.describe(), x.shape[1:],
                                   layer.num_parameters(), self.labels.get(i, "")))
        return rows

    def _input_shape(self, input_shape) -> tuple[int, ...]:
        if input_shape is None:
            if self.input_shape is None:
                raise GradvizError("this model does not know its input shape; pass one")
            return self.input_shape
        return tuple(int(d) for d in input_shape)

    def describe(self) -> str:
        return f"Sequential({len(self.layers)} layers)"
