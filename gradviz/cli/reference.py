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

## JSON output

- `grad --json`: `{"expression", "value", "gradients": {"x": {"backprop", "numeric", "symbolic",
  "formula", ...}}, "agree"}`
- `check --json`: `{"verdict": "verified"|"refuted"|"inconclusive", "derivative",
  "counterexample": {"point", "claimed", "actual"} | null, ...}`
- `train --json`: one line per epoch, then `{"model", "data", "device", "epochs_run",
  "train_loss", "val_accuracy", "test_accuracy", "seconds", "samples_per_sec",
  "resumed_from_epoch"}`
- `bench --json`: `{"model", "device", "batch", "samples_per_sec", "step_ms", "compile_s"}`
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
