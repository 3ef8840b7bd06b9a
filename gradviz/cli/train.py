"""`gradviz train`: train a named model on a data set, with a progress bar, per-epoch metrics,
checkpoints that resume exactly, loss curves and a `--json` summary line."""
from __future__ import annotations

import json
import os
import sys
import time

import click
from click.core import ParameterSource

from gradviz.errors import GradvizError
from gradviz.nn.training import PrintReporter

OPTIMIZER_NAMES = ("sgd", "momentum", "rmsprop", "adam", "adamax", "adadelta")
DEVICE_NAMES = ("numpy", "cpu", "cuda", "auto")

# CLI option -> TrainConfig field, for the options a checkpoint remembers
CONFIG_OPTIONS = {"model": "model", "data": "data", "target": "target", "hidden": "hidden",
                  "epochs": "epochs", "batch": "batch", "lr": "lr", "optimizer": "optimizer",
                  "l2": "l2", "lr_decay": "lr_decay", "seed": "seed", "patience": "patience",
                  "label_smoothing": "label_smoothing"}


def parse_hidden(text: str | None) -> tuple[int, ...] | None:
    """`"256,128"` -> (256, 128)."""
    if text is None:
        return None
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise GradvizError(f"--hidden takes layer widths separated by commas, got {text!r}") \
            from None
    if not sizes or any(s < 1 for s in sizes):
        raise GradvizError(f"--hidden takes positive layer widths, got {text!r}")
    return sizes


def _num(value: float) -> str:
    """A loss: 4 decimals, or 4 significant digits from 10,000 on."""
    from gradviz.nn.history import format_loss

    return format_loss(value)


class CompileNotice:
    """`compiling the training step for the CPU (...)` on stderr while a compile runs: on a
    terminal one line whose elapsed seconds a small thread updates; otherwise the line at once
    and `compiled in N s` at the end. A compile the cache could not rule out (`certain` False)
    is announced only if it lasts over `DELAY` seconds."""

    DELAY = 1.0

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._stop = None
        self._thread = None
        self._shown = False
        self._text = ""

    def start(self, device: str, certain: bool):
        import threading

        try:
            from gradviz.compiler.cache import cache_dir

            where = str(cache_dir()).replace(os.path.expanduser("~"), "~", 1)
        except (ImportError, OSError):
            where = "the kernel cache"
        what = "the CPU" if device == "cpu" else "the GPU"
        first = "first run of this model; " if certain else ""
        self._text = f"compiling the training step for {what} ({first}cached in {where})"
        self._stop = threading.Event()
        self._started = time.perf_counter()
        if certain and not self.tty:
            self._show(self._text)
            return
        if self.tty or not certain:
            self._thread = threading.Thread(target=self._tick, args=(0.0 if certain else
                                                                     self.DELAY,),
                                            name="gradviz-compile-notice", daemon=True)
            self._thread.start()

    def _show(self, line: str, end: str = "\n"):
        try:
            self.stream.write(line + end)
            self.stream.flush()
        except (OSError, ValueError):
            pass
        self._shown = True

    def _tick(self, delay: float):
        if self._stop.wait(delay):
            return
        while True:
            elapsed = time.perf_counter() - self._started
            if self.tty:
                self._show(f"\r\x1b[2K{self._text} {elapsed:.0f} s", end="")
            elif not self._shown:
                self._show(self._text)
            if self._stop.wait(1.0):
                return

    def end(self, seconds: float):
        if self._stop is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._shown:
            if self.tty:
                self._show(f"\r\x1b[2K{self._text}: compiled in {seconds:.1f} s")
            else:
                self._show(f"compiled in {seconds:.1f} s")
        self._stop = None


class ConsoleReporter(PrintReporter):
    """A progress bar per epoch on stderr (when it is a terminal: the epoch's ETA once it is
    known, running loss, samples/s and the whole run's time left) and `PrintReporter`'s epoch
    lines on stdout (the first, one in `every`, the last); with `as_json`, one JSON object per
    epoch and no bar."""

    def __init__(self, as_json: bool, every: int | None = None):
        super().__init__(every)
        self.as_json = as_json
        self.show_bar = not as_json and sys.stderr.isatty()
        self.bar = None
        self._status = ""
        self._run_start = None
        self.notice = CompileNotice()

    def compile_start(self, device, certain):
        self.notice.start(device, certain)

    def compile_end(self, seconds):
        self.notice.end(seconds)

    def epoch_start(self, epoch, epochs, batches):
        if self._run_start is None:
            self._run_start, self._run_first = time.perf_counter(), epoch
        self._epoch, self._epochs, self._batches, self._done = epoch, epochs, batches, 0
        if self.show_bar:
            self._status = ""
            self.bar = click.progressbar(length=batches, label=f"epoch {epoch}/{epochs}",
                                         file=sys.stderr, show_eta=True,
                                         item_show_func=lambda _: self._status or None)
            self.bar.__enter__()

    def batch_end(self):
        if self.bar is not None:
            self.bar.update(1)

    def batch_done(self, loss, samples, seconds):
        if self.bar is not None:
            self._done += 1
            speed = f"  {samples / seconds:,.0f} samples/s" if seconds > 0 else ""
            self._status = f"loss {_num(loss)}{speed}{self._run_eta()}"
            self.bar.update(1)

    def _run_eta(self) -> str:
        """`  run 1:05 left`: the whole run's remaining time at its pace so far."""
        total = self._epochs - self._run_first + 1
        done = (self._epoch - self._run_first) + self._done / max(self._batches, 1)
        elapsed = time.perf_counter() - self._run_start
        if done <= 0 or elapsed < 1.0 or total <= 1:
            return ""
        left = int(elapsed * (total - done) / done)
        return f"  run {left // 60}:{left % 60:02d} left"

    def epoch_end(self, record, epochs):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
            sys.stderr.write("\x1b[1A\x1b[2K")  # the epoch's line replaces its finished bar
            sys.stderr.flush()
        if self.as_json:
            from dataclasses import asdict

            click.echo(json.dumps(asdict(record)))
            return
        super().epoch_end(record, epochs)

    def _print(self, text: str) -> None:
        click.echo(text)

    def note(self, text):
        if not self.as_json:
            super().note(text)

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        self.notice.end(0.0)


def _config_from(ctx: click.Context, options: dict, resume: bool, checkpoint: str | None):
    """(config, saved device) from the options given on the command line (not defaulted)."""
    from gradviz.nn.training import config_for_run

    given = {field: options[opt] for opt, field in CONFIG_OPTIONS.items()
             if ctx.get_parameter_source(opt) not in (ParameterSource.DEFAULT, None)}
    if "hidden" in given:
        given["hidden"] = parse_hidden(given["hidden"])
    defaults = {field: options[opt] for opt, field in CONFIG_OPTIONS.items()
                if opt not in ("model", "data", "hidden")}  # None: the model's and data's
    return config_for_run(given, defaults, resume=resume, checkpoint=checkpoint)


def _models_help() -> str:
    from gradviz.nn.models import MODELS

    return "Model: " + ", ".join(MODELS) + ", a .json/.yaml model file or an .onnx file."


def _data_help() -> str:
    from gradviz.data import DATASETS

    return "Data set: " + ", ".join(DATASETS) + "."


@click.command()
@click.option("--model", "-m", metavar="NAME", help=_models_help())
@click.option("--data", "-d", metavar="SPEC", help=_data_help())
@click.option("--target", metavar="COLUMN", help="The column to predict (CSV data).")
@click.option("--hidden", metavar="W1,W2", help="Hidden layer widths, e.g. 256,128.")
@click.option("--epochs", type=int, default=None,
              help="Epochs in total (a resumed run counts the ones done). Default: per data "
                   "set and model (docs/training.md), e.g. 100 for xor, 30 for digits.")
@click.option("--batch", type=int, default=None,
              help="Batch size. Default: per data set (4 for the gates, else 32).")
@click.option("--lr", type=float,
              help="Learning rate (default: the data set's with its optimizer, else the "
                   "optimizer's).")
@click.option("--optimizer", type=click.Choice(OPTIMIZER_NAMES, case_sensitive=False),
              default=None, help="Update rule (default: per data set; adam for most).")
@click.option("--l2", type=float, default=0.0, show_default=True,
              help="L2 regularization strength on the weights (adds l2/2 * sum w**2).")
@click.option("--lr-decay", metavar="SCHEDULE",
              help="Learning-rate schedule: step:EVERY:FACTOR or exp:FACTOR (per epoch).")
@click.option("--label-smoothing", "label_smoothing", type=float, default=None, metavar="EPS",
              help="Train on targets that spread EPS of each example's probability over all "
                   "classes (default: per data set, 0.2 for mlp and cnn on digits, else 0).")
@click.option("--patience", "--early-stopping", "patience", type=int, default=None,
              metavar="N",
              help="Stop after N epochs without a lower validation loss, keep the best epoch's "
                   "parameters (and its checkpoint in DIR/best with --checkpoint).")
@click.option("--device", type=click.Choice(DEVICE_NAMES), default="auto", show_default=True,
              help="numpy (reference interpreter), cpu / cuda (compiled with Numba), or auto "
                   "(what finishes first: numpy for small runs, else the compiled step, cuda "
                   "when there is a GPU; the first line says which and why).")
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N",
              help="Cores the compiled CPU step may use (default: every core this process may "
                   "use, its CPU affinity; each call still on one core when that measures "
                   "faster, as on a busy machine; resuming: the checkpoint's N). Results "
                   "depend on N.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the split, the initialization, shuffling and dropout.")
@click.option("--checkpoint", metavar="DIR", help="Save a checkpoint into DIR after every epoch.")
@click.option("--resume", is_flag=True,
              help="Continue the checkpoint in --checkpoint DIR (settings not given, the device "
                   "included, are taken from it).")
@click.option("--every", type=click.IntRange(min=1), default=None, metavar="N",
              help="Print one epoch line in N, and the first and last (default: every epoch "
                   "up to 30, then about 20 lines).")
@click.option("--warm-up", "warm_up", is_flag=True,
              help="Compile (or load) the training step for the device and stop, training "
                   "nothing: prepares a machine (like gradviz compile --model M --data D).")
@click.option("--json", "as_json", is_flag=True,
              help="JSON lines: one per epoch, then the summary.")
@click.option("--plot", metavar="FILE", help="Write loss/accuracy curves (.png, .svg, .pdf).")
@click.option("--plot-regions", metavar="FILE",
              help="Draw the learned decision regions with the data (2-D data sets).")
@click.option("--frames", metavar="DIR",
              help="Draw the decision regions after every epoch into DIR, with DIR/index.html "
                   "to step through them (2-D data sets).")
@click.pass_context
def train(ctx, model, data, target, hidden, epochs, batch, lr, optimizer, l2, lr_decay,
          label_smoothing, patience, device, threads, seed, checkpoint, resume, every, warm_up,
          as_json, plot, plot_regions, frames):
    """Train a model on a data set and report train, validation and test metrics. With no
    flags, each built-in data set gets settings that learn it (docs/training.md has the table
    and the accuracies reached).

    \b
    gradviz train -m perceptron -d or
    gradviz train -m mlp -d xor
    gradviz train --model mlp --data digits --hidden 64 --epochs 10
    gradviz train -m mlp -d xor --hidden 8 --optimizer sgd --lr 0.5 --epochs 300
    gradviz train -m cnn -d digits --patience 5 --checkpoint run1
    gradviz train --checkpoint run1 --resume --epochs 60
    gradviz train -m mlp -d moons --hidden 16 --plot-regions moons.png --frames moons-frames
    """
    from gradviz.nn.training import Trainer

    _check_outputs(plot, plot_regions, frames, checkpoint)
    options = dict(model=model, data=data, target=target, hidden=hidden, epochs=epochs,
                   batch=batch, lr=lr, optimizer=optimizer and optimizer.lower(), l2=l2,
                   lr_decay=lr_decay, seed=seed, patience=patience,
                   label_smoothing=label_smoothing)
    config, saved_device = _config_from(ctx, options, resume, checkpoint)
    if saved_device in DEVICE_NAMES and \
            ctx.get_parameter_source("device") == ParameterSource.DEFAULT:
        device = saved_device  # the same device computes the same bits
    _check_pictures(plot, plot_regions)
    reporter = ConsoleReporter(as_json, every)
    try:
        trainer = Trainer(config, device=device, checkpoint=None if warm_up else checkpoint,
                          resume=resume and not warm_up, reporter=reporter, threads=threads)
        if warm_up:
            return report_warm_up(trainer, config, as_json)
        regions, writer = _regions(trainer, config, plot_regions, frames)
        if not as_json:
            click.echo(_start_line(trainer, config))
        result = trainer.run()
    finally:
        reporter.close()
    _draw(result, config, regions, plot, plot_regions)
    if as_json:
        click.echo(json.dumps(result.summary()))
        return
    _print_result(result)
    if plot is not None:
        click.echo(f"curves written to {plot}")
    if plot_regions is not None:
        click.echo(f"decision regions drawn in {plot_regions}")
    if writer is not None:
        click.echo(f"{len(writer.frames)} frame(s) and index.html written to {frames}")


def report_warm_up(trainer, config, as_json: bool) -> None:
    """Compile (or load) the training step ahead of time and say what happened (`train
    --warm-up`, `compile --model`)."""
    done = trainer.warm_up()
    if as_json:
        click.echo(json.dumps({"model": config.model, "data": config.data, **done}))
        return
    if done["device"] == "numpy":
        click.echo(f"{config.model} on {config.data}: device numpy ({trainer.device_reason or 'given'}"
                   "): nothing to compile")
    elif done["compiled"]:
        click.echo(f"{config.model} on {config.data}: training step compiled for "
                   f"{done['device']} in {done['seconds']:.1f} s")
    else:
        click.echo(f"{config.model} on {config.data}: training step for {done['device']} "
                   f"already compiled (loaded in {done['seconds']:.1f} s)")


def _check_outputs(plot, plot_regions, frames, checkpoint) -> None:
    """Refuse every output path (and picture format) before training rather than after."""
    from gradviz.files import check_output_dir, check_output_file

    check_output_file(plot, "--plot")
    check_output_file(plot_regions, "--plot-regions")
    check_output_dir(frames, "--frames")
    check_output_dir(checkpoint, "--checkpoint")
    _check_pictures(plot, plot_regions)


def _check_pictures(plot: str | None, plot_regions: str | None) -> None:
    """Refuse a picture format before training rather than after."""
    if plot is not None and not plot.lower().endswith((".png", ".svg", ".pdf")):
        raise GradvizError(f"--plot writes .png, .svg or .pdf files, not {plot!r}")
    if plot_regions is not None:
        from gradviz.lectures.regions import image_format

        image_format(plot_regions)


def _start_line(trainer, config) -> str:
    why = f" ({trainer.device_reason})" if trainer.device_reason else ""
    smoothing = f", label smoothing {config.label_smoothing:g}" if config.label_smoothing else ""
    return (f"{trainer.dataset.summary()}; model {config.model}, "
            f"{sum(p.size for p in trainer.model.parameters()):,} parameters, "
            f"{trainer.optimizer.name} lr {trainer.schedule.base:g}, batch {config.batch}, "
            f"{config.epochs} epochs{smoothing}, device {trainer.device}{why}")


def _draw(result, config, regions, plot: str | None, plot_regions: str | None) -> None:
    """The loss curves (--plot) and the final decision regions (--plot-regions)."""
    from gradviz.nn.history import plot_curves

    if plot is not None:
        plot_curves(result.history, plot, title=f"{config.model} on {config.data}")
    if plot_regions is not None:
        regions.draw(result.params, plot_regions,
                     title=f"{config.model} on {config.data}: epoch {result.history[-1].epoch}, "
                     f"{_fit_note(result.history[-1])}"
                     if result.history else f"{config.model} on {config.data}")


def _print_result(result) -> None:
    """The test metrics and how long the run took."""
    if result.test_accuracy is not None:
        click.echo(f"test accuracy {100 * result.test_accuracy:.2f}%  "
                   f"(loss {_num(result.test_loss)})")
    elif result.test_loss is not None:
        click.echo(f"test loss {_num(result.test_loss)}")
    speed = "" if result.samples_per_sec is None else \
        f", {result.samples_per_sec:,.0f} samples/s"
    if result.build_seconds >= 1:
        speed += f" (graphs built and compiled in {result.build_seconds:.1f} s)"
    click.echo(f"{result.epochs_run} epoch(s) in {result.seconds:.1f} s on {result.device}{speed}"
               + (f" (resumed from epoch {result.resumed_from_epoch})"
                  if result.resumed_from_epoch is not None else ""))


def _fit_note(record) -> str:
    acc = "" if record.train_accuracy is None else \
        f", train accuracy {100 * record.train_accuracy:.0f}%"
    return f"loss {record.train_loss:.3f}{acc}"


def _regions(trainer, config, plot_regions: str | None, frames: str | None):
    """(regions, frame writer) for --plot-regions/--frames (None where not asked); with
    --frames, the trainer draws a frame after every epoch."""
    if plot_regions is None and frames is None:
        return None, None
    from gradviz.lectures.regions import DecisionRegions, FrameWriter

    regions = DecisionRegions(trainer.model, trainer.dataset)
    writer = None
    if frames is not None:
        writer = FrameWriter(regions, frames, title=f"{config.model} on {config.data}")
        trainer.on_epoch = lambda record, params: writer(record.epoch, params, _fit_note(record))
    return regions, writer
