"""The `gradviz` command line.

Each command lives in its own module under `gradviz.cli` and is imported only when it runs, so
`gradviz --help` stays instant. Register a new command by adding it to `COMMANDS`.
"""
from __future__ import annotations

import importlib
import os
import sys
import threading
import time
import warnings

import click

#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
#: Seconds a command has, after Ctrl-C, to end by itself before the process is ended for it.
INTERRUPT_GRACE_S = 0.8

_interrupt_lock = threading.Lock()
_interrupt_claimed = False              # someone has written (or is writing) the one line
_interrupt_reported = threading.Event()  # the line is written


class Interrupted(BaseException):
    """Ctrl-C inside a command (click would turn a KeyboardInterrupt into a blank line and
    `Abort`; this passes its handlers untouched to the funnel)."""

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
    "export": ("export", "export", "A trained model (checkpoint) as an ONNX file."),
    "gradcheck": ("gradcheck", "gradcheck",
                  "Backprop vs finite differences per parameter tensor of a model (or .onnx)."),
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

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted() from None

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv or os.environ.get("GRADVIZ_DEBUG") == "1"
        try:
            with warnings.catch_warnings():
                if not debug:  # NumPy's overflow/invalid-value warnings are not the user's news
                    warnings.simplefilter("ignore", RuntimeWarning)
                rv = super().main(argv, prog_name=prog_name, complete_var=complete_var,
                                  standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except (Interrupted, KeyboardInterrupt):
            _report_interrupt()
        except click.exceptions.Abort as exc:
            if isinstance(exc.__context__, KeyboardInterrupt):
                _report_interrupt()
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
            if isinstance(exc, OSError):  # the system said no (disk full, permissions, ...)
                click.echo(f"gradviz: error: {os_error_line(exc)}", err=True)
                sys.exit(2)
            if isinstance(exc, MemoryError):
                click.echo("gradviz: error: not enough memory for this run (try smaller sizes; "
                           "see Limits in docs/cli.md)", err=True)
                sys.exit(2)
            click.echo(f"gradviz: internal error: {type(exc).__name__}: {one_line(str(exc))} "
                       "(run with --debug for the traceback)", err=True)
            sys.exit(3)
        sys.exit(rv if isinstance(rv, int) else 0)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def os_error_line(exc: OSError) -> str:
    """`cannot use FILE: No space left on device` from an OSError."""
    reason = exc.strerror or one_line(str(exc)) or type(exc).__name__
    if exc.filename is not None:
        return one_line(f"cannot use {exc.filename}: {reason}")
    return one_line(reason)


def _claim_interrupt_line() -> bool:
    """True for the first caller only: the one who writes `gradviz: interrupted`."""
    global _interrupt_claimed
    with _interrupt_lock:
        first = not _interrupt_claimed
        _interrupt_claimed = True
        return first


def _report_interrupt() -> None:
    if _claim_interrupt_line():
        try:
            sys.stderr.write("gradviz: interrupted\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
    _interrupt_reported.set()
    sys.exit(EXIT_INTERRUPTED)


def _watch_interrupts() -> None:
    """Ctrl-C ends every command within a second, even one busy in compiled code or waiting on
    a child process: SIGINT is blocked in every thread but one, which raises KeyboardInterrupt
    in the main thread and, if the command has not ended `INTERRUPT_GRACE_S` later, ends the
    process with exit code 130 itself. POSIX only; elsewhere the usual KeyboardInterrupt."""
    import signal

    if os.name != "posix" or not hasattr(signal, "pthread_sigmask") \
            or threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return  # SIGINT ignored (nohup, a background job) stays ignored

    def watch():
        import _thread

        while True:
            signal.sigwait({signal.SIGINT})
            _thread.interrupt_main()
            if _interrupt_reported.wait(INTERRUPT_GRACE_S):
                time.sleep(INTERRUPT_GRACE_S)  # the command is exiting: give it the time
            elif _claim_interrupt_line():
                try:
                    os.write(2, b"gradviz: interrupted\n")
                except OSError:
                    pass
            os._exit(EXIT_INTERRUPTED)

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    threading.Thread(target=watch, name="gradviz-sigint", daemon=True).start()


@click.group(cls=LazyGroup, context_settings={"help_option_names": HELP_OPTIONS})
@click.version_option(package_name="gradviz")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def cli(debug: bool) -> None:
    """gradviz: the chain rule you can run, see, prove and train."""


def main() -> None:
    """Console-script entry point."""
    _watch_interrupts()
    cli.main(prog_name="gradviz")
