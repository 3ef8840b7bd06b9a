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
second graph is built for the last, smaller batch (every example is used every epoch). Only the
training step runs on the chosen device; validation and test metrics (forward passes, once per
epoch) run on the NumPy interpreter, so a compiled run compiles one or two graphs, not one per
split size.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import math
import os
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from gradviz.nn import checkpoints as ckpt
from gradviz.errors import GradvizError
from gradviz.nn.optim import LRSchedule, get_optimizer
from gradviz.nn.step import (CLASSIFICATION, EvalStep, TrainStep, build_eval_step,
                             build_train_step, encode_targets, first_nonfinite, make_runner,
                             resolve_device)

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


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training run computes (the device does not: every device
    computes the same steps). `lr=None` means the optimizer's default rate."""

    model: str
    data: str
    target: str | None = None
    hidden: tuple[int, ...] | None = None
    epochs: int = 20
    batch: int = 32
    lr: float | None = None
    optimizer: str = "adam"
    l2: float = 0.0
    lr_decay: str | None = None
    seed: int = 0

    def __post_init__(self):
        for name in ("model", "data"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise GradvizError(f"--{name} must be a non-empty name, got {value!r}")
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
        if self.hidden is not None:
            if not isinstance(self.hidden, (tuple, list)) or not self.hidden \
                    or any(not _is_int(h) or h < 1 for h in self.hidden):
                raise GradvizError(f"--hidden must list positive layer widths, got "
                                   f"{self.hidden!r}")
            object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        get_optimizer(self.optimizer)
        LRSchedule.parse(self.lr or 1.0, self.lr_decay)

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
            if f.name != "epochs" and a != b:
                out.append(f"--{f.name.replace('_', '-')} {_show(a)} vs {_show(b)}")
        return out


def _show(value) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return "(default)" if value is None else str(value)


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


@dataclass
class TrainResult:
    """What a run produced: the history of every epoch trained so far (resumed ones included),
    final test metrics, timing, and the trained parameter values by name."""

    config: TrainConfig
    device: str
    history: list[EpochRecord]
    test_loss: float | None
    test_accuracy: float | None
    seconds: float
    samples_per_sec: float | None
    epochs_run: int
    resumed_from_epoch: int | None
    params: dict[str, np.ndarray] = field(repr=False)
    build_seconds: float = 0.0  # building (and compiling) step graphs, included in `seconds`

    def summary(self) -> dict:
        """The `gradviz train --json` line."""
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
        }


class Reporter(Protocol):
    """Progress callbacks (the CLI draws a progress bar and prints epoch lines with them)."""

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


# -- files a run reads ----------------------------------------------------------------------------
# A checkpoint records the data and model files a run read: absolute paths and a SHA-256 of their
# contents. A later command opens such a path from a checkpoint only when the user names it on
# the command line, or when the file still has the recorded fingerprint (a checkpoint edited to
# name another file, /etc/passwd say, is refused without that file being parsed or shown).
_BUILTIN_DATA = ("and", "or", "xor", "spiral", "moons", "circles", "digits", "heights", "mnist",
                 "fashion-mnist")


def _data_location(spec: str) -> tuple[str, list[Path]] | None:
    """(the spec with an absolute path, the files it reads) for a data spec naming files; None
    for a built-in or fetched data set."""
    name, _, rest = spec.partition(":")
    key = name.strip().lower()
    if key in ("mnist", "fashion-mnist"):
        if not rest.strip():
            return None
        from gradviz.data.idx import MNIST_FILES, find_mnist_file

        directory = os.path.abspath(os.path.expanduser(rest.strip()))
        files = [find_mnist_file(Path(directory), role) for role in MNIST_FILES]
        return f"{key}:{directory}", [f for f in files if f is not None]
    if key in _BUILTIN_DATA:
        return None
    path = os.path.abspath(os.path.expanduser(spec.strip()))
    return path, [Path(path)]


def _model_location(name: str) -> tuple[str, list[Path]] | None:
    """(absolute path, [the file]) for a model file; None for a named model."""
    from gradviz.nn.models import MODELS

    if name in MODELS or not (name.lower().endswith((".json", ".yaml", ".yml", ".onnx"))
                              or os.sep in name):
        return None
    path = os.path.abspath(os.path.expanduser(name))
    return path, [Path(path)]


_LOCATIONS = {"data": _data_location, "model": _model_location}


def absolute_config(config: TrainConfig) -> TrainConfig:
    """`config` with the data and model files named by absolute paths."""
    changes = {}
    for field_name, locate in _LOCATIONS.items():
        found = locate(getattr(config, field_name))
        if found is not None:
            changes[field_name] = found[0]
    return dataclasses.replace(config, **changes) if changes else config


def _absolute_data(spec: str) -> str:
    found = _data_location(spec)
    return spec if found is None else found[0]


def _fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def source_records(config: TrainConfig, data: bool = True, model: bool = True) -> dict:
    """{"data": record or None, "model": record or None}: each file-based source's absolute
    spec and SHA-256, for a checkpoint (`data`/`model` False: the caller passed its own)."""
    out = {}
    for field_name, locate in _LOCATIONS.items():
        found = locate(getattr(config, field_name)) if {"data": data, "model": model}[
            field_name] else None
        if found is None:
            out[field_name] = None
            continue
        spec, files = found
        try:
            out[field_name] = {"spec": spec, "sha256": _fingerprint(files)}
        except OSError as exc:
            raise GradvizError(f"cannot read {field_name} {spec}: {exc.strerror or exc}") \
                from None
    return out


def trusted_source(meta: dict, field_name: str, checkpoint) -> str:
    """The data spec or model name of a checkpoint's configuration, safe to open: a built-in
    name as it is; a file only at its recorded absolute path and with its recorded SHA-256."""
    value = meta["config"][field_name]
    if _LOCATIONS[field_name](value) is None:
        return value
    record = (meta.get("sources") or {}).get(field_name)
    what = "data" if field_name == "data" else "model file"
    if not isinstance(record, dict) or not isinstance(record.get("spec"), str) \
            or not isinstance(record.get("sha256"), str):
        raise GradvizError(f"checkpoint {checkpoint} names the {what} {value!r} without a "
                           f"fingerprint of it; name it with --{field_name}")
    if _LOCATIONS[field_name](value)[0] != record["spec"]:
        raise GradvizError(f"corrupt checkpoint {checkpoint}: its {what} {value!r} is not the one "
                           "it has a fingerprint of; name it with --" + field_name)
    found = _LOCATIONS[field_name](record["spec"])
    try:
        same = found is not None and found[1] and _fingerprint(found[1]) == record["sha256"]
    except OSError:
        same = False
    if not same:
        raise GradvizError(f"the {what} {record['spec']} that checkpoint {checkpoint} was "
                           f"trained on is missing or has changed; name it with --{field_name} "
                           "to use it anyway")
    return record["spec"]


def check_model_size(model, name: str) -> int:
    """The model's parameter count, refused over `max_params()` (nothing is allocated yet)."""
    count = sum(p.size for p in model.parameters())
    limit = max_params()
    if count > limit:
        raise GradvizError(f"model {name} has {count:,} parameters, more than the limit of "
                           f"{limit:,} (raise it with $GRADVIZ_MAX_PARAMS)")
    return count


def _dtype(model) -> str:
    params = list(model.parameters())
    return params[0].dtype if params else "float32"


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

    def __init__(self, config: TrainConfig, *, device: str = "numpy",
                 checkpoint: str | os.PathLike | None = None, resume: bool = False,
                 reporter: Reporter | None = None, model=None, dataset=None, on_epoch=None):
        if resume and checkpoint is None:
            raise GradvizError("--resume needs --checkpoint DIR")
        self.config = config
        self.device = resolve_device(device)
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        self.resume = resume
        self.reporter = reporter or Silent()
        self._found = self._load_checkpoint() if resume else None
        if not resume and self.checkpoint is not None and ckpt.exists(self.checkpoint):
            raise GradvizError(f"{self.checkpoint} already holds a checkpoint; pass --resume to "
                               "continue it, or choose another directory")
        self.on_epoch = on_epoch
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
        self.dtype = _dtype(self.model)
        self._steps: dict[int, tuple[TrainStep, Any]] = {}
        self.build_seconds = 0.0  # building and compiling step graphs, not counted as training

    # -- pieces --
    def _train_step(self, batch: int):
        if batch not in self._steps:
            started = time.perf_counter()
            step = build_train_step(self.model, batch, self.dataset.input_shape,
                                    optimizer=self.optimizer, task=self.task, l2=self.config.l2,
                                    dtype=self.dtype)
            self._steps[batch] = (step, make_runner(step, self.device))
            self.build_seconds += time.perf_counter() - started
        return self._steps[batch]

    def _targets(self, y: np.ndarray, n_outputs: int) -> np.ndarray:
        return encode_targets(y, n_outputs, self.task, self.dtype)

    def _initial(self):
        init_rng = np.random.default_rng([self.config.seed, 1])
        params = {p.name: np.asarray(v, dtype=p.dtype)
                  for p, v in self.model.init(init_rng).items()}
        step, _ = self._train_step(min(self.config.batch, len(self.dataset.X_train)))
        missing = [p.name for p in step.params if p.name not in params]
        if missing:
            raise GradvizError(f"the model's init() gives no value for {', '.join(missing)}")
        state = {k: np.array(v) for k, v in step.initial_state.items()}
        return params, state

    def _meta(self, epoch: int, rng: np.random.Generator, history: list[EpochRecord]) -> dict:
        ds = self.dataset
        return {
            "epoch": epoch, "config": self.config.to_dict(), "device": self.device,
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
        # The compiled CPU step too: digits MLP 3,000 samples/s with two threads, 47,000-113,000
        # with one. Its BLAS is SciPy's, loaded first so that the limit reaches it.
        import scipy.linalg.cython_blas  # noqa: F401
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return self._run()

    def _run(self) -> TrainResult:
        started = time.perf_counter()
        ds, config = self.dataset, self.config
        params, state = self._initial()
        rng = np.random.default_rng([config.seed, 2])
        history: list[EpochRecord] = []
        first_epoch = 0
        if self.resume:
            params, state, rng, history, first_epoch = self._restore(params, state)
        evaluator = Evaluator(self.model, ds.input_shape, self.task, "numpy", self.dtype)
        n_out = self._train_step(min(config.batch, len(ds.X_train)))[0].target.shape[1]
        T_train = self._targets(ds.y_train, n_out)
        T_val = self._targets(ds.y_val, n_out)
        n = len(ds.X_train)
        batch = min(config.batch, n)
        batches = -(-n // batch)
        train_seconds, samples = 0.0, 0
        for epoch in range(first_epoch, config.epochs):
            epoch_started = time.perf_counter()
            built_before = self.build_seconds
            lr = self.schedule(epoch)
            self.reporter.epoch_start(epoch + 1, config.epochs, batches)
            # A compiled step may update parameters in place: keep the epoch's start, so that
            # a non-finite loss can be traced by replaying the epoch up to the bad step.
            start = None if self.device == "numpy" else (
                _copy(params), _copy(state), rng.bit_generator.state)
            order = rng.permutation(n)
            loss_sum, correct = 0.0, 0.0
            for b in range(batches):
                step, runner, feeds = self._batch(order, b, batch, lr, params, state, rng,
                                                  T_train)
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
                self.reporter.batch_end()
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
            self.reporter.epoch_end(record, config.epochs)
            if self.on_epoch is not None:
                self.on_epoch(record, params)
        test_loss, test_acc, _ = evaluator.run(params, ds.X_test,
                                               self._targets(ds.y_test, n_out))
        return TrainResult(config, self.device, history, test_loss, test_acc,
                           time.perf_counter() - started,
                           samples / train_seconds if train_seconds > 0 else None,
                           config.epochs - first_epoch if config.epochs > first_epoch else 0,
                           first_epoch if self.resume else None, _host(params),
                           self.build_seconds)

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
    elif _absolute_data(data) == _absolute_data(config.data):
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


def plot_curves(history: list[EpochRecord], path: str | os.PathLike, title: str = "") -> None:
    """Write loss and accuracy curves per epoch to an image (format from the file extension:
    png, svg, pdf), atomically."""
    if not history:
        raise GradvizError("no epochs to plot")
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    if fmt not in ("png", "svg", "pdf"):
        raise GradvizError(f"--plot writes .png, .svg or .pdf files, not {path!r}")
    import matplotlib

    matplotlib.use("Agg")
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
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=100)
    from gradviz.files import write_atomic

    write_atomic(path, buffer.getvalue())
