"""The `Dataset` container, feature normalization and seeded train/validation/test splits.

Everything here is plain NumPy. A `Dataset` holds three splits that are already normalized, plus the
`Normalizer` that did it, so a model saved with its normalizer can prepare new raw inputs exactly
the way its training data was prepared.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from gradviz.errors import GradvizError

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)

LAYOUTS = ("flat", "image")


@dataclass(frozen=True)
class Normalizer:
    """An affine map ``x -> (x - mean) / std`` over flattened feature vectors.

    ``kind`` says where the numbers came from: ``"standardize"`` (per-feature mean and standard
    deviation of the training split), ``"scale"`` (images: mean 0, std = the largest raw pixel
    value, so pixels land in [0, 1]) or ``"none"`` (mean 0, std 1). ``mean`` and ``std`` are float64
    arrays of shape ``(n_features,)`` (or shape ``()`` for a single number applied to every feature).
    """

    kind: str
    mean: np.ndarray
    std: np.ndarray

    def apply(self, X: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
        """Normalize raw inputs of shape ``(N, n_features)``; returns a new array of ``dtype``.

        The arithmetic is float64 whatever the input and output types (so raw pixels given as
        uint8 or as floats normalize to the same values), done in blocks of rows to keep the
        memory use near the size of the result.
        """
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise GradvizError(f"cannot normalize non-numeric inputs of dtype {X.dtype}")
        out = np.empty(X.shape, dtype=dtype)
        if X.shape[0] == 0:
            return out
        rows = max(1, (1 << 20) // max(1, X[0].size))
        for i in range(0, X.shape[0], rows):
            out[i:i + rows] = (X[i:i + rows].astype(np.float64) - self.mean) / self.std
        return out

    def invert(self, X: np.ndarray) -> np.ndarray:
        """Undo `apply`: map normalized features back to raw units (float64)."""
        return np.asarray(X, dtype=np.float64) * self.std + self.mean

    def to_dict(self) -> dict:
        """A JSON-serializable description (lists of floats), the inverse of `from_dict`."""
        return {"kind": self.kind, "mean": np.asarray(self.mean).tolist(),
                "std": np.asarray(self.std).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        """Rebuild a normalizer saved with `to_dict` (for example from a checkpoint)."""
        try:
            kind = str(d["kind"])
            mean = np.asarray(d["mean"], dtype=np.float64)
            std = np.asarray(d["std"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise GradvizError(f"bad normalizer description: {exc}") from None
        if mean.shape != std.shape or mean.ndim > 1:
            raise GradvizError("bad normalizer description: mean and std shapes differ")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise GradvizError("bad normalizer description: non-finite mean or non-positive std")
        return cls(kind, mean, std)

    @classmethod
    def identity(cls) -> "Normalizer":
        """The normalizer that leaves features unchanged."""
        return cls("none", np.zeros(()), np.ones(()))

    @classmethod
    def scale(cls, max_value: float) -> "Normalizer":
        """Divide every feature by ``max_value`` (raw pixels 0..max_value become 0..1)."""
        return cls("scale", np.zeros(()), np.asarray(float(max_value)))

    @classmethod
    def standardize(cls, X_train: np.ndarray) -> "Normalizer":
        """Per-feature mean and standard deviation of the training split; a constant feature
        gets std 1 (it becomes 0 everywhere instead of dividing by zero)."""
        X_train = np.asarray(X_train, dtype=np.float64)
        if X_train.shape[0] == 0:
            raise GradvizError("cannot standardize: the training split is empty")
        with np.errstate(all="ignore"):
            mean = X_train.mean(axis=0)
            std = X_train.std(axis=0)
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            bad = int(np.argmax(~(np.isfinite(mean) & np.isfinite(std))))
            raise GradvizError(f"cannot standardize feature {bad + 1}: its values are too large "
                               "(their mean or spread overflows float64)")
        std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        return cls("standardize", mean, std)


@dataclass(frozen=True)
class Dataset:
    """A data set split into train, validation and test parts, ready for training.

    ``X_*`` arrays are normalized, of dtype float32 (or whatever ``dtype`` the loader was given),
    with shape ``(N, *input_shape)``. ``y_*`` arrays hold int64 class indices for classification
    and float targets for regression. ``normalizer`` maps raw flattened features to the values in
    ``X_*`` (see `normalize`). ``image_shape`` is ``(channels, height, width)`` for image data sets
    and ``None`` otherwise; ``layout`` is ``"flat"`` or ``"image"``.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    task: str
    n_classes: int
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    normalizer: Normalizer
    image_shape: tuple[int, ...] | None = None
    layout: str = "flat"
    description: str = ""
    info: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example as stored: ``(n_features,)`` flat, ``(C, H, W)`` as images."""
        return tuple(self.X_train.shape[1:])

    @property
    def n_features(self) -> int:
        """Number of scalar features in one example (the flattened size)."""
        return int(np.prod(self.input_shape, dtype=np.int64))

    @property
    def n_outputs(self) -> int:
        """Width of a model's output layer: ``n_classes`` for classification, 1 for regression."""
        return self.n_classes if self.task == CLASSIFICATION else 1

    @property
    def splits(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{"train": (X, y), "val": (X, y), "test": (X, y)}``."""
        return {"train": (self.X_train, self.y_train), "val": (self.X_val, self.y_val),
                "test": (self.X_test, self.y_test)}

    def with_layout(self, layout: str) -> "Dataset":
        """The same data with examples shaped ``"flat"`` ``(n_features,)`` or ``"image"``
        ``(C, H, W)``; the image layout exists only for image data sets."""
        if layout not in LAYOUTS:
            raise GradvizError(f"unknown layout {layout!r} (choose from {', '.join(LAYOUTS)})")
        if layout == self.layout:
            return self
        if layout == "image" and self.image_shape is None:
            raise GradvizError(f"data set {self.name!r} is not made of images; use the flat layout")
        shape = self.image_shape if layout == "image" else (self.n_features,)
        return replace(
            self, layout=layout,
            X_train=self.X_train.reshape((-1, *shape)), X_val=self.X_val.reshape((-1, *shape)),
            X_test=self.X_test.reshape((-1, *shape)))

    def normalize(self, X_raw: np.ndarray) -> np.ndarray:
        """Prepare new raw inputs like the training data: apply `normalizer` and reshape to this
        data set's layout. Accepts ``(N, n_features)`` or ``(N, *image_shape)`` raw arrays (raw
        means unscaled pixels, unstandardized CSV features)."""
        X_raw = np.asarray(X_raw)
        if X_raw.ndim == 1 and X_raw.size == self.n_features:
            X_raw = X_raw[None, :]
        if X_raw.ndim < 2 or int(np.prod(X_raw.shape[1:], dtype=np.int64)) != self.n_features:
            raise GradvizError(
                f"inputs of shape {X_raw.shape} do not fit data set {self.name!r} "
                f"({self.n_features} features per example)")
        flat = self.normalizer.apply(X_raw.reshape(X_raw.shape[0], -1), dtype=self.X_train.dtype)
        return flat.reshape((-1, *self.input_shape))

    def summary(self) -> str:
        """One line: name, split sizes, input shape, and classes (or regression)."""
        kind = (f"{self.n_classes} classes" if self.task == CLASSIFICATION else "regression")
        return (f"{self.name}: {len(self.y_train)} train / {len(self.y_val)} val / "
                f"{len(self.y_test)} test, input {self.input_shape}, {kind}")

    def __repr__(self) -> str:
        return f"<Dataset {self.summary()}>"


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Raise `GradvizError` unless both fractions are in [0, 1) and leave room for training."""
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not isinstance(f, (int, float)) or not np.isfinite(f) or not 0 <= f < 1:
            raise GradvizError(f"{name} must be a number in [0, 1), got {f!r}")
    if val_fraction + test_fraction >= 1:
        raise GradvizError(
            f"val_fraction + test_fraction must be below 1 (got {val_fraction} + {test_fraction})")


def split_sizes(n: int, val_fraction: float, test_fraction: float,
                need_test: bool = True) -> tuple[int, int, int]:
    """Sizes (train, val, test) for ``n`` examples; a positive fraction gets at least one example
    and the training split keeps at least one."""
    def size(f: float) -> int:
        return 0 if f == 0 else max(1, int(round(f * n)))
    n_test = size(test_fraction) if need_test else 0
    n_val = size(val_fraction)
    n_train = n - n_val - n_test
    if n_train < 1:
        raise GradvizError(
            f"{n} examples are too few to split with val_fraction={val_fraction} and "
            f"test_fraction={test_fraction}")
    return n_train, n_val, n_test


def random_split(rng: np.random.Generator, n: int, val_fraction: float, test_fraction: float,
                 need_test: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays (train, val, test) of a seeded random permutation of ``range(n)``."""
    n_train, n_val, _ = split_sizes(n, val_fraction, test_fraction, need_test)
    order = rng.permutation(n)
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]
