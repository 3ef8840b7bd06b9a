"""The CLI reference (`docs/cli.md`), generated from the commands' own help so it cannot drift.

    python -m gradviz.cli.reference > docs/cli.md
"""
from __future__ import annotations

import click

INTRO = """# Command-line reference

Generated from `gradviz COMMAND --help` by `python -m gradviz.cli.reference > docs/cli.md`
(a test checks that this page matches the code).

## Conventions

- **Expressions** use Python syntax: `+ - * / **`, unary minus, parentheses, numbers, names and the
  functions `exp log sqrt abs sin cos tanh sigmoid relu leaky_relu elu step sign max min`. They are
  parsed against a whitelist: nothing is ever evaluated as Python.
- **Points** are given as `--at a=1,b=2` (the option may be repeated).
- **Exit codes**: 0 success; 1 a check said no (gradients disagree, a claim is refuted, training
  or descent did not converge where that is the question); 2 bad input (usage, parse error,
  unknown name, missing value, unknown model or data set, unreadable checkpoint); 3 an internal
  error (a bug: please report it with the output of `gradviz --debug ...`).
- **Errors** are one line on stderr, `gradviz: error: ...`, naming the problem (and the column in
  an expression). `gradviz --debug COMMAND ...` shows the traceback instead.
- **Files** are written atomically: a reader sees the old file or the complete new one.
  Only regular files are written: an output (`-o`, `--plot`, `--plot-regions`) that is a
  directory, a device (`/dev/full`), a FIFO or a socket, lies under `/proc`, `/sys` or `/dev`, or
  sits in a directory that is missing or not writable is refused with exit code 2 before any
  work starts (output directories, `steps -o`, `--frames`, `--checkpoint`, likewise). A
  symbolic link is followed: its target is written and the link stays a link.
- **Ctrl-C** ends every command within a second: one line, `gradviz: interrupted`, exit code 130.
- **Warnings** from NumPy (overflow, invalid values) are not printed; the error they lead to is
  (`--debug` shows them).

## JSON output

- `grad --json`: `{"expression", "value", "gradients": {"x": {"backprop", "numeric", "symbolic",
  "formula", ...}}, "agree"}`
- `check --json`: `{"verdict": "verified"|"refuted"|"inconclusive", "derivative",
  "counterexample": {"point", "claimed", "actual"} | null, ...}`
- `train --json`: one line per epoch, then `{"model", "data", "device", "epochs_run",
  "train_loss", "val_accuracy", "test_accuracy", "seconds", "samples_per_sec",
  "resumed_from_epoch"}`
- `bench --json`: `{"model", "device", "batch", "samples_per_sec", "step_ms", "compile_s"}`

## Limits

Every input is bounded in the time and memory it can cost; past a bound the command stops at
once with exit code 2 and one line naming the bound and how to change it.

| what | bound | change it with |
|---|---|---|
| expression string | 100,000 characters, 150 levels of parentheses, literal exponents up to 10,000 | - |
| IDX file (MNIST) data section | 1 GiB; the header is checked first (zero sizes, overflowing sizes), and the file's (or gzip trailer's) length must match it before the body is read | `$GRADVIZ_MAX_IDX_BYTES` |
| model parameters (`train`, `evaluate`) | 100,000,000 (AlexNet has 62 million), checked before anything is allocated | `$GRADVIZ_MAX_PARAMS` |
| `train --epochs` | 100,000 | - |
| model file (`.json`, `.yaml`) | 1 MiB; binary bytes and deep nesting refused | - |
| `checkpoint.json` | 64 MiB | - |
| `perceptron` | 200,000 presentations (`--epochs` x samples; each is kept for the trace) | `--epochs` |
| `descend --max-iter`, `fit --max-iter` | 100,000 (each iteration is kept for the table and plot) | - |
| `steps` | 100 frames (each lays out the whole graph) | `--max-frames` |
| diagram layout | 120 s per picture | - |
| CSV classification target | at least two classes | - |

**Checkpoints** (format version 2) checksum their arrays and their metadata, so an edited
`checkpoint.json` is refused; version 1 checkpoints are refused with a message saying to train
again. Data and model files are recorded by absolute path with a SHA-256 of their contents:
`evaluate` and `train --resume` reopen such a file from a checkpoint only while it is unchanged
(otherwise name it with `--data` / `--model`). Unknown device or optimizer records are refused.
A training holds `DIR/.lock` (its pid and host): a second training in the same directory is
refused; a lock whose process is gone is taken over.

**Kernel cache** (`$GRADVIZ_CACHE`, default `~/.cache/gradviz`): created with mode 0o700, and
refused (exit 2) when it is not a directory, cannot be created or written, belongs to another
user, or is writable by group or others. Numba's cached files are checked against a SHA-256
manifest before a module is imported; unlisted or changed files are deleted and rebuilt, never
loaded.
"""


def reference_markdown() -> str:
    """The whole reference page."""
    from gradviz.cli import COMMANDS, cli

    parts = [INTRO, "## Commands\n"]
    parts.append("\n".join(f"- [`gradviz {name}`](#gradviz-{name}): {COMMANDS[name][2]}"
                           for name in sorted(COMMANDS)) + "\n")
    for name in sorted(COMMANDS):
        command = cli.get_command(None, name)
        settings = dict(command.context_settings, terminal_width=100, max_content_width=100)
        ctx = click.Context(command, info_name=f"gradviz {name}", **settings)
        parts.append(f"## gradviz {name}\n\n```text\n{command.get_help(ctx)}\n```\n")
        if isinstance(command, click.Group):  # a command with subcommands: each one's help
            for sub in sorted(command.commands):
                child = command.commands[sub]
                sub_ctx = click.Context(child, info_name=sub, parent=ctx,
                                        **dict(child.context_settings, terminal_width=100,
                                               max_content_width=100))
                parts.append(f"### gradviz {name} {sub}\n\n```text\n{child.get_help(sub_ctx)}"
                             f"\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    click.echo(reference_markdown(), nl=False)
