"""Decision regions of a 2-D classifier: which class a model gives every point of the plane,
drawn under the data (the slides' "non-linear regions", convnetjs's classify2d demo).

    regions = DecisionRegions(trainer.model, trainer.dataset)
    regions.draw(result.params, "moons.png", title="mlp on moons")

The grid covers the data in its raw units; each grid point goes through the data set's
normalizer and one forward pass of the model (the evaluation graph, run by the NumPy
interpreter), and gets the class with the largest logit (logit > 0 for one logit).
`FrameWriter` draws one such picture per epoch and an HTML page to step through them (the
stepper page of `gradviz.render.html`).
"""
from __future__ import annotations

import html
import io
import os
from typing import Mapping

import numpy as np

from gradviz.errors import GradvizError

RESOLUTION = 150     # grid points per axis
MARGIN = 0.15        # of the data's extent, on each side
_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]


def check_plane(dataset) -> None:
    """Raise unless `dataset` is a classification set of 2-D points (moons, spiral, xor...)."""
    if dataset.task != "classification" or dataset.input_shape != (2,):
        raise GradvizError(f"decision regions need a classification data set of 2-D points "
                           f"(and, or, xor, moons, spiral, circles, or a 2-feature CSV); "
                           f"{dataset.name} has inputs of shape {dataset.input_shape} "
                           f"({dataset.task})")


class DecisionRegions:
    """The class a model predicts over a grid covering the data set's points."""

    def __init__(self, model, dataset, resolution: int = RESOLUTION):
        from gradviz.nn.step import build_eval_step, make_runner

        check_plane(dataset)
        if resolution < 2:
            raise GradvizError(f"the grid needs at least 2 points per axis, got {resolution}")
        self.dataset = dataset
        norm = dataset.normalizer
        self.points = {split: norm.invert(getattr(dataset, f"X_{split}"))
                       for split in ("train", "val", "test")}
        self.labels = {split: np.asarray(getattr(dataset, f"y_{split}"))
                       for split in ("train", "val", "test")}
        everything = np.concatenate([p for p in self.points.values() if len(p)])
        lo, hi = everything.min(axis=0), everything.max(axis=0)
        pad = MARGIN * np.where(hi > lo, hi - lo, 1.0)
        self.xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
        self.ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
        gx, gy = np.meshgrid(self.xs, self.ys)
        params = list(model.parameters())
        dtype = params[0].dtype if params else "float32"
        self.grid = norm.apply(np.column_stack([gx.ravel(), gy.ravel()]), dtype=dtype)
        self.step = build_eval_step(model, len(self.grid), (2,), task="classification",
                                    dtype=dtype)
        self.runner = make_runner(self.step.graph, "numpy")
        self._dummy = np.zeros(self.step.target.shape, dtype=dtype)

    def classes(self, params: Mapping[str, np.ndarray]) -> np.ndarray:
        """The predicted class at every grid point: an int array (len(ys), len(xs))."""
        from gradviz.nn.losses import predicted_classes

        feeds = {self.step.x: self.grid, self.step.target: self._dummy}
        feeds.update({p: params[p.name] for p in self.step.params})
        logits = np.asarray(self.runner(feeds)[-1])
        return predicted_classes(logits).reshape(len(self.ys), len(self.xs))

    def figure(self, params: Mapping[str, np.ndarray], title: str = ""):
        """A matplotlib Figure: the regions, their boundaries, and the points (train as dots,
        test as crosses, colored by their true class)."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.colors import ListedColormap
        from matplotlib.figure import Figure

        k = max(self.dataset.n_classes, 2)
        colors = (_COLORS * (k // len(_COLORS) + 1))[:k]
        grid = self.classes(params)
        fig = Figure(figsize=(5.6, 5.0), layout="constrained")
        ax = fig.subplots()
        levels = np.arange(k + 1) - 0.5
        ax.contourf(self.xs, self.ys, grid, levels=levels, cmap=ListedColormap(colors),
                    alpha=0.25)
        ax.contour(self.xs, self.ys, grid, levels=levels[1:-1], colors="0.25", linewidths=0.8)
        names = self.dataset.class_names or tuple(str(i) for i in range(k))
        for c in range(k):
            for split, marker, size in (("train", "o", 22), ("val", "o", 22), ("test", "X", 40)):
                if split != "train" and _same(self.points[split], self.points["train"]):
                    continue  # the boolean gates have their 4 points in every split
                pts = self.points[split][self.labels[split] == c]
                if len(pts):
                    ax.scatter(pts[:, 0], pts[:, 1], s=size, marker=marker, color=colors[c],
                               edgecolors="black", linewidths=0.5,
                               label=f"class {names[c]}" if split == "train" else None)
        features = self.dataset.feature_names
        ax.set(xlim=(self.xs[0], self.xs[-1]), ylim=(self.ys[0], self.ys[-1]),
               xlabel=features[0], ylabel=features[1])
        if title:
            ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="upper right")
        return fig

    def draw(self, params: Mapping[str, np.ndarray], path: str, title: str = "") -> None:
        """Write the picture to `path` (.png, .svg or .pdf), atomically."""
        fmt = image_format(path)
        buffer = io.BytesIO()
        self.figure(params, title).savefig(buffer, format=fmt, dpi=90)
        _write(path, buffer.getvalue())

    def accuracy(self, params: Mapping[str, np.ndarray], split: str = "train") -> float:
        """Share of a split's points whose grid cell has their class (a check of the picture)."""
        pts, labels = self.points[split], self.labels[split]
        ix = np.clip(np.searchsorted(self.xs, pts[:, 0]), 0, len(self.xs) - 1)
        iy = np.clip(np.searchsorted(self.ys, pts[:, 1]), 0, len(self.ys) - 1)
        return float(np.mean(self.classes(params)[iy, ix] == labels))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))


def image_format(path: str) -> str:
    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    if fmt not in ("png", "svg", "pdf"):
        raise GradvizError(f"decision regions are written as .png, .svg or .pdf, not {path!r}")
    return fmt


def _write(path: str, data: bytes | str) -> None:
    from gradviz.files import write_atomic

    write_atomic(path, data)


class FrameWriter:
    """One picture of the regions per epoch (`DIR/epoch-NNN.png`) and `DIR/index.html`, a page
    that steps through them (buttons and arrow keys)."""

    def __init__(self, regions: DecisionRegions, directory: str, title: str = ""):
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise GradvizError(f"--frames: {directory} exists and is not a directory")
        os.makedirs(directory, exist_ok=True)
        self.regions = regions
        self.directory = directory
        self.title = title
        self.frames: list[tuple[str, str]] = []

    def __call__(self, epoch: int, params: Mapping[str, np.ndarray], note: str = "") -> None:
        """Draw the frame of `epoch` (call it right away: a compiled runner may reuse the
        parameter arrays at the next step)."""
        name = f"epoch-{epoch:03d}.png"
        caption = f"{self.title}, epoch {epoch}" + (f": {note}" if note else "")
        self.regions.draw(params, os.path.join(self.directory, name), caption)
        self.frames.append((name, caption))
        self.write_index()

    def write_index(self) -> None:
        """(Re)write index.html for the frames drawn so far (the diagrams' stepper page)."""
        from gradviz.render.html import stepper_page

        pictures = [f'<img src="{html.escape(name)}" alt="{html.escape(caption)}">'
                    for name, caption in self.frames]
        page = stepper_page(self.title, pictures, [[caption] for _, caption in self.frames])
        _write(os.path.join(self.directory, "index.html"), page)
