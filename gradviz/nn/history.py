"""A training run's record: per-epoch metrics (`EpochRecord`), the `History` of a run as
lists ready to plot, the epoch lines a run prints, and its loss and accuracy curves."""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

from gradviz.errors import GradvizError

@dataclass
class EpochRecord:
    """Metrics of one epoch (1-based `epoch`); accuracies are None for regression."""

    epoch: int
    lr: float
    train_loss: float
    train_accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    seconds: float


_HISTORY_FIELDS = ("epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                   "seconds")


@dataclass
class History:
    """Per-epoch metrics as lists, one entry per epoch (resumed ones included), ready to plot:
    `plt.plot(h.epoch, h.val_loss)`. It is also a sequence of `EpochRecord`s (`h[-1].train_loss`,
    `for record in h`), prints as a table, and `h.plot()` draws loss and accuracy curves.
    `best_epoch` is the epoch with the lowest validation loss (training loss without a
    validation split); `stopped_early` says whether `--patience` ended the run."""

    epoch: list[int] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float | None] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    val_accuracy: list[float | None] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    @classmethod
    def of(cls, records) -> "History":
        history = cls()
        for record in records:
            history.append(record)
        return history

    def append(self, record: EpochRecord) -> None:
        for name in _HISTORY_FIELDS:
            getattr(self, name).append(getattr(record, name))

    def records(self) -> list[EpochRecord]:
        return [self[i] for i in range(len(self))]

    def __len__(self) -> int:
        return len(self.epoch)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        return EpochRecord(**{name: getattr(self, name)[index] for name in _HISTORY_FIELDS})

    def __iter__(self):
        return iter(self.records())

    def __bool__(self) -> bool:
        return len(self) > 0

    def monitored(self) -> list[float]:
        """The loss early stopping watches: validation loss, or training loss without it."""
        return [v if v is not None else t for v, t in zip(self.val_loss, self.train_loss)]

    def table(self) -> str:
        """One line per epoch, as `gradviz train` prints them."""
        epochs = self.epoch[-1] if self.epoch else 0
        return "\n".join(epoch_line(r, epochs) for r in self)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | os.PathLike | None = None, title: str = ""):
        """Loss and accuracy curves: written to `path` (.png, .svg, .pdf) when given, else
        returned as a matplotlib Figure (which a notebook shows)."""
        if path is not None:
            return plot_curves(self, path, title)
        return curves_figure(self, title)

    def _repr_svg_(self) -> str | None:
        """In a notebook: the curves (see gradviz.notebook)."""
        from gradviz.notebook import curves_svg

        return curves_svg(self)


def format_loss(value: float) -> str:
    """A loss: 4 decimals, or 4 significant digits from 10,000 on."""
    from gradviz.core.text import format_number

    return format_number(value, 4, decimals=4, fixed_below=1e4, exact_integers=False)


def epoch_line(record: EpochRecord, epochs: int) -> str:
    """`epoch  3/20  loss 0.1234  acc  96.10%  val loss ...  lr 0.001  0.1 s`."""
    width = len(str(epochs))
    parts = [f"epoch {record.epoch:>{width}}/{epochs}", f"loss {format_loss(record.train_loss)}"]
    if record.train_accuracy is not None:
        parts.append(f"acc {100 * record.train_accuracy:6.2f}%")
    if record.val_loss is not None:
        parts.append(f"val loss {format_loss(record.val_loss)}")
    if record.val_accuracy is not None:
        parts.append(f"val acc {100 * record.val_accuracy:6.2f}%")
    parts.append(f"lr {record.lr:.3g}")
    parts.append(f"{record.seconds:.1f} s")
    return "  ".join(parts)


def epochs_shown(epochs: int) -> int:
    """Print one epoch line in this many (and the first and last): every epoch up to 30, then
    a round step giving at most about 20 lines (100 epochs: every 10th)."""
    if epochs <= 30:
        return 1
    for step in (2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000):
        if epochs / step <= 20:
            return step
    return 10000


def plot_curves(history, path: str | os.PathLike, title: str = "") -> None:
    """Write loss and accuracy curves per epoch (a `History` or a list of `EpochRecord`s) to an
    image (format from the file extension: png, svg, pdf), atomically."""
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    if fmt not in ("png", "svg", "pdf"):
        raise GradvizError(f"--plot writes .png, .svg or .pdf files, not {path!r}")
    import matplotlib

    matplotlib.use("Agg")
    fig = curves_figure(history, title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=100)
    from gradviz.files import write_atomic

    write_atomic(path, buffer.getvalue())


def curves_figure(history, title: str = ""):
    """A matplotlib Figure with loss and accuracy curves per epoch (not shown, not saved)."""
    history = list(history)
    if not history:
        raise GradvizError("no epochs to plot")
    from matplotlib.figure import Figure

    epochs = [r.epoch for r in history]
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [r.train_loss for r in history], "o-", label="train")
    if any(r.val_loss is not None for r in history):
        loss_ax.plot(epochs, [r.val_loss for r in history], "s--", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    loss_ax.legend()
    if any(r.train_accuracy is not None for r in history):
        acc_ax.plot(epochs, [100 * r.train_accuracy for r in history], "o-", label="train")
        if any(r.val_accuracy is not None for r in history):
            acc_ax.plot(epochs, [100 * r.val_accuracy for r in history], "s--",
                        label="validation")
        acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
        acc_ax.legend()
    else:
        acc_ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig
