"""The training loop: epochs of seeded shuffled batches through one step graph, metrics,
checkpoints that resume exactly, and a trained model that predicts.

    from gradviz.nn.training import TrainConfig, Trainer
    result = Trainer(TrainConfig(model="mlp", data="digits", hidden=(64,), epochs=10)).run()
    result.test_accuracy

Randomness comes from the seed alone: parameter initialization from `default_rng([seed, 1])`,
shuffling and dropout masks from one generator `default_rng([seed, 2])` whose state goes into
every checkpoint, so a resumed run draws exactly the numbers the uninterrupted run would have
drawn and ends with bit-identical parameters.

The step graph is built for the batch size; when the training split does not divide evenly, a
second graph is built for the last, smaller batch (every example is used every epoch), compiled
`like` the first, so that it is the same code (`gradviz.compiler.compile`). Only the
training step runs on the chosen device; validation and test metrics (forward passes, once per
epoch) run on the NumPy interpreter, so a compiled run compiles one or two graphs, not one per
split size.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from gradviz.nn import checkpoints as ckpt
# curves_figure and plot_curves are re-exported: `from gradviz.nn.training import plot_curves`
from gradviz.nn.history import (EpochRecord, History, curves_figure, epoch_line,  # noqa: F401
                                epochs_shown, format_loss, plot_curves)
from gradviz.nn.sources import (BUILTIN_DATA, absolute_config, absolute_data, source_records,
                                trusted_source)
from gradviz.errors import GradvizError
from gradviz.compiler import MOST_THREADS, default_threads
from gradviz.nn.optim import LRSchedule, get_optimizer
from gradviz.nn.step import (CLASSIFICATION, EvalStep, RunSize, TrainStep, build_eval_step,
                             build_train_step, choose_device, encode_targets, first_nonfinite,
                             make_runner, resolve_device, step_is_cached)

EVAL_BATCH = 500
#: The most epochs one run may ask for (each leaves a history record in every checkpoint).
MAX_EPOCHS = 100_000
#: The most trainable parameters a model may have, unless $GRADVIZ_MAX_PARAMS says otherwise:
#: AlexNet's 62 million fit; `--hidden 1000000000` is refused before anything is allocated.
MAX_PARAMS = 100_000_000
#: Devices a checkpoint may name.
SAVED_DEVICES = ("numpy", "cpu", "cuda")


def max_params() -> int:
    """The parameter limit in force: $GRADVIZ_MAX_PARAMS, else `MAX_PARAMS`."""
    text = os.environ.get("GRADVIZ_MAX_PARAMS")
    if not text:
        return MAX_PARAMS
    try:
        value = int(text)
    except ValueError:
        raise GradvizError(f"$GRADVIZ_MAX_PARAMS must be a whole number, got {text!r}") from None
    if value < 1:
        raise GradvizError(f"$GRADVIZ_MAX_PARAMS must be positive, got {text!r}")
    return value


def _is_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer,
                                                              np.floating))


# -- defaults that learn -------------------------------------------------------------------------
#: (data sets, models, settings): the defaults of a run, first matching row wins ("*": any
#: built-in model; files and custom models get the last row).
#: Chosen so that each built-in data set is learned with no flags (docs/training.md has the
#: accuracies reached with seeds 0, 1 and 2): the 4-point gates take full batches and enough
#: updates (one per epoch) for plain SGD; the 2-D sets about 500 Adam steps at a rate of 0.01;
#: digits about 1,200 steps at Adam's usual 0.001 (the CNN 800 steps of momentum at 0.03); a
#: larger set (MNIST) a few epochs of its ~900 steps each. Anything else keeps the general
#: defaults. `label_smoothing` (absent: 0) is the mass of the training targets spread evenly
#: over the classes: the MLP and the CNN on digits take 0.2 (see `smooth_targets` and
#: docs/training.md).
DEFAULTS: tuple[tuple[tuple[str, ...], tuple[str, ...], dict], ...] = (
    (("and", "or", "xor"), ("mlp",), dict(optimizer="adam", lr=0.01, batch=4, epochs=100)),
    (("and", "or", "xor"), ("*",), dict(optimizer="sgd", lr=0.5, batch=4, epochs=100)),
    (("moons", "circles", "spiral"), ("*",), dict(optimizer="adam", lr=0.01, batch=32,
                                                  epochs=100)),
    (("digits",), ("cnn",), dict(optimizer="momentum", lr=0.03, batch=32, epochs=20,
                                 label_smoothing=0.2)),
    (("digits",), ("logreg", "perceptron"), dict(optimizer="adam", lr=0.01, batch=32,
                                                  epochs=30)),
    (("digits",), ("*",), dict(optimizer="adam", lr=0.001, batch=32, epochs=30,
                               label_smoothing=0.2)),
    (("heights",), ("*",), dict(optimizer="sgd", lr=0.05, batch=32, epochs=40)),
    (("mnist", "fashion-mnist"), ("*",), dict(optimizer="adam", lr=0.001, batch=64, epochs=10)),
    (("*",), ("*",), dict(optimizer="adam", lr=None, batch=32, epochs=20)),
)


def data_kind(data: str) -> str:
    """The built-in data set a spec names (`spiral:classes=5` -> spiral, `mnist:DIR` -> mnist),
    or "" for a file."""
    key = str(data).partition(":")[0].strip().lower()
    return key if key in BUILTIN_DATA else ""


def default_settings(model: str, data: str) -> dict:
    """The default optimizer, lr (None: the optimizer's own), batch, epochs and label smoothing
    for training `model` on `data`: the first row of `DEFAULTS` that matches. The rows for a
    data set were tuned with the built-in models; a model file or a custom model gets the last
    row."""
    from gradviz.nn.models import MODELS

    kind = data_kind(data) if model in MODELS else ""
    for datasets, models, settings in DEFAULTS:
        if ("*" in datasets or kind in datasets) and ("*" in models or model in models):
            return {"label_smoothing": 0.0, **settings}
    raise AssertionError("DEFAULTS ends with a row for everything")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training run computes (the device does not: every device
    computes the same steps). `lr=None` means the optimizer's default rate. `label_smoothing`
    (classification only) trains on targets 1 - eps + eps/K for the true class and eps/K for the
    others (K classes; `smooth_targets`); None takes the data set's default (`DEFAULTS`)."""

    model: str
    data: str
    target: str | None = None
    hidden: tuple[int, ...] | None = None
    epochs: int | None = None
    batch: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    l2: float = 0.0
    lr_decay: str | None = None
    seed: int = 0
    patience: int | None = None
    label_smoothing: float | None = None

    def __post_init__(self):
        for name in ("model", "data"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise GradvizError(f"--{name} must be a non-empty name, got {value!r}")
        self._fill_defaults()
        if self.patience is not None and (not _is_int(self.patience) or self.patience < 1):
            raise GradvizError(f"--patience must be a positive integer, got {self.patience!r}")
        for name in ("target", "lr_decay"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise GradvizError(f"--{name.replace('_', '-')} must be text, got {value!r}")
        if not isinstance(self.optimizer, str):
            raise GradvizError(f"--optimizer must be a name, got {self.optimizer!r}")
        for name in ("epochs", "batch"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise GradvizError(f"--{name} must be a positive integer, got {value!r}")
        if self.epochs > MAX_EPOCHS:
            raise GradvizError(f"--epochs is at most {MAX_EPOCHS:,}, got {self.epochs:,}")
        if not _is_int(self.seed) or self.seed < 0:
            raise GradvizError(f"--seed must be an integer >= 0, got {self.seed!r}")
        if self.lr is not None and not (_is_number(self.lr) and math.isfinite(self.lr)
                                        and self.lr > 0):
            raise GradvizError(f"--lr must be a positive number, got {self.lr!r}")
        if not (_is_number(self.l2) and math.isfinite(self.l2) and self.l2 >= 0):
            raise GradvizError(f"--l2 must be a number >= 0, got {self.l2!r}")
        eps = self.label_smoothing
        if not (_is_number(eps) and math.isfinite(eps) and 0 <= eps < 1):
            raise GradvizError(f"--label-smoothing must be a number in [0, 1), got {eps!r}")
        object.__setattr__(self, "label_smoothing", float(eps))
        if self.hidden is not None:
            if not isinstance(self.hidden, (tuple, list)) or not self.hidden \
                    or any(not _is_int(h) or h < 1 for h in self.hidden):
                raise GradvizError(f"--hidden must list positive layer widths, got "
                                   f"{self.hidden!r}")
            object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        get_optimizer(self.optimizer)
        LRSchedule.parse(self.lr or 1.0, self.lr_decay)

    def _fill_defaults(self) -> None:
        """Settings left at None take the defaults of the model and data set (`DEFAULTS`); the
        table's learning rate goes with the table's optimizer only."""
        table = default_settings(self.model, self.data)
        optimizer = self.optimizer
        if optimizer is None:
            object.__setattr__(self, "optimizer", table["optimizer"])
        if self.lr is None and str(self.optimizer).lower() == table["optimizer"]:
            object.__setattr__(self, "lr", table["lr"])
        for name in ("epochs", "batch", "label_smoothing"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, table[name])

    def to_dict(self) -> dict:
        """A JSON-able dict (the `config` of a checkpoint)."""
        d = dataclasses.asdict(self)
        d["hidden"] = None if self.hidden is None else list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The inverse of `to_dict`; raises `GradvizError` on anything else."""
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(d, dict) or set(d) - names or not {"model", "data"} <= set(d):
            raise GradvizError("the checkpoint's configuration is not one gradviz wrote")
        d = dict(d)
        # a checkpoint written before label smoothing existed was trained without it
        d.setdefault("label_smoothing", 0.0)
        if d.get("hidden") is not None:
            if not isinstance(d["hidden"], list):
                raise GradvizError(f"--hidden must list positive layer widths, got "
                                   f"{d['hidden']!r}")
            d["hidden"] = tuple(d["hidden"])
        return cls(**d)

    def differences(self, other: "TrainConfig") -> list[str]:
        """The settings (other than `epochs`) in which `other` differs, as `--name a vs b`."""
        out = []
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name not in ("epochs", "patience") and a != b:
                out.append(f"--{f.name.replace('_', '-')} {_show(a)} vs {_show(b)}")
        return out


def _show(value) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return "(default)" if value is None else str(value)


@dataclass
class TrainResult:
    """What a run produced: the history of every epoch trained so far (resumed ones included),
    final test metrics, timing, and the trained parameter values by name."""

    config: TrainConfig
    device: str
    history: History
    test_loss: float | None
    test_accuracy: float | None
    seconds: float
    samples_per_sec: float | None
    epochs_run: int
    resumed_from_epoch: int | None
    params: dict[str, np.ndarray] = field(repr=False)
    build_seconds: float = 0.0  # building (and compiling) step graphs, included in `seconds`
    device_reason: str = ""     # why --device auto chose `device` ("" when it was given)
    compile_seconds: float = 0.0  # compiling (not loading) the step, included in build_seconds

    @property
    def best_epoch(self) -> int | None:
        return self.history.best_epoch

    @property
    def stopped_early(self) -> bool:
        return self.history.stopped_early

    def summary(self) -> dict:
        """The `gradviz train --json` line (with --patience, `best_epoch` and `stopped_early`
        are added at its end)."""
        last = self.history[-1] if self.history else None
        return {
            "model": self.config.model, "data": self.config.data, "device": self.device,
            "epochs_run": self.epochs_run,
            "train_loss": None if last is None else last.train_loss,
            "val_accuracy": None if last is None else last.val_accuracy,
            "test_accuracy": self.test_accuracy,
            "seconds": round(self.seconds, 3),
            "samples_per_sec": None if self.samples_per_sec is None
            else round(self.samples_per_sec, 1),
            "resumed_from_epoch": self.resumed_from_epoch,
            **({} if self.config.patience is None else {
                "best_epoch": self.history.best_epoch,
                "stopped_early": self.history.stopped_early}),
        }

    def _repr_html_(self) -> str:
        """In a notebook: the figures of the run and its curves (see gradviz.notebook)."""
        from gradviz.notebook import training_html

        return training_html(self)


class Reporter(Protocol):
    """Progress callbacks (the CLI draws a progress bar and prints epoch lines with them).

    Optional methods, called when a reporter has them: `batch_done(loss, samples, seconds)`
    instead of `batch_end()` (the running mean loss of the epoch, samples and seconds so far),
    `compile_start(device, certain)` / `compile_end(seconds)` around a compile of the step
    (`certain`: the cache says a compile will happen; False: it may be a load), and
    `note(text)` for a line such as the early stop."""

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None: ...
    def batch_end(self) -> None: ...
    def epoch_end(self, record: EpochRecord, epochs: int) -> None: ...


class Silent:
    """A reporter that reports nothing."""

    def epoch_start(self, epoch, epochs, batches):
        pass

    def batch_end(self):
        pass

    def epoch_end(self, record, epochs):
        pass


class PrintReporter(Silent):
    """Epoch lines on stdout (`Trainer(verbose=True)`): the first, one in `every` (default:
    `epochs_shown`), the last, and notes such as the early stop."""

    def __init__(self, every: int | None = None, stream=None):
        self.every, self.stream = every, stream
        self._first = None
        self._pending: tuple[EpochRecord, int] | None = None

    def _print(self, text: str) -> None:
        import sys

        print(text, file=self.stream or sys.stdout, flush=True)

    def epoch_end(self, record, epochs):
        every = self.every or epochs_shown(epochs)
        if self._first is None:
            self._first = record.epoch
        if record.epoch == self._first or record.epoch % every == 0 or record.epoch == epochs:
            self._print(epoch_line(record, epochs))
            self._pending = None
        else:
            self._pending = (record, epochs)

    def note(self, text):
        if self._pending is not None:  # the epoch the run stopped at, even between shown ones
            self._print(epoch_line(*self._pending))
            self._pending = None
        self._print(text)


class NonFiniteLoss(GradvizError):
    """The loss became NaN or infinite; the message names the step and the first bad node."""


# -- model and data ------------------------------------------------------------------------------
def load_data(config: TrainConfig, **options):
    """The data set of a configuration, split with its seed. Image data sets come in the
    (C, H, W) layout: convolutional models need it, and the others start with `Flatten`."""
    from gradviz.data import load_dataset

    dataset = load_dataset(config.data, target=config.target, seed=config.seed, **options)
    return dataset.with_layout("image") if dataset.image_shape is not None else dataset


def build_model(config: TrainConfig, dataset):
    """The named model of a configuration, shaped for `dataset`."""
    from gradviz.nn.models import build_model as build

    kwargs = {} if config.hidden is None else {"hidden": config.hidden}
    return build(config.model, dataset.input_shape, dataset.n_outputs, **kwargs)


def _model_spec(name: str) -> dict | None:
    """The description of a model given as a file (None for a named model)."""
    from gradviz.nn.models import MODELS, load_model_file

    if name in MODELS or name.lower().endswith(".onnx"):  # an ONNX file is referred to by path
        return None
    return load_model_file(name)


def check_model_size(model, name: str) -> int:
    """The model's parameter count, refused over `max_params()` (nothing is allocated yet)."""
    count = sum(p.size for p in model.parameters())
    limit = max_params()
    if count > limit:
        raise GradvizError(f"model {name} has {count:,} parameters, more than the limit of "
                           f"{limit:,} (raise it with $GRADVIZ_MAX_PARAMS)")
    return count


def forward_macs(model, input_shape) -> int:
    """Multiply-adds of one example's forward pass, roughly: each layer's parameters times the
    positions they are applied at (a convolution's output pixels), from the layer table; the
    parameter count where the model gives no table."""
    try:
        rows = model.summary(tuple(input_shape))
        total = 0
        for row in rows:
            shape = tuple(row.output_shape)
            positions = int(np.prod(shape[1:])) if len(shape) == 3 else 1
            total += int(row.params) * max(positions, 1)
        return max(total, 1)
    except Exception:  # noqa: BLE001 - a custom module without a table: its parameter count
        return max(sum(int(p.size) for p in model.parameters()), 1)


def smooth_targets(targets, eps: float):
    """Label smoothing as graph nodes: one-hot `targets` (N, K) become (1 - eps) * t + eps / K,
    so the true class gets 1 - eps + eps/K and every other class eps/K (a 0/1 column, a model
    with one logit, becomes (1 - eps) * t + eps / 2). The cross-entropy with these targets is
    (1 - eps) times the usual one plus eps times the mean of -log p over the classes: the model
    is still pushed to the right class, but no longer rewarded for ever larger logits (Szegedy et
    al. 2016, "Rethinking the Inception architecture", section 7)."""
    from gradviz.ops import add, mul

    classes = 2 if targets.shape[-1] == 1 else targets.shape[-1]
    return add(mul(targets, 1.0 - eps), eps / classes)


def smoothed_loss(eps: float):
    """The classification loss on `smooth_targets(target, eps)`: a `loss_fn` for
    `build_train_step` (the training step's `loss` output is then this smoothed loss, whose
    minimum is the entropy of the smoothed targets, not 0)."""
    from gradviz.nn.losses import classification_loss

    def loss_fn(logits, targets):
        return classification_loss(logits, smooth_targets(targets, eps))

    return loss_fn


def _dtype(model) -> str:
    params = list(model.parameters())
    return params[0].dtype if params else "float32"


def _saved_threads(found) -> int | None:
    """The thread count a checkpoint's compiled CPU step used (None: another device, or a
    checkpoint from before counts were recorded)."""
    count = None if found is None else found.meta.get("threads")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        return None
    return count


# -- evaluation --------------------------------------------------------------------------------
class Evaluator:
    """Forward passes of a model over whole splits, in batches of `EVAL_BATCH`."""

    def __init__(self, model, input_shape, task: str, device: str, dtype: str):
        self.model, self.input_shape, self.task = model, tuple(input_shape), task
        self.device, self.dtype = device, dtype
        self._steps: dict[int, tuple[EvalStep, Any]] = {}

    def _step(self, batch: int):
        if batch not in self._steps:
            step = build_eval_step(self.model, batch, self.input_shape, task=self.task,
                                   dtype=self.dtype)
            self._steps[batch] = (step, make_runner(step.graph, self.device))
        return self._steps[batch]

    def run(self, params: dict[str, np.ndarray], X: np.ndarray, T: np.ndarray):
        """(mean loss, accuracy or None, model outputs) over the examples X with targets T."""
        n = len(X)
        if n == 0:
            return None, None, None
        params = _host(params)  # one copy, if a device holds them
        total_loss, correct, outputs = 0.0, 0.0, []
        size = min(EVAL_BATCH, n)
        for start in range(0, n, size):
            xb, tb = X[start:start + size], T[start:start + size]
            step, runner = self._step(len(xb))
            feeds = {step.x: xb, step.target: tb, **{p: params[p.name] for p in step.params}}
            out = runner(feeds)
            total_loss += float(out[0]) * len(xb)
            if step.correct is not None:
                correct += float(out[1])
            outputs.append(np.asarray(out[-1]))
        accuracy = correct / n if self.task == CLASSIFICATION else None
        return total_loss / n, accuracy, np.concatenate(outputs)


# -- training -----------------------------------------------------------------------------------
class Trainer:
    """One training run. `model` and `dataset` default to the ones `config` names (pass your own
    to train a custom `Module` on a custom `Dataset`; checkpoints then resume only with the same
    objects passed again). `on_epoch(record, params)`, when set, is called after every epoch
    with its `EpochRecord` and the parameters by name (use them at once: a compiled step may
    update those arrays in place)."""

    def __init__(self, config: TrainConfig, *, device: str = "auto",
                 checkpoint: str | os.PathLike | None = None, resume: bool = False,
                 reporter: Reporter | None = None, model=None, dataset=None, on_epoch=None,
                 verbose: bool = False, threads: int | None = None):
        if resume and checkpoint is None:
            raise GradvizError("--resume needs --checkpoint DIR")
        self.config = config
        resolve_device(device)  # an unknown name is refused before any data is read
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        self.resume = resume
        self.reporter = reporter or (PrintReporter() if verbose else Silent())
        self._found = self._load_checkpoint() if resume else None
        if not resume and self.checkpoint is not None and ckpt.exists(self.checkpoint):
            raise GradvizError(f"{self.checkpoint} already holds a checkpoint; pass --resume to "
                               "continue it, or choose another directory")
        self.on_epoch = on_epoch
        # cores the compiled CPU step may use (None: every core); a resumed run takes the
        # checkpoint's count unless told otherwise: the count fixes how sums are cut into
        # chunks, so the same count computes the same bits as the uninterrupted run
        self._saved_threads = _saved_threads(self._found)
        if threads is None and self._saved_threads is not None and \
                self._saved_threads <= MOST_THREADS:   # (more than this machine's pool holds)
            threads = self._saved_threads
        self.threads = threads
        self.dataset = dataset if dataset is not None else load_data(config)
        self.model = model if model is not None else build_model(config, self.dataset)
        check_model_size(self.model, config.model)
        self.model_spec = _model_spec(config.model) if model is None else None
        self._sources = None
        if self.checkpoint is not None:  # what a later command may open again, fingerprinted
            self._sources = source_records(config, data=dataset is None, model=model is None)
        self.optimizer = get_optimizer(config.optimizer)
        self.schedule = LRSchedule.parse(config.lr or self.optimizer.default_lr, config.lr_decay)
        self.task = self.dataset.task
        if config.label_smoothing and self.task != CLASSIFICATION:
            raise GradvizError(f"--label-smoothing is for classification; {config.data} is a "
                               f"{self.task} data set")
        self.dtype = _dtype(self.model)
        self._graphs: dict[int, TrainStep] = {}
        self._steps: dict[int, tuple[TrainStep, Any]] = {}
        self.build_seconds = 0.0  # building and compiling step graphs, not counted as training
        self.compile_seconds = 0.0  # compiling (not loading from the cache) the step
        self.device, self.device_reason = choose_device(
            device, self.run_size() if device == "auto" else None)

    # -- pieces --
    def _step_graph(self, batch: int) -> TrainStep:
        if batch not in self._graphs:
            eps = self.config.label_smoothing
            self._graphs[batch] = build_train_step(
                self.model, batch, self.dataset.input_shape, optimizer=self.optimizer,
                task=self.task, l2=self.config.l2, dtype=self.dtype,
                loss_fn=smoothed_loss(eps) if eps and self.task == CLASSIFICATION else None)
        return self._graphs[batch]

    def _full_batch(self) -> int:
        """The batch size of the training step (an epoch's last batch may be smaller)."""
        return min(self.config.batch, len(self.dataset.X_train))

    def _train_step(self, batch: int):
        if batch not in self._steps:
            # The last, smaller batch splits the kernels the full batch's step split: which
            # kernels are split depends on sizes, and another choice would be another module
            # to compile (the digits CNN: 4 s more, for the one batch of 10 an epoch ends on).
            full = self._full_batch()
            like = self._train_step(full)[1] if batch != full and self.device == "cpu" else None
            started = time.perf_counter()
            step = self._step_graph(batch)
            self._steps[batch] = (step, self._compiled(step, like))
            self.build_seconds += time.perf_counter() - started
        return self._steps[batch]

    def _runner(self, step: TrainStep, like=None):
        if self.threads is None:   # make_runner's default: every core the process may use
            return make_runner(step, self.device, like=like)
        return make_runner(step, self.device, self.threads, like=like)

    def _compiled(self, step: TrainStep, like=None):
        """The runner of `step` on the device (`like`: see `make_runner`); a compile that the
        cache does not spare is announced to the reporter (`compile_start`/`compile_end`)
        while it runs."""
        if self.device == "numpy" or importlib.util.find_spec("gradviz.compiler") is None:
            return self._runner(step)  # (no compiler: its error)
        cached = step_is_cached(step, self.device, strict=True, threads=self.threads, like=like)
        start, end = (getattr(self.reporter, "compile_start", None),
                      getattr(self.reporter, "compile_end", None))
        if cached or start is None:
            return self._runner(step, like)
        started = time.perf_counter()
        start(self.device, cached is False)
        try:
            runner = self._runner(step, like)
        finally:
            seconds = time.perf_counter() - started
            if end is not None:
                end(seconds)
        self.compile_seconds += seconds
        return runner

    def run_size(self) -> RunSize:
        """What `--device auto` weighs for this run (see `gradviz.nn.step.choose_device`)."""
        n = len(self.dataset.X_train)
        batch = min(self.config.batch, max(n, 1))
        epochs = self.config.epochs
        if self.resume and self._found is not None:
            epochs = max(epochs - int(self._found.epoch), 0)
        cached = None
        try:
            cached = step_is_cached(self._step_graph(batch), "cpu", threads=self.threads)
        except GradvizError:
            cached = None
        return RunSize(steps=-(-n // batch) * epochs, samples=n * epochs,
                       macs_per_sample=forward_macs(self.model, self.dataset.input_shape),
                       cached=cached, processes=self.threads or default_threads())

    def _cpu_threads(self) -> int | None:
        """The thread count of the compiled CPU step (None on another device)."""
        return (self.threads or default_threads()) if self.device == "cpu" else None

    def warm_up(self) -> dict:
        """Build and compile (or load) the training step on the device, training nothing: what
        `gradviz compile --model M --data D` runs so that a later `train` starts at once.
        Returns {"device", "compiled" (a compile happened), "seconds"}."""
        before = self.compile_seconds
        started = time.perf_counter()
        cached = None if self.device == "numpy" else step_is_cached(
            self._step_graph(self._full_batch()), self.device,
            strict=True, threads=self.threads)
        self._train_step(self._full_batch())
        return {"device": self.device, "cached": cached,
                "compiled": self.compile_seconds > before or cached is False,
                "seconds": time.perf_counter() - started}

    def _targets(self, y: np.ndarray, n_outputs: int) -> np.ndarray:
        return encode_targets(y, n_outputs, self.task, self.dtype)

    def _initial(self):
        init_rng = np.random.default_rng([self.config.seed, 1])
        params = {p.name: np.asarray(v, dtype=p.dtype)
                  for p, v in self.model.init(init_rng).items()}
        step, _ = self._train_step(self._full_batch())
        missing = [p.name for p in step.params if p.name not in params]
        if missing:
            raise GradvizError(f"the model's init() gives no value for {', '.join(missing)}")
        state = {k: np.array(v) for k, v in step.initial_state.items()}
        return params, state

    def _meta(self, epoch: int, rng: np.random.Generator, history: list[EpochRecord]) -> dict:
        ds = self.dataset
        return {
            "epoch": epoch, "config": self.config.to_dict(), "device": self.device,
            "threads": self._cpu_threads(),
            "optimizer": self.optimizer.config(),
            "rng": rng.bit_generator.state, "history": [dataclasses.asdict(r) for r in history],
            "normalizer": ds.normalizer.to_dict(), "model_spec": self.model_spec,
            "sources": self._sources,
            "dataset": {"name": ds.name, "task": ds.task, "n_classes": ds.n_classes,
                        "class_names": list(ds.class_names), "input_shape": list(ds.input_shape),
                        "layout": ds.layout},
        }

    def _load_checkpoint(self) -> ckpt.Checkpoint:
        found = ckpt.load(self.checkpoint)
        where = f"checkpoint in {self.checkpoint}"
        try:
            saved = TrainConfig.from_dict(found.meta.get("config"))
        except (GradvizError, TypeError) as exc:
            raise GradvizError(f"corrupt {where}: {exc}") from None
        diffs = absolute_config(saved).differences(absolute_config(self.config))
        if diffs:
            raise GradvizError(f"mismatched {where}: it was trained with different settings "
                               f"({'; '.join(diffs)})")
        return found

    def _restore(self, params: dict, state: dict):
        found = self._found
        where = f"checkpoint in {self.checkpoint}"
        for kind, want, got in (("parameter", params, found.params),
                                ("optimizer state", state, found.state)):
            if set(want) != set(got):
                odd = sorted(set(want) ^ set(got))[0]
                raise GradvizError(f"mismatched {where}: {kind} {odd!r} is in only one of the "
                                   "checkpoint and the model")
            for name, value in want.items():
                if got[name].shape != value.shape or got[name].dtype != value.dtype:
                    raise GradvizError(
                        f"mismatched {where}: {kind} {name!r} is {got[name].dtype}"
                        f"{list(got[name].shape)} there, {value.dtype}{list(value.shape)} here")
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = found.meta["rng"]
            history = [EpochRecord(**r) for r in found.meta["history"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise GradvizError(f"corrupt {where}: bad RNG state or history ({exc})") from None
        if len(history) != found.epoch:
            raise GradvizError(f"corrupt {where}: {len(history)} epochs of history "
                               f"for epoch {found.epoch}")
        return found.params, found.state, rng, history, found.epoch

    # -- the loop --
    def run(self) -> TrainResult:
        """Train for `config.epochs` epochs (counting those a resumed checkpoint has done)."""
        held = contextlib.nullcontext() if self.checkpoint is None else ckpt.lock(self.checkpoint)
        with held:
            return self._run_here()

    def _run_here(self) -> TrainResult:
        if self.device not in ("numpy", "cpu"):
            return self._run()
        # The interpreter runs one small BLAS call per node; OpenBLAS threads on those cost more
        # than they give, and on a busy 2-core machine they made steps 10x slower (measured).
        # The compiled CPU step too: its cores belong to its worker pool, which splits the matrix
        # products into single-threaded BLAS calls (`threads`; see gradviz.compiler.compile).
        # Its BLAS is SciPy's, loaded first so that the limit reaches it.
        import scipy.linalg.cython_blas  # noqa: F401
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return self._run()

    def _run(self) -> TrainResult:
        started = time.perf_counter()
        ds, config = self.dataset, self.config
        params, state = self._initial()
        rng = np.random.default_rng([config.seed, 2])
        history = History()
        first_epoch = 0
        if self.resume:
            params, state, rng, records, first_epoch = self._restore(params, state)
            history = History.of(records)
            threads = self._cpu_threads()
            if self._saved_threads and threads and threads != self._saved_threads:
                self._note(f"note: the checkpoint was trained with {self._saved_threads} "
                           f"thread(s), this run uses {threads}: sums are cut into other "
                           "chunks, so the last digits differ from an uninterrupted run's")
        watch = _EarlyStop(config.patience, history, self._best_dir(),
                           self._found if self.resume else None)
        evaluator = Evaluator(self.model, ds.input_shape, self.task, "numpy", self.dtype)
        n_out = self._train_step(self._full_batch())[0].target.shape[1]
        T_train = self._targets(ds.y_train, n_out)
        T_val = self._targets(ds.y_val, n_out)
        n = len(ds.X_train)
        batch = self._full_batch()
        batches = -(-n // batch)
        train_seconds, samples = 0.0, 0
        for epoch in range(first_epoch, config.epochs):
            epoch_started = time.perf_counter()
            built_before = self.build_seconds
            lr = self.schedule(epoch)
            self.reporter.epoch_start(epoch + 1, config.epochs, batches)
            loss_sum, correct = self._train_epoch(epoch, lr, params, state, rng, T_train,
                                                  batch, batches, epoch_started)
            train_seconds += time.perf_counter() - epoch_started - (self.build_seconds
                                                                    - built_before)
            samples += n
            val_loss, val_acc, _ = evaluator.run(params, ds.X_val, T_val)
            record = EpochRecord(epoch + 1, lr, loss_sum / n,
                                 correct / n if self.task == CLASSIFICATION else None,
                                 val_loss, val_acc, time.perf_counter() - epoch_started)
            history.append(record)
            if self.checkpoint is not None:
                ckpt.save(self.checkpoint, self._meta(epoch + 1, rng, history),
                          _host(params), _host(state))
            improved = watch.update(history, params)
            if improved and watch.directory is not None:
                ckpt.save(watch.directory, self._meta(epoch + 1, rng, history),
                          _host(params), _host(state))
            self.reporter.epoch_end(record, config.epochs)
            if self.on_epoch is not None:
                self.on_epoch(record, params)
            if watch.should_stop():
                history.stopped_early = True
                break
        if watch.patience is not None:
            history.best_epoch = watch.best_epoch
            if watch.best_params is not None:
                params = watch.best_params
            self._note(watch.summary(history))
        else:
            history.best_epoch = _best_epoch(history)
        test_loss, test_acc, _ = evaluator.run(params, ds.X_test,
                                               self._targets(ds.y_test, n_out))
        trained = max(len(history) - first_epoch, 0)
        return TrainResult(config, self.device, history, test_loss, test_acc,
                           time.perf_counter() - started,
                           samples / train_seconds if train_seconds > 0 else None,
                           trained, first_epoch if self.resume else None, _host(params),
                           self.build_seconds, self.device_reason, self.compile_seconds)

    def _train_epoch(self, epoch: int, lr: float, params: dict, state: dict, rng, T_train,
                     batch: int, batches: int, epoch_started: float) -> tuple[float, float]:
        """One pass over the training split in a fresh order, updating `params` and `state`;
        returns the summed loss and the number of correct predictions."""
        n = len(self.dataset.X_train)
        # A compiled step may update parameters in place: keep the epoch's start, so that
        # a non-finite loss can be traced by replaying the epoch up to the bad step.
        start = None if self.device == "numpy" else (
            _copy(params), _copy(state), rng.bit_generator.state)
        order = rng.permutation(n)
        loss_sum, correct, seen = 0.0, 0.0, 0
        batch_done = getattr(self.reporter, "batch_done", None)
        for b in range(batches):
            step, runner, feeds = self._batch(order, b, batch, lr, params, state, rng, T_train)
            out = runner(feeds)
            loss = float(out[0])
            if not math.isfinite(loss):
                if start is not None:
                    step, feeds = self._replay(start, b, batch, lr, T_train)
                raise NonFiniteLoss(self._nonfinite_message(step, feeds, loss, epoch, b))
            loss_sum += loss * step.batch
            if step.correct is not None:
                correct += float(out[1])
            _apply(step, out, params, state)
            seen += step.batch
            if batch_done is not None:
                batch_done(loss_sum / seen, seen, time.perf_counter() - epoch_started)
            else:
                self.reporter.batch_end()
        return loss_sum, correct

    def _note(self, text: str) -> None:
        note = getattr(self.reporter, "note", None)
        if note is not None and text:
            note(text)

    def _best_dir(self) -> str | None:
        """Where the best epoch's checkpoint goes: DIR/best, with --patience and --checkpoint."""
        if self.config.patience is None or self.checkpoint is None:
            return None
        return os.path.join(self.checkpoint, BEST_DIR)

    def _batch(self, order, b: int, batch: int, lr: float, params, state, rng, T_train):
        """The step graph, its runner and its feeds for batch `b` of an epoch."""
        idx = order[b * batch:(b + 1) * batch]
        step, runner = self._train_step(len(idx))
        feeds = self._feeds(step, self.dataset.X_train[idx], T_train[idx], lr, params, state, rng)
        return step, runner, feeds

    def _replay(self, start, bad: int, batch: int, lr: float, T_train):
        """The feeds of step `bad` of the current epoch, recomputed from the epoch's start."""
        params, state = _copy(start[0]), _copy(start[1])
        rng = np.random.default_rng()
        rng.bit_generator.state = start[2]
        order = rng.permutation(len(T_train))
        for b in range(bad):
            step, runner, feeds = self._batch(order, b, batch, lr, params, state, rng, T_train)
            _apply(step, runner(feeds), params, state)
        step, _, feeds = self._batch(order, bad, batch, lr, params, state, rng, T_train)
        return step, feeds

    def _feeds(self, step: TrainStep, xb, tb, lr, params, state, rng) -> dict:
        feeds = {step.x: xb, step.target: tb, step.lr: np.asarray(lr, dtype=step.lr.dtype)}
        feeds.update({p: params[p.name] for p in step.params})
        feeds.update({s: state[s.name] for s in step.state})
        if step.masks:
            drawn = self.model.random_inputs(rng, step.batch)
            by_name = {k.name if hasattr(k, "name") else k: v for k, v in drawn.items()}
            for m in step.masks:
                feeds[m] = drawn[m] if m in drawn else by_name[m.name]
        return feeds

    def _nonfinite_message(self, step: TrainStep, feeds, loss, epoch, b) -> str:
        where = first_nonfinite(step.graph, feeds)
        origin = f"; first non-finite value at {where}" if where else ""
        return (f"training stopped: the loss is {loss} at epoch {epoch + 1}, step {b + 1}"
                f"{origin} (try a smaller --lr)")


#: The subdirectory of a checkpoint that holds the best epoch's checkpoint (with --patience).
BEST_DIR = "best"


def _best_epoch(history: History) -> int | None:
    watched = history.monitored()
    if not watched:
        return None
    return history.epoch[int(np.argmin(np.asarray(watched, dtype=float)))]


class _EarlyStop:
    """Early stopping on the validation loss (training loss without a validation split): stop
    after `patience` epochs without a new lowest value, keeping that epoch's parameters."""

    def __init__(self, patience: int | None, history: History, directory: str | None, found):
        self.patience, self.directory = patience, directory
        self.best_epoch, self.best_value, self.best_params = None, math.inf, None
        self.wait = 0
        if patience is None or not history:
            return
        self.best_epoch = _best_epoch(history)   # a resumed run: its best so far
        self.best_value = history.monitored()[history.epoch.index(self.best_epoch)]
        self.wait = history.epoch[-1] - self.best_epoch
        if directory is not None and ckpt.exists(directory):
            try:
                best = ckpt.load(directory)
                if best.epoch == self.best_epoch:
                    self.best_params = {k: np.array(v) for k, v in best.params.items()}
            except GradvizError:
                pass
        if self.best_params is None and found is not None and found.epoch == self.best_epoch:
            self.best_params = {k: np.array(v) for k, v in found.params.items()}

    def update(self, history: History, params: dict) -> bool:
        """Take the epoch just appended to `history`; True when it is the best so far."""
        if self.patience is None:
            return False
        value = history.monitored()[-1]
        if value is not None and value < self.best_value:
            self.best_epoch, self.best_value = history.epoch[-1], value
            self.best_params = _host(_copy(params))
            self.wait = 0
            return True
        self.wait += 1
        return False

    def should_stop(self) -> bool:
        return self.patience is not None and self.wait >= self.patience

    def summary(self, history: History) -> str:
        what = "validation loss" if history.val_loss and history.val_loss[-1] is not None \
            else "training loss"
        if self.best_epoch is None:
            return ""
        where = f"; saved in {self.directory}" if self.directory else ""
        if history.stopped_early:
            return (f"early stop at epoch {history.epoch[-1]}: the {what} has not improved for "
                    f"{self.patience} epoch(s); best epoch {self.best_epoch} "
                    f"({what} {format_loss(self.best_value)}) restored{where}")
        return (f"best epoch {self.best_epoch} ({what} {format_loss(self.best_value)}) "
                f"restored{where}")


def _apply(step: TrainStep, out: list, params: dict, state: dict) -> None:
    """Store a step's new parameters and state (its outputs after loss and correct count)."""
    k = 1 if step.correct is None else 2
    for p, value in zip(step.params, out[k:k + len(step.params)]):
        params[p.name] = value
    for s, value in zip(step.state, out[k + len(step.params):]):
        state[s.name] = value


def _copy(values: dict) -> dict:
    return {k: np.array(v, copy=True) for k, v in values.items()}


def _host(values: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in values.items()}


# -- using a trained model -----------------------------------------------------------------------
class TrainedModel:
    """A model restored from a checkpoint, for evaluation and prediction on new inputs."""

    def __init__(self, directory: str | os.PathLike):
        from gradviz.data import Normalizer

        found = ckpt.load(directory)
        try:
            self.config = TrainConfig.from_dict(found.meta.get("config"))
            info = found.meta["dataset"]
            self.task = info["task"]
            self.class_names = tuple(info["class_names"])
            self.input_shape = tuple(info["input_shape"])
            self.n_classes = int(info["n_classes"])
            self.normalizer = Normalizer.from_dict(found.meta["normalizer"])
        except (KeyError, TypeError, ValueError) as exc:
            raise GradvizError(f"corrupt checkpoint in {directory}: {exc}") from None
        self.epoch = found.epoch
        self.history = found.meta.get("history", [])
        self.sources = found.meta.get("sources")
        from gradviz.nn.models import build_model as build
        from gradviz.nn.models import model_from_spec

        kwargs = {} if self.config.hidden is None else {"hidden": self.config.hidden}
        n_outputs = self.n_classes if self.task == CLASSIFICATION else 1
        spec = found.meta.get("model_spec")
        if isinstance(spec, dict):  # a model file, kept in the checkpoint: it may have moved
            self.model = model_from_spec(spec, self.input_shape, n_outputs)
        else:
            name = trusted_source(found.meta, "model", directory)
            self.model = build(name, self.input_shape, n_outputs, **kwargs)
        check_model_size(self.model, self.config.model)
        self.params = found.params
        names = {p.name for p in self.model.parameters()}
        if names != set(self.params):
            raise GradvizError(f"mismatched checkpoint in {directory}: its parameters do not fit "
                               f"model {self.config.model!r}")
        self.dtype = _dtype(self.model)
        self.n_outputs = self.model.output_shape(self.input_shape)[-1]
        self._evaluator = Evaluator(self.model, self.input_shape, self.task, "numpy", self.dtype)

    def prepare(self, X_raw) -> np.ndarray:
        """Raw inputs (N, features) or (N, *input_shape), normalized with the training run's
        statistics and shaped for the model."""
        X_raw = np.asarray(X_raw)
        size = int(np.prod(self.input_shape))
        if X_raw.ndim == 1 and X_raw.size == size:
            X_raw = X_raw[None]
        if X_raw.ndim < 2 or int(np.prod(X_raw.shape[1:])) != size:
            raise GradvizError(f"inputs of shape {X_raw.shape} do not fit the model "
                               f"({size} features per example)")
        flat = self.normalizer.apply(X_raw.reshape(len(X_raw), -1), dtype=self.dtype)
        return flat.reshape((-1, *self.input_shape))

    def outputs(self, X_raw) -> np.ndarray:
        """The model's outputs (logits, or regression values) for raw, unnormalized inputs."""
        X = self.prepare(X_raw)
        dummy = np.zeros((len(X), self.n_outputs), dtype=self.dtype)
        return self._evaluator.run(self.params, X, dummy)[2]

    def predict(self, X_raw) -> np.ndarray:
        """Predicted class indices (or regression values) for raw, unnormalized inputs."""
        from gradviz.nn.losses import predicted_classes

        out = self.outputs(X_raw)
        return predicted_classes(out) if self.task == CLASSIFICATION else out[:, 0]

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> dict:
        """Loss, accuracy and confusion matrix (rows: true class, columns: predicted) on
        examples that are already normalized and shaped like the training data."""
        from gradviz.nn.losses import predicted_classes

        T = encode_targets(y, self.n_outputs, self.task, self.dtype)
        loss, accuracy, out = self._evaluator.run(self.params, X, T)
        result = {"loss": loss, "accuracy": accuracy, "examples": int(len(X))}
        if self.task == CLASSIFICATION and out is not None:
            pred = predicted_classes(out)
            matrix = np.zeros((self.n_classes, self.n_classes), dtype=np.int64)
            np.add.at(matrix, (np.asarray(y, dtype=np.int64), pred), 1)
            result["confusion"] = matrix
        return result


def config_for_run(given: dict, defaults: dict, *, resume: bool = False,
                   checkpoint: str | None = None) -> tuple[TrainConfig, str | None]:
    """The configuration of a run from the settings a user `given` ({TrainConfig field: value})
    and `defaults` for the rest; resuming, from the checkpoint's configuration with `given` on
    top. Returns (config, the device the checkpoint was trained on, or None)."""
    if resume:
        if checkpoint is None:
            raise GradvizError("--resume needs --checkpoint DIR")
        meta = ckpt.load(checkpoint).meta
        try:
            base = TrainConfig.from_dict(meta.get("config")).to_dict()
        except (GradvizError, TypeError) as exc:
            raise GradvizError(f"corrupt checkpoint in {checkpoint}: {exc}") from None
        if base.get("hidden") is not None:
            base["hidden"] = tuple(base["hidden"])
        device = meta.get("device")
        if device not in SAVED_DEVICES:
            raise GradvizError(f"corrupt checkpoint in {checkpoint}: unknown device {device!r}")
        saved_optimizer = meta.get("optimizer")
        if not isinstance(saved_optimizer, dict) \
                or saved_optimizer.get("name") != str(base["optimizer"]).lower():
            raise GradvizError(f"corrupt checkpoint in {checkpoint}: its optimizer record does "
                               f"not match optimizer {base['optimizer']!r}")
        for field_name in ("data", "model"):  # files only where the user names them, or as saved
            if field_name not in given:
                base[field_name] = trusted_source(meta, field_name, checkpoint)
        return absolute_config(TrainConfig(**{**base, **given})), device
    for required in ("model", "data"):
        if required not in given:
            raise GradvizError(f"missing option --{required}")
    return absolute_config(TrainConfig(**{**defaults, "hidden": None, **given})), None


def evaluation_report(checkpoint: str, data: str | None = None, target: str | None = None,
                      split: str = "test", seed: int | None = None) -> dict:
    """Loss, accuracy (and confusion matrix, for classification) of the model saved in
    `checkpoint` on `split` of `data` (default: the data set it was trained on, split with its
    seed, so `test` is the held-out part); the `gradviz evaluate --json` object."""
    trained = TrainedModel(checkpoint)
    config = trained.config
    if data is None:  # the run's own data: a file only where the checkpoint says, unchanged
        data = trusted_source({"config": config.to_dict(), "sources": trained.sources},
                              "data", checkpoint)
        target = config.target if target is None else target
    elif absolute_data(data) == absolute_data(config.data):
        target = config.target if target is None else target
    spec = dataclasses.replace(config, data=data, target=target,
                               seed=config.seed if seed is None else seed)
    raw = load_data(spec, normalize="none", dtype="float64")
    X_raw, y = raw.splits[split]
    if raw.task != trained.task:
        raise GradvizError(f"{data} is a {raw.task} data set; the model was trained for "
                           f"{trained.task}")
    if raw.task == "classification" and len(y) and int(y.max()) >= trained.n_classes:
        raise GradvizError(f"{data} has class {int(y.max())}; the model knows "
                           f"{trained.n_classes} classes")
    result = trained.evaluate(trained.prepare(X_raw), y)
    report = {"checkpoint": checkpoint, "model": config.model, "data": data, "split": split,
              "epoch": trained.epoch, "examples": result["examples"], "loss": result["loss"],
              "accuracy": result["accuracy"]}
    if "confusion" in result:
        report["class_names"] = list(trained.class_names)
        report["confusion"] = result["confusion"].tolist()
    return report
