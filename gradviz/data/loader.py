"""`load_dataset`: one entry point from a data set spec string to a split, normalized `Dataset`.

Specs (what ``gradviz train --data`` takes)::

    and | or | xor                      the boolean gates (all 4 points in every split)
    spiral | moons | circles           seeded 2-D sets; options after a colon, e.g.
                                       spiral:classes=5,n=500,noise=0.3   moons:noise=0.2
    digits                             scikit-learn's 8x8 digits (shipped inside its wheel)
    mnist | fashion-mnist              the files `gradviz data fetch NAME` downloaded and verified
    mnist:DIR | fashion-mnist:DIR      IDX files the user has in DIR (.gz accepted)
    cifar10                            the archive `gradviz data fetch cifar10` downloaded
    cifar10:DIR                        DIR holding cifar-10-python.tar.gz or the extracted
                                       cifar-10-batches-py (or the .tar.gz file itself)
    PATH.csv (or .csv.gz, or any existing file)   with target="COLUMN"

Loading never downloads anything: `gradviz.data.fetch` does, when asked.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gradviz.errors import GradvizError

from .csvdata import read_csv
from .dataset import (CLASSIFICATION, LAYOUTS, REGRESSION, Dataset, Normalizer, check_fractions,
                      random_split)
from .cifar import CLASSES as CIFAR10_CLASSES
from .cifar import IMAGE_SHAPE as CIFAR10_SHAPE
from .cifar import load_cifar10
from .idx import FASHION_CLASSES, load_mnist_dir
from .synthetic import (BOOLEAN_TARGETS, boolean_gate, make_circles, make_heights, make_moons,
                        make_spiral)

#: Data set specs and one-line descriptions, in the order the CLI lists them.
DATASETS: dict[str, str] = {
    "and": "logical AND of two inputs: 4 points, linearly separable",
    "or": "logical OR of two inputs: 4 points, linearly separable",
    "xor": "logical XOR of two inputs: 4 points, not linearly separable (one perceptron fails)",
    "spiral": "K interleaved spiral arms in 2-D (spiral:classes=3,n=300,noise=0.2)",
    "moons": "two interleaving half circles in 2-D (moons:n=200,noise=0.1)",
    "circles": "two concentric circles in 2-D (circles:n=200,noise=0.05,factor=0.5)",
    "digits": "1,797 handwritten 8x8 digits, 10 classes (ships with scikit-learn)",
    "heights": "the slides' 200 people: weight (kg) from height (cm), weight = 4.057 + 0.3769 h",
    "mnist": "MNIST 28x28 digits, fetched by `gradviz data fetch mnist`",
    "fashion-mnist": "Fashion-MNIST 28x28 clothing images, fetched by `gradviz data fetch "
                     "fashion-mnist`",
    "cifar10": "CIFAR-10 32x32 colour images (3 channels), 10 classes, fetched by `gradviz data "
               "fetch cifar10`",
    "mnist:DIR": "MNIST 28x28 digits from the IDX files in DIR (train-/t10k-, .gz accepted)",
    "fashion-mnist:DIR": "Fashion-MNIST 28x28 clothing images from the IDX files in DIR",
    "cifar10:DIR": "CIFAR-10 from DIR: cifar-10-python.tar.gz or the extracted "
                   "cifar-10-batches-py",
    "FILE.csv": "a CSV file with a header row; name the column to predict with --target",
}

# generated set -> (generator, allowed options with their types, defaults)
_GENERATED: dict[str, tuple[Callable, dict[str, type], dict[str, Any]]] = {
    "spiral": (make_spiral, {"n": int, "classes": int, "noise": float},
               {"n": 300, "classes": 3, "noise": 0.2}),
    "moons": (make_moons, {"n": int, "noise": float}, {"n": 200, "noise": 0.1}),
    "circles": (make_circles, {"n": int, "noise": float, "factor": float},
                {"n": 200, "noise": 0.05, "factor": 0.5}),
}

_IDX_SETS = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}

_NORMALIZE = ("auto", "standardize", "scale", "none")


def _known_names() -> str:
    return ", ".join(DATASETS)


def _parse_options(name: str, text: str) -> dict[str, Any]:
    _, types, _ = _GENERATED[name]
    opts: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            if name == "spiral" and part.isdigit():  # spiral:5 means five arms
                key, value = "classes", part
            else:
                raise GradvizError(
                    f"bad option {part!r} for {name} (expected key=value; keys: {', '.join(types)})")
        else:
            key, value = (s.strip() for s in part.split("=", 1))
        if key not in types:
            raise GradvizError(f"unknown option {key!r} for {name} (keys: {', '.join(types)})")
        try:
            opts[key] = types[key](value)
        except ValueError:
            raise GradvizError(
                f"option {key} of {name} must be {'an integer' if types[key] is int else 'a number'}"
                f", got {value!r}") from None
    return opts


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise GradvizError(f"{name} must be an integer >= {minimum}, got {value!r}")


def load_dataset(spec: str | os.PathLike, *, target: str | None = None, seed: int = 0,
                 n: int | None = None, val_fraction: float = 0.1, test_fraction: float = 0.2,
                 noise: float | None = None, task: str | None = None, layout: str = "flat",
                 normalize: str = "auto", dtype: Any = np.float32) -> Dataset:
    """Load, split and normalize the data set named by ``spec`` (see `DATASETS`).

    Parameters
    ----------
    spec: a name (``"xor"``, ``"moons"``, ``"digits"``, ``"mnist"``, ``"cifar10"``...),
        ``"spiral:classes=5"``-style options for generated sets, ``"mnist:DIR"`` /
        ``"fashion-mnist:DIR"`` / ``"cifar10:DIR"``, or a CSV path.
    target: the CSV column to predict (required for CSV files, refused for the others).
    seed: seeds point generation, subsetting and the split (same seed, same data set).
    n: generated sets: number of points; digits, CSV: keep a random subset of at most ``n``
        examples; MNIST: keep at most the first ``n`` examples of each file; CIFAR-10: of the
        training batches and of the test batch. Not for and/or/xor.
    val_fraction, test_fraction: shares of the examples held out. MNIST with its t10k files (and
        CIFAR-10 with its test batch) uses them as the test split and takes only the validation
        split from the training file. The
        boolean gates ignore both: all 4 points are in every split.
    noise: noise level for spiral, moons, circles (overrides their default).
    task: for CSV only, ``"classification"`` or ``"regression"`` (default: guessed from the target).
    layout: ``"flat"`` (examples are feature vectors) or ``"image"`` (``(C, H, W)``, image sets).
    normalize: ``"auto"`` (images scaled to [0, 1], boolean gates untouched, everything else
        standardized), ``"standardize"`` (per-feature mean/std of the train split), ``"scale"``
        (images only) or ``"none"``. The statistics always come from the train split only and are
        kept in ``Dataset.normalizer``.
    dtype: float dtype of the X arrays (float32 by default, float64 for gradient checks).

    Every bad input raises `GradvizError` with a one-line message.
    """
    spec, dtype = _check_arguments(spec, seed, n, val_fraction, test_fraction, layout, normalize,
                                   dtype, noise)
    kind, arg = _classify(spec, spec.lower())
    _check_applies(kind, spec, target, task, noise)
    split_rng = np.random.default_rng([seed, 0x5EED])
    opts = dict(spec=spec, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction,
                layout=layout, normalize=normalize, dtype=dtype)
    if kind == "boolean":
        return _load_boolean(arg, n, opts)
    if kind == "generated":
        return _load_generated(*arg, n, noise, seed, split_rng, opts)
    if kind == "heights":
        return _load_heights(n, seed, split_rng, opts)
    if kind == "digits":
        X, y = _load_digits()
        return _split_images("digits", X, y, (1, 8, 8), 16.0, tuple(str(i) for i in range(10)),
                             n, split_rng, DATASETS["digits"], {}, **opts)
    if kind == "idx":
        return _load_idx(*arg, n, split_rng, opts)
    if kind == "cifar10":
        return _load_cifar10(arg, n, split_rng, opts)
    return _load_csv(arg, target, task, n, split_rng, opts)


def _check_arguments(spec, seed, n, val_fraction, test_fraction, layout, normalize, dtype,
                     noise) -> tuple[str, np.dtype]:
    """Refuse bad arguments (one-line `GradvizError`s); return the stripped spec and the dtype."""
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise GradvizError(f"data set spec must be a non-empty string, got {spec!r}")
    _check_int("seed", seed, 0)
    if n is not None:
        _check_int("n", n, 1)
    check_fractions(val_fraction, test_fraction)
    if layout not in LAYOUTS:
        raise GradvizError(f"unknown layout {layout!r} (choose from {', '.join(LAYOUTS)})")
    if normalize not in _NORMALIZE:
        raise GradvizError(f"unknown normalization {normalize!r} (choose from {', '.join(_NORMALIZE)})")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise GradvizError(f"unknown dtype {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise GradvizError(f"dtype must be float32 or float64, got {dtype}")
    if noise is not None and (not isinstance(noise, (int, float)) or not np.isfinite(noise)
                              or noise < 0):
        raise GradvizError(f"noise must be a finite number >= 0, got {noise!r}")
    return spec.strip(), dtype


def _check_applies(kind: str, spec: str, target, task, noise) -> None:
    """Refuse options that do not apply to this kind of data set."""
    if target is not None and kind != "csv":
        raise GradvizError(f"--target applies only to CSV files, not to {spec!r}")
    if task is not None and kind != "csv":
        raise GradvizError(f"task applies only to CSV files, not to {spec!r}")
    if noise is not None and kind != "generated":
        raise GradvizError(f"noise applies only to spiral, moons and circles, not to {spec!r}")


def _load_boolean(name: str, n, opts) -> Dataset:
    """A boolean gate: its 4 points are the train, validation and test splits alike."""
    if n is not None:
        raise GradvizError(f"{name} always has its 4 points; n does not apply")
    X, y = boolean_gate(name)
    return _build(name, X, y, X, y, X, y, task=CLASSIFICATION, n_classes=2,
                  feature_names=("x1", "x2"), class_names=("0", "1"), image_shape=None,
                  default_norm="none", description=DATASETS[name], info={}, **opts)


def _generator_params(name: str, text: str, n, noise) -> dict[str, Any]:
    """A generated set's parameters: its defaults, then the spec's options, then ``n`` and
    ``noise`` (which must agree with the spec where both give one)."""
    _, _, defaults = _GENERATED[name]
    params = dict(defaults)
    given = _parse_options(name, text)
    for key, value in (("n", n), ("noise", noise)):
        if value is not None:
            if key in given and given[key] != value:
                raise GradvizError(
                    f"{key} given twice for {name}: {given[key]} in the spec and {value}")
            given[key] = value
    params.update(given)
    return params


def _load_generated(name: str, text: str, n, noise, seed: int, split_rng, opts) -> Dataset:
    """spiral, moons or circles, generated from ``seed`` and randomly split."""
    gen = _GENERATED[name][0]
    params = _generator_params(name, text, n, noise)
    X, y = gen(seed=seed, **params)
    tr, va, te = random_split(split_rng, len(y), opts["val_fraction"], opts["test_fraction"])
    k = int(params.get("classes", 2))
    return _build(name, X[tr], y[tr], X[va], y[va], X[te], y[te], task=CLASSIFICATION,
                  n_classes=k, feature_names=("x1", "x2"),
                  class_names=tuple(str(i) for i in range(k)), image_shape=None,
                  default_norm="standardize", description=DATASETS[name], info=params, **opts)


def _load_heights(n, seed: int, split_rng, opts) -> Dataset:
    """The slides' heights and weights (regression), generated from ``seed``."""
    X, y = make_heights(200 if n is None else n, seed=seed)
    tr, va, te = random_split(split_rng, len(y), opts["val_fraction"], opts["test_fraction"])
    return _build("heights", X[tr], y[tr], X[va], y[va], X[te], y[te], task=REGRESSION,
                  n_classes=0, feature_names=("height",), class_names=(), image_shape=None,
                  default_norm="standardize", description=DATASETS["heights"], info={},
                  **opts)


def _load_idx(name: str, directory: str, n, split_rng, opts) -> Dataset:
    """MNIST or Fashion-MNIST from the IDX files in ``directory``; the test split is the t10k
    files when present, else drawn from the training file."""
    train_images, train_labels, test = load_mnist_dir(directory, limit=n)
    rows, cols = train_images.shape[1:]
    image_shape = (1, rows, cols)
    classes = FASHION_CLASSES if name == "fashion-mnist" else tuple(str(i) for i in range(10))
    X = train_images.reshape(len(train_images), -1)  # uint8 until normalized
    info = {"directory": str(Path(directory).expanduser())}
    val_fraction, test_fraction = opts["val_fraction"], opts["test_fraction"]
    if test is None:
        tr, va, te = random_split(split_rng, len(train_labels), val_fraction, test_fraction)
        X_test, y_test = X[te], train_labels[te]
        info["test_from"] = "train file"
    else:
        tr, va, _ = random_split(split_rng, len(train_labels), val_fraction, 0.0,
                                 need_test=False)
        X_test = test[0].reshape(len(test[0]), -1)
        y_test = test[1]
        info["test_from"] = "t10k files"
    return _build(name, X[tr], train_labels[tr], X[va], train_labels[va], X_test, y_test,
                  task=CLASSIFICATION, n_classes=10,
                  feature_names=_pixel_names(rows, cols), class_names=classes,
                  image_shape=image_shape, default_norm="scale", scale_max=255.0,
                  description=f"{_IDX_SETS[name]} from {directory}", info=info, **opts)


def _load_cifar10(location: str, n, split_rng, opts) -> Dataset:
    """CIFAR-10 from ``location`` (see `gradviz.data.cifar.load_cifar10`): the validation split
    comes from the training batches, the test split is the test batch."""
    train_x, train_y, test_x, test_y = load_cifar10(location, limit=n)
    X = train_x.reshape(len(train_x), -1)  # uint8 until normalized
    tr, va, _ = random_split(split_rng, len(train_y), opts["val_fraction"], 0.0, need_test=False)
    channels, rows, cols = CIFAR10_SHAPE
    names = tuple(f"{colour}_{r}_{c}" for colour in ("red", "green", "blue")[:channels]
                  for r in range(rows) for c in range(cols))
    info = {"directory": str(Path(location).expanduser()), "test_from": "test batch"}
    return _build("cifar10", X[tr], train_y[tr], X[va], train_y[va],
                  test_x.reshape(len(test_x), -1), test_y, task=CLASSIFICATION, n_classes=10,
                  feature_names=names, class_names=CIFAR10_CLASSES, image_shape=CIFAR10_SHAPE,
                  default_norm="scale", scale_max=255.0, description=f"CIFAR-10 from {location}",
                  info=info, **opts)


def _load_csv(path: str, target, task, n, split_rng, opts) -> Dataset:
    """A CSV file with ``target`` as the column to predict, optionally subset to ``n`` rows."""
    table = read_csv(path, target, task)
    X, y = table.X, table.y
    if n is not None and n < len(y):
        keep = np.sort(split_rng.permutation(len(y))[:n])
        X, y = X[keep], y[keep]
    tr, va, te = random_split(split_rng, len(y), opts["val_fraction"], opts["test_fraction"])
    n_classes = len(table.class_names) if table.task == CLASSIFICATION else 0
    return _build(Path(path).name, X[tr], y[tr], X[va], y[va], X[te], y[te], task=table.task,
                  n_classes=n_classes, feature_names=table.feature_names,
                  class_names=table.class_names, image_shape=None, default_norm="standardize",
                  description=f"CSV file {path}, target column {table.target!r}",
                  info={"path": str(Path(path).expanduser()), "target": table.target}, **opts)


def _classify(spec: str, lower: str):
    """Decide what kind of source ``spec`` names: returns (kind, argument)."""
    if lower.endswith(".csv") or lower.endswith(".csv.gz"):
        return "csv", spec
    name, sep, rest = spec.partition(":")
    key = name.strip().lower()
    if key in _IDX_SETS:
        if not rest.strip():  # the copy `gradviz data fetch` made (or how to make it)
            from .fetch import require_local

            return "idx", (key, str(require_local(key)))
        return "idx", (key, rest.strip())
    if key == "cifar10":
        if not rest.strip():
            from .fetch import require_local

            return "cifar10", str(require_local(key))
        return "cifar10", rest.strip()
    if key in _GENERATED:
        return "generated", (key, rest)
    if not sep:
        if key in BOOLEAN_TARGETS:
            return "boolean", key
        if key in ("digits", "heights"):
            return key, None
    elif key in BOOLEAN_TARGETS or key in ("digits", "heights"):
        raise GradvizError(f"{key} takes no options (got {spec!r})")
    path = Path(spec).expanduser()
    if path.is_file():
        return "csv", spec
    if path.is_dir():
        raise GradvizError(f"{spec} is a directory; for IDX files write mnist:{spec} or "
                           f"fashion-mnist:{spec}, for CIFAR-10 cifar10:{spec}")
    if "/" in spec or os.sep in spec:
        raise GradvizError(f"no such file: {spec}")
    raise GradvizError(f"unknown data set {spec!r} (choose from {_known_names()})")


def _load_digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise GradvizError("the digits data set needs scikit-learn (pip install scikit-learn)") \
            from None
    X, y = load_digits(return_X_y=True)
    return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)


def _pixel_names(rows: int, cols: int) -> tuple[str, ...]:
    return tuple(f"pixel_{r}_{c}" for r in range(rows) for c in range(cols))


def _split_images(name, X, y, image_shape, max_value, class_names, n, split_rng, description,
                  info, **opts) -> Dataset:
    if n is not None and n < len(y):
        keep = np.sort(split_rng.permutation(len(y))[:n])
        X, y = X[keep], y[keep]
    tr, va, te = random_split(split_rng, len(y), opts["val_fraction"], opts["test_fraction"])
    return _build(name, X[tr], y[tr], X[va], y[va], X[te], y[te], task=CLASSIFICATION,
                  n_classes=len(class_names), feature_names=_pixel_names(*image_shape[1:]),
                  class_names=class_names, image_shape=image_shape, default_norm="scale",
                  scale_max=max_value, description=description, info=info, **opts)


def _build(name, X_train, y_train, X_val, y_val, X_test, y_test, *, task, n_classes,
           feature_names, class_names, image_shape, default_norm, description, info, spec, seed,
           val_fraction, test_fraction, layout, normalize, dtype, scale_max=None) -> Dataset:
    mode = default_norm if normalize == "auto" else normalize
    if mode == "scale":
        if scale_max is None:
            raise GradvizError(f"normalize='scale' is for images; {name!r} is not made of images")
        normalizer = Normalizer.scale(scale_max)
    elif mode == "standardize":
        normalizer = Normalizer.standardize(X_train)
    else:
        normalizer = Normalizer.identity()
    if task not in (CLASSIFICATION, REGRESSION):
        raise GradvizError(f"unknown task {task!r}")
    y_dtype = np.int64 if task == CLASSIFICATION else dtype
    ds = Dataset(
        name=name,
        X_train=normalizer.apply(X_train, dtype), y_train=np.array(y_train, dtype=y_dtype),
        X_val=normalizer.apply(X_val, dtype), y_val=np.array(y_val, dtype=y_dtype),
        X_test=normalizer.apply(X_test, dtype), y_test=np.array(y_test, dtype=y_dtype),
        task=task, n_classes=int(n_classes), feature_names=tuple(feature_names),
        class_names=tuple(class_names), normalizer=normalizer, image_shape=image_shape,
        layout="flat", description=description,
        info={"spec": spec, "seed": seed, "val_fraction": val_fraction,
              "test_fraction": test_fraction, **info})
    return ds.with_layout(layout)
