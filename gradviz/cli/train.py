"""`gradviz train`: train a named model on a data set, with a progress bar, per-epoch metrics,
checkpoints that resume exactly, loss curves and a `--json` summary line."""
from __future__ import annotations

import json
import sys

import click
from click.core import ParameterSource

from gradviz.core.text import format_number
from gradviz.errors import GradvizError

OPTIMIZER_NAMES = ("sgd", "momentum", "rmsprop", "adam", "adamax", "adadelta")
DEVICE_NAMES = ("numpy", "cpu", "cuda", "auto")

# CLI option -> TrainConfig field, for the options a checkpoint remembers
CONFIG_OPTIONS = {"model": "model", "data": "data", "target": "target", "hidden": "hidden",
                  "epochs": "epochs", "batch": "batch", "lr": "lr", "optimizer": "optimizer",
                  "l2": "l2", "lr_decay": "lr_decay", "seed": "seed"}


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
    return format_number(value, 4, decimals=4, fixed_below=1e4, exact_integers=False)


class ConsoleReporter:
    """A progress bar per epoch on stderr (when it is a terminal) and one line per epoch on
    stdout; with `as_json`, one JSON object per epoch and no bar."""

    def __init__(self, as_json: bool):
        self.as_json = as_json
        self.show_bar = not as_json and sys.stderr.isatty()
        self.bar = None

    def epoch_start(self, epoch, epochs, batches):
        if self.show_bar:
            self.bar = click.progressbar(length=batches, label=f"epoch {epoch}/{epochs}",
                                         file=sys.stderr, show_eta=False)
            self.bar.__enter__()

    def batch_end(self):
        if self.bar is not None:
            self.bar.update(1)

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
        width = len(str(epochs))
        parts = [f"epoch {record.epoch:>{width}}/{epochs}", f"loss {_num(record.train_loss)}"]
        if record.train_accuracy is not None:
            parts.append(f"acc {100 * record.train_accuracy:6.2f}%")
        if record.val_loss is not None:
            parts.append(f"val loss {_num(record.val_loss)}")
        if record.val_accuracy is not None:
            parts.append(f"val acc {100 * record.val_accuracy:6.2f}%")
        parts.append(f"lr {record.lr:.3g}")
        parts.append(f"{record.seconds:.1f} s")
        click.echo("  ".join(parts))

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _config_from(ctx: click.Context, options: dict, resume: bool, checkpoint: str | None):
    """(config, saved device) from the options given on the command line (not defaulted)."""
    from gradviz.nn.training import config_for_run

    given = {field: options[opt] for opt, field in CONFIG_OPTIONS.items()
             if ctx.get_parameter_source(opt) not in (ParameterSource.DEFAULT, None)}
    if "hidden" in given:
        given["hidden"] = parse_hidden(given["hidden"])
    defaults = {field: options[opt] for opt, field in CONFIG_OPTIONS.items()
                if opt not in ("model", "data", "hidden")}
    return config_for_run(given, defaults, resume=resume, checkpoint=checkpoint)


@click.command()
@click.option("--model", "-m", metavar="NAME",
              help="Model: perceptron, logreg, mlp, cnn, lenet, or a .json model file.")
@click.option("--data", "-d", metavar="SPEC",
              help="Data set: and, or, xor, spiral, moons, circles, digits, mnist:DIR, FILE.csv.")
@click.option("--target", metavar="COLUMN", help="The column to predict (CSV data).")
@click.option("--hidden", metavar="W1,W2", help="Hidden layer widths, e.g. 256,128.")
@click.option("--epochs", type=int, default=20, show_default=True,
              help="Epochs in total (a resumed run counts the ones done).")
@click.option("--batch", type=int, default=32, show_default=True, help="Batch size.")
@click.option("--lr", type=float, help="Learning rate (default: the optimizer's).")
@click.option("--optimizer", type=click.Choice(OPTIMIZER_NAMES, case_sensitive=False),
              default="adam", show_default=True, help="Update rule.")
@click.option("--l2", type=float, default=0.0, show_default=True,
              help="L2 regularization strength on the weights (adds l2/2 * sum w**2).")
@click.option("--lr-decay", metavar="SCHEDULE",
              help="Learning-rate schedule: step:EVERY:FACTOR or exp:FACTOR (per epoch).")
@click.option("--device", type=click.Choice(DEVICE_NAMES), default="auto", show_default=True,
              help="numpy (reference interpreter), cpu / cuda (compiled with Numba), or auto "
                   "(cuda when there is a GPU, else cpu).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the split, the initialization, shuffling and dropout.")
@click.option("--checkpoint", metavar="DIR", help="Save a checkpoint into DIR after every epoch.")
@click.option("--resume", is_flag=True,
              help="Continue the checkpoint in --checkpoint DIR (settings not given, the device "
                   "included, are taken from it).")
@click.option("--json", "as_json", is_flag=True,
              help="JSON lines: one per epoch, then the summary.")
@click.option("--plot", metavar="FILE", help="Write loss/accuracy curves (.png, .svg, .pdf).")
@click.option("--plot-regions", metavar="FILE",
              help="Draw the learned decision regions with the data (2-D data sets).")
@click.option("--frames", metavar="DIR",
              help="Draw the decision regions after every epoch into DIR, with DIR/index.html "
                   "to step through them (2-D data sets).")
@click.pass_context
def train(ctx, model, data, target, hidden, epochs, batch, lr, optimizer, l2, lr_decay, device,
          seed, checkpoint, resume, as_json, plot, plot_regions, frames):
    """Train a model on a data set and report train, validation and test metrics.

    \b
    gradviz train --model mlp --data digits --hidden 64 --epochs 10
    gradviz train -m mlp -d xor --hidden 4 --optimizer sgd --lr 0.5 --epochs 300
    gradviz train -m mlp -d digits --checkpoint run1
    gradviz train --checkpoint run1 --resume --epochs 30
    gradviz train -m mlp -d moons --hidden 16 --plot-regions moons.png --frames moons-frames
    """
    from gradviz.nn.training import Trainer

    _check_outputs(plot, plot_regions, frames, checkpoint)
    options = dict(model=model, data=data, target=target, hidden=hidden, epochs=epochs,
                   batch=batch, lr=lr, optimizer=optimizer and optimizer.lower(), l2=l2,
                   lr_decay=lr_decay, seed=seed)
    config, saved_device = _config_from(ctx, options, resume, checkpoint)
    if saved_device in DEVICE_NAMES and \
            ctx.get_parameter_source("device") == ParameterSource.DEFAULT:
        device = saved_device  # the same device computes the same bits
    _check_pictures(plot, plot_regions)
    reporter = ConsoleReporter(as_json)
    try:
        trainer = Trainer(config, device=device, checkpoint=checkpoint, resume=resume,
                          reporter=reporter)
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
    return (f"{trainer.dataset.summary()}; model {config.model}, "
            f"{sum(p.size for p in trainer.model.parameters()):,} parameters, "
            f"{trainer.optimizer.name} lr {trainer.schedule.base:g}, "
            f"device {trainer.device}")


def _draw(result, config, regions, plot: str | None, plot_regions: str | None) -> None:
    """The loss curves (--plot) and the final decision regions (--plot-regions)."""
    from gradviz.nn.training import plot_curves

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
