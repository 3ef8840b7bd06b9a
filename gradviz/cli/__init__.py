"""The `gradviz` command line.

Each command lives in its own module under `gradviz.cli` and is imported only when it runs, so
`gradviz --help` stays instant. Register a new command by adding it to `COMMANDS`.
"""
from __future__ import annotations

import importlib
import os
import sys

import click

# command name -> (module under gradviz.cli, attribute, one-line help shown by --help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "grad": ("grad", "grad", "Partial derivatives by backprop, finite differences and SymPy."),
    "demo": ("demo", "demo", "The lecture examples end to end (pictures in gradviz-demo/)."),
    "draw": ("draw", "draw", "Annotated forward/backward diagram of an expression."),
    "steps": ("steps", "steps", "Backprop frame by frame, with an HTML page to step through."),
    "check": ("check", "check", "Prove a hand-derived derivative, or refute it with a point."),
    "explain": ("explain", "explain", "The chain rule written out factor by factor, path by path."),
    "train": ("train", "train", "Train a model on a data set (progress, metrics, checkpoints)."),
    "evaluate": ("evaluate", "evaluate", "Accuracy and confusion matrix of a trained model."),
    "summary": ("summary", "summary", "Layer table of a model: output shapes, parameter counts."),
    "descend": ("descend", "descend", "Gradient descent on an expression, iteration by iteration."),
    "fit": ("fit", "fit", "Linear regression by gradient descent (the slides' heights, or a CSV)."),
    "perceptron": ("perceptron", "perceptron", "Rosenblatt's learning rule, sample by sample."),
    "compile": ("compile", "compile_command", "Kernels or generated source of an expression."),
    "bench": ("bench", "bench", "Training-step throughput of a model on a device."),
    "data": ("data", "data", "Fetch public data sets (checksummed) and list the ones fetched."),
}


HELP_OPTIONS = ["-h", "--help"]


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command is used, and turns
    every usage error into one line and exit code 2."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        command = getattr(importlib.import_module(f"gradviz.cli.{module}"), attr)
        # The same help flags however the command is reached (click caches the help option
        # on first use, so a command run without the group's context must not differ).
        command.context_settings.setdefault("help_option_names", HELP_OPTIONS)
        return command

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv or os.environ.get("GRADVIZ_DEBUG") == "1"
        try:
            rv = super().main(argv, prog_name=prog_name, complete_var=complete_var,
                              standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("gradviz: aborted", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            click.echo(f"gradviz: error: {one_line(exc.format_message())}", err=True)
            sys.exit(2)
        except Exception as exc:  # noqa: BLE001 - the one place every error becomes a line
            from gradviz.errors import GradvizError

            if debug:
                raise
            if isinstance(exc, GradvizError):
                click.echo(f"gradviz: error: {one_line(str(exc))}", err=True)
                sys.exit(exc.exit_code)
            click.echo(f"gradviz: internal error: {type(exc).__name__}: {one_line(str(exc))} "
                       "(run with --debug for the traceback)", err=True)
            sys.exit(3)
        sys.exit(rv if isinstance(rv, int) else 0)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


@click.group(cls=LazyGroup, context_settings={"help_option_names": HELP_OPTIONS})
@click.version_option(package_name="gradviz")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def cli(debug: bool) -> None:
    """gradviz: the chain rule you can run, see, prove and train."""


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="gradviz")
