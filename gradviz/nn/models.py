"""Named models for the command line, and models described by a small JSON (or YAML) file.

Every model ends in logits (no softmax): the losses take logits. A model with one output
(`perceptron` on two classes) is a binary classifier whose logit is > 0 for class 1.

A model file lists layers in order; sizes of inputs are inferred, so a layer gives only its own::

    {"input_shape": [1, 28, 28],
     "layers": [{"type": "conv2d", "channels": 3, "kernel": 5},
                {"type": "maxpool2d", "kernel": 2},
                "flatten",
                {"type": "linear", "units": "classes"}]}

`"units": "classes"` stands for the number of classes. Layer types and their keys are in
`LAYER_TYPES`; a bare string is a layer with no keys.
"""
from __future__ import annotations

import json
import os

from gradviz.core.sizes import Size
from gradviz.errors import GradvizError, ShapeError
from gradviz.nn.layers import (ELU, AvgPool2d, Conv2d, Dropout, Flatten, LeakyReLU, Linear,
                               MaxPool2d, Maxout, ReLU, Sequential, Sigmoid, Softmax, Step, Tanh)
from gradviz.nn.module import Module

MODELS: dict[str, str] = {
    "perceptron": "one linear unit: a single logit for 2 classes, one per class otherwise",
    "logreg": "logistic (softmax) regression: one linear layer to the class logits",
    "linear": "linear regression: one linear layer, y = b + w . x (one output per target)",
    "mlp": "fully connected ReLU network, hidden sizes from --hidden (default 256,128)",
    "cnn": "small conv net (conv 3x3, ReLU, conv 3x3, ReLU, max-pool 2, dense --hidden 64), "
           "fits 8x8 digits",
    "lenet": "LeNet-5: C1 6@5x5, S2 avg-pool, C3 16@5x5, S4 avg-pool, F5 120, F6 84, tanh",
    "alexnet": "AlexNet (2012), one-GPU form: 5 conv (96@11x11/4 ... 256@3x3), 3 max-pools 3/2, "
               "FC 4096-4096-classes with dropout; 3x224x224 inputs; no local response norm",
}

DEFAULT_INPUT_SHAPE = (1, 28, 28)
#: Model files larger than this are refused unread (a description of layers is a few KB).
MAX_MODEL_FILE_BYTES = 1 << 20
_DEFAULT_SHAPES = {"alexnet": (3, 224, 224)}
_DEFAULT_HIDDEN = {"mlp": (256, 128), "cnn": (64,)}

# layer type -> (allowed keys, required keys)
LAYER_TYPES: dict[str, tuple[frozenset, frozenset]] = {
    "linear": (frozenset({"units", "bias", "init"}), frozenset({"units"})),
    "conv2d": (frozenset({"channels", "kernel", "stride", "padding", "bias", "init"}),
               frozenset({"channels", "kernel"})),
    "maxpool2d": (frozenset({"kernel", "stride"}), frozenset()),
    "avgpool2d": (frozenset({"kernel", "stride"}), frozenset()),
    "flatten": (frozenset(), frozenset()),
    "dropout": (frozenset({"rate"}), frozenset()),
    "sigmoid": (frozenset(), frozenset()),
    "tanh": (frozenset(), frozenset()),
    "relu": (frozenset(), frozenset()),
    "leaky_relu": (frozenset({"slope"}), frozenset()),
    "elu": (frozenset({"alpha"}), frozenset()),
    "softmax": (frozenset(), frozenset()),
    "maxout": (frozenset({"pieces"}), frozenset()),
    "step": (frozenset(), frozenset()),
}


def build_model(name: str, input_shape=None, n_classes: int = 10, hidden=None,
                dtype: str = "float32") -> Sequential:
    """The model called `name` (a key of `MODELS`, the path of a .json/.yaml model file, or of an
    .onnx file: see `gradviz.interop.onnx_import.load_onnx_model`) for
    inputs of `input_shape` (without the batch axis; default (1, 28, 28), or the file's) and
    `n_classes` classes (the output width; 1 gives one output, for regression or a binary
    logit). `hidden` sets the hidden sizes of `mlp` and `cnn`."""
    if name.lower().endswith(".onnx"):  # trained weights and all: gradviz.interop
        from gradviz.interop.onnx_import import load_onnx_model

        return load_onnx_model(name, input_shape, n_classes, dtype=dtype)
    if _is_model_file(name):
        spec = load_model_file(name)
        return model_from_spec(spec, input_shape, n_classes, dtype)
    if name not in MODELS:
        raise GradvizError(f"unknown model {name!r} (known: {', '.join(MODELS)}, or a .json or "
                           ".yaml model file)")
    if n_classes < 1:
        raise GradvizError(f"a model needs at least one output, got {n_classes} classes")
    if hidden is not None and name not in _DEFAULT_HIDDEN:
        raise GradvizError(f"--hidden applies to mlp and cnn, not {name}")
    hidden = _hidden(hidden if hidden is not None else _DEFAULT_HIDDEN.get(name, ()))
    shape = tuple(int(d) for d in (input_shape or _DEFAULT_SHAPES.get(name, DEFAULT_INPUT_SHAPE)))
    if not shape or min(shape) < 1:
        raise GradvizError(f"input shape must be positive sizes, got {shape}")
    labels: dict[int, str] = {}
    if name == "lenet":
        layers, labels = _lenet(shape, n_classes, dtype)
    elif name == "alexnet":
        layers, labels = _alexnet(shape, n_classes, dtype)
    elif name == "cnn":
        layers = _cnn(shape, n_classes, hidden, dtype)
    else:
        features = 1
        for d in shape:
            features *= d
        sizes = [features]
        if name == "mlp":
            sizes += hidden
        sizes.append(1 if name == "perceptron" and n_classes == 2 else n_classes)
        sizes = named_widths(sizes)
        layers = [Flatten()]
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            layers.append(Linear(a, b, dtype=dtype))
            if i < len(sizes) - 2:
                layers.append(ReLU())
    model = Sequential(layers, input_shape=shape, labels=labels, description=MODELS[name])
    _check_fits(model, name, shape)
    return model


def named_widths(sizes) -> list[Size]:
    """Layer widths as named sizes (`width0`, `width1`, ...: see core/sizes.py), so compiled
    steps of the same layers with other widths share their kernels."""
    return [Size.named(f"width{i}", s) for i, s in enumerate(sizes)]


def _hidden(sizes) -> tuple[int, ...]:
    if isinstance(sizes, str):
        sizes = [s for s in sizes.replace(" ", "").split(",") if s]
    try:
        out = tuple(int(s) for s in sizes)
    except (TypeError, ValueError):
        raise GradvizError(f"hidden sizes must be integers, got {sizes!r}") from None
    if any(s < 1 for s in out):
        raise GradvizError(f"hidden sizes must be positive, got {out}")
    return out


def _check_fits(model: Module, name: str, shape) -> None:
    try:
        model.output_shape(shape)
    except ShapeError as exc:
        raise GradvizError(f"{name} does not fit input shape {'x'.join(map(str, shape))}: "
                           f"{exc}") from None


def _cnn(shape, n_classes, hidden, dtype) -> list[Module]:
    if len(shape) != 3:
        raise GradvizError(f"cnn needs a (channels, height, width) input shape, got {shape}")
    c, h, w = shape
    layers: list[Module] = []
    # one pooling, after the second conv: 8x8 digits keep 4x4 maps (two poolings left 2x2 and
    # missed 98% on some seeds; docs/training.md)
    for out in (16, 32):
        layers += [Conv2d(c, out, 3, padding=1, dtype=dtype), ReLU()]
        c = out
    layers.append(MaxPool2d(2))
    h, w = h // 2, w // 2
    if h < 1 or w < 1:
        raise GradvizError(f"cnn needs inputs of at least 2x2, got {shape[1]}x{shape[2]}")
    layers.append(Flatten())
    sizes = [c * h * w, *named_widths([*hidden, n_classes])]
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(Linear(a, b, dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(ReLU())
    return layers


def _alexnet(shape, n_classes, dtype):
    """Krizhevsky, Sutskever & Hinton (2012) with the two GPUs' halves joined (no grouped
    convolutions): 62,378,344 parameters for 1000 classes. Local response normalization is left
    out (later work found it adds little)."""
    if len(shape) != 3:
        raise GradvizError(f"alexnet needs a (channels, height, width) input shape, got {shape}")
    c, h, w = shape
    sizes = []
    for d in (h, w):
        d = (d + 4 - 11) // 4 + 1          # conv1 11x11, stride 4, pad 2: 224 -> 55
        for _ in range(3):                 # max-pools 3/2 (conv2-5 keep the size): 27, 13, 6
            d = (d - 3) // 2 + 1
        sizes.append(d)
    if min(sizes) < 1:
        raise GradvizError(f"alexnet needs inputs of at least 63x63, got {h}x{w}")
    layers = [Conv2d(c, 96, 11, stride=4, padding=2, dtype=dtype), ReLU(), MaxPool2d(3, 2),
              Conv2d(96, 256, 5, padding=2, dtype=dtype), ReLU(), MaxPool2d(3, 2),
              Conv2d(256, 384, 3, padding=1, dtype=dtype), ReLU(),
              Conv2d(384, 384, 3, padding=1, dtype=dtype), ReLU(),
              Conv2d(384, 256, 3, padding=1, dtype=dtype), ReLU(), MaxPool2d(3, 2),
              Flatten(), Dropout(0.5), Linear(256 * sizes[0] * sizes[1], 4096, dtype=dtype), ReLU(),
              Dropout(0.5), Linear(4096, 4096, dtype=dtype), ReLU(),
              Linear(4096, n_classes, dtype=dtype)]
    labels = {0: "conv1", 3: "conv2", 6: "conv3", 8: "conv4", 10: "conv5", 15: "fc6", 18: "fc7",
              20: "fc8"}
    return layers, labels


def _lenet(shape, n_classes, dtype):
    if len(shape) != 3:
        raise GradvizError(f"lenet needs a (channels, height, width) input shape, got {shape}")
    c, h, w = shape
    if h < 28 or w < 28:
        raise GradvizError(f"lenet needs inputs of at least 28x28, got {h}x{w}")
    # the slides' LeNet-5 takes 32x32; MNIST's 28x28 is zero-padded by 2 to the same maps
    pad = 2 if (h, w) == (28, 28) else 0
    h, w = h + 2 * pad - 4, w + 2 * pad - 4          # C1
    h, w = (h // 2 - 4) // 2, (w // 2 - 4) // 2      # S2, C3, S4
    layers = [Conv2d(c, 6, 5, padding=pad, dtype=dtype), Tanh(), AvgPool2d(2),
              Conv2d(6, 16, 5, dtype=dtype), Tanh(), AvgPool2d(2), Flatten(),
              Linear(16 * h * w, 120, dtype=dtype), Tanh(),
              Linear(120, 84, dtype=dtype), Tanh(),
              Linear(84, n_classes, dtype=dtype)]
    labels = {0: "C1", 2: "S2", 3: "C3", 5: "S4", 7: "F5 (C5)", 9: "F6", 11: "output"}
    return layers, labels


# -- model files --------------------------------------------------------------------------------
def _is_model_file(name: str) -> bool:
    return name.lower().endswith((".json", ".yaml", ".yml")) or os.sep in name


def load_model_file(path: str) -> dict:
    """Read a model description from a .json (or, with PyYAML installed, .yaml) file of at
    most `MAX_MODEL_FILE_BYTES`."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_MODEL_FILE_BYTES + 1)
        if len(raw) > MAX_MODEL_FILE_BYTES:
            raise GradvizError(f"{path}: a model file is at most {MAX_MODEL_FILE_BYTES:,} bytes")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise GradvizError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise GradvizError(f"{path}: not a text file (a model file is UTF-8 JSON or YAML)") \
            from None
    try:
        return _parse_model_text(path, text)
    except RecursionError:
        raise GradvizError(f"{path}: nested too deeply to be a model file") from None


def _parse_model_text(path: str, text: str) -> dict:
    if path.lower().endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise GradvizError(f"{path}: reading YAML model files needs PyYAML; install it or "
                               "write the model as JSON") from None
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise GradvizError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    else:
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GradvizError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(spec, dict):
        raise GradvizError(f"{path}: a model file holds an object with a 'layers' list")
    return spec


def model_from_spec(spec: dict, input_shape=None, n_classes: int = 10,
                    dtype: str = "float32") -> Sequential:
    """A `Sequential` from a model description (see the module docstring). `input_shape`
    overrides the description's `input_shape`."""
    unknown = set(spec) - {"name", "input_shape", "layers", "description"}
    if unknown:
        raise GradvizError(f"model file: unknown key(s) {', '.join(sorted(unknown))}")
    layers_spec = spec.get("layers")
    if not isinstance(layers_spec, list) or not layers_spec:
        raise GradvizError("model file: 'layers' must be a non-empty list")
    shape = input_shape if input_shape is not None else spec.get("input_shape")
    if shape is None:
        shape = DEFAULT_INPUT_SHAPE
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise GradvizError(f"model file: input_shape must be a list of sizes, got {shape!r}") \
            from None
    layers: list[Module] = []
    current = shape
    for i, entry in enumerate(layers_spec):
        layer = _layer_from_spec(i, entry, current, n_classes, dtype)
        try:
            current = layer.output_shape(current)
        except ShapeError as exc:
            raise GradvizError(f"model file: layer {i} ({layer.describe()}) does not fit input "
                               f"{'x'.join(map(str, current))}: {exc}") from None
        layers.append(layer)
    return Sequential(layers, input_shape=shape, description=str(spec.get("description", "")))


def _layer_from_spec(i: int, entry, shape, n_classes: int, dtype: str) -> Module:
    if isinstance(entry, str):
        entry = {"type": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise GradvizError(f"model file: layer {i} needs a 'type' (one of "
                           f"{', '.join(LAYER_TYPES)})")
    kind = entry["type"].lower()
    if kind not in LAYER_TYPES:
        raise GradvizError(f"model file: layer {i} has unknown type {entry['type']!r} (known: "
                           f"{', '.join(LAYER_TYPES)})")
    allowed, required = LAYER_TYPES[kind]
    keys = set(entry) - {"type"}
    if keys - allowed:
        raise GradvizError(f"model file: layer {i} ({kind}) does not take "
                           f"{', '.join(sorted(keys - allowed))}")
    if required - keys:
        raise GradvizError(f"model file: layer {i} ({kind}) needs "
                           f"{', '.join(sorted(required - keys))}")
    opts = {k: v for k, v in entry.items() if k != "type"}
    try:
        return _make_layer(kind, opts, shape, n_classes, dtype)
    except (TypeError, ValueError) as exc:
        raise GradvizError(f"model file: layer {i} ({kind}): {exc}") from None
    except GradvizError as exc:
        raise GradvizError(f"model file: layer {i} ({kind}): {exc}") from None


def _make_layer(kind: str, opts: dict, shape, n_classes: int, dtype: str) -> Module:
    if kind == "linear":
        if len(shape) != 1:
            raise GradvizError(f"needs a flat input, got {'x'.join(map(str, shape))} "
                               "(add a flatten layer before it)")
        units = opts.pop("units")
        return Linear(shape[0], n_classes if units == "classes" else units, dtype=dtype, **opts)
    if kind == "conv2d":
        if len(shape) != 3:
            raise GradvizError(f"needs a (channels, height, width) input, got {shape}")
        channels = opts.pop("channels")
        return Conv2d(shape[0], channels, opts.pop("kernel"), dtype=dtype, **opts)
    simple = {"maxpool2d": MaxPool2d, "avgpool2d": AvgPool2d, "flatten": Flatten,
              "dropout": Dropout, "sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU,
              "leaky_relu": LeakyReLU, "elu": ELU, "softmax": Softmax, "maxout": Maxout,
              "step": Step}
    return simple[kind](**opts)
