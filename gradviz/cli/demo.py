"""`gradviz demo`: the lecture examples end to end.

The steps (commands and what to look at) are in `gradviz.lectures.demo`; this module runs each
one as an ordinary command of this CLI, in this process, printing its command line first.
"""
from __future__ import annotations

import os
import shlex

import click


@click.command()
@click.option("-o", "--output", "out", default="gradviz-demo", show_default=True, metavar="DIR",
              help="Where to write the pictures.")
@click.option("--quick", is_flag=True, help="Skip the longer training run.")
@click.option("--verbose", "-v", is_flag=True,
              help="Every epoch of the trainings and every row of the tables (default: the "
                   "first, every tenth and last epoch; a few rows at each end).")
def demo(out: str, quick: bool, verbose: bool) -> int:
    """Run the lecture examples end to end: the chain-rule circuits with their gradients,
    explanations, checks, diagrams and backprop frames, the perceptron rule, gradient descent,
    LeNet-5's table and two small trainings."""
    return run_demo(out, quick, verbose)


def run_demo(out: str, quick: bool = False, verbose: bool = False) -> int:
    """Run every step, printing each command and its output; returns 0 when every step ended
    as expected, else 1."""
    from gradviz.cli import cli
    from gradviz.files import check_output_dir
    from gradviz.lectures.demo import demo_steps

    check_output_dir(out, "-o")
    os.makedirs(out, exist_ok=True)
    failures = []
    for step in demo_steps(out, quick, verbose):
        if step.title:
            click.secho(f"\n== {step.title}", bold=True)
            click.echo(step.note)
        click.secho("$ gradviz " + " ".join(shlex.quote(a) for a in step.args), fg="cyan")
        command = cli.get_command(click.Context(cli), step.args[0])
        try:
            code = command.main(list(step.args[1:]), prog_name=f"gradviz {step.args[0]}",
                                standalone_mode=False)
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        code = code if isinstance(code, int) else 0
        if code != step.expected_exit:
            failures.append(f"{step.args[0]} exited {code}, expected {step.expected_exit}")
    click.echo("")
    if failures:
        click.secho("demo: some steps did not end as expected: " + "; ".join(failures), fg="red")
        return 1
    click.secho(f"demo done: pictures are in {out}/", fg="green")
    return 0
