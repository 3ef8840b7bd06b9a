"""`gradviz descend`: gradient descent on an expression, printed as the slides' iteration table,
with a picture of the path and a comparison of optimizers."""
from __future__ import annotations

import json

import click

from gradviz.cli.common import parse_points
from gradviz.core.text import format_number
from gradviz.errors import GradvizError

OPTIMIZER_NAMES = ("sgd", "momentum", "rmsprop", "adam", "adamax", "adadelta")


def _number(value: float, digits: int | None) -> str:
    """`digits` decimals when given (the slides use 2), else 6 significant digits."""
    return format_number(value, 6, decimals=digits, exact_integers=False)


def _print_table(cells: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        click.echo("  ".join(c.rjust(w) for c, w in zip(row, widths)).rstrip())


def _point(point: dict, digits: int | None = None) -> str:
    return ", ".join(f"{k} = {_number(v, digits)}" for k, v in point.items())


def _print_run(run, digits, rows) -> None:
    from gradviz.lectures.descend import iteration_table

    start = ", ".join(f"{k}={v:g}" for k, v in run.start.items())
    click.echo(f"f = {run.expression}   from {start}   {run.optimizer}, lr {run.lr:g}, "
               f"eps {run.eps:g}")
    click.echo("")
    _print_table(iteration_table(run, digits, rows))
    click.echo("")
    click.echo(run.message)
    if run.status in ("converged", "max-iter"):
        click.echo(f"minimum: {_point(run.minimum)}, f = {_number(run.value, None)}")


def _print_comparison(runs) -> None:
    names = runs[0].variables
    cells = [["optimizer", "lr", "iterations", "status", *names, "f"]]
    for r in runs:
        cells.append([r.optimizer, f"{r.lr:g}", str(len(r.steps)), r.status,
                      *(_number(r.minimum[n], None) for n in names), _number(r.value, None)])
    click.echo(f"f = {runs[0].expression}   from "
               f"{', '.join(f'{k}={v:g}' for k, v in runs[0].start.items())}   eps {runs[0].eps:g}")
    click.echo("")
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


@click.command()
@click.argument("expression")
@click.option("--from", "start", multiple=True, metavar="w=1",
              help="The starting point: a value for every variable.")
@click.option("--lr", type=float, help="Learning rate (default: the optimizer's; sgd 0.1).")
@click.option("--optimizer", type=click.Choice(OPTIMIZER_NAMES, case_sensitive=False),
              default="sgd", show_default=True, help="Update rule.")
@click.option("--eps", type=float, default=1e-6, show_default=True,
              help="Stop when |f(new w) - f(w)| < eps.")
@click.option("--max-iter", type=int, default=10_000, show_default=True,
              help="Give up after this many iterations.")
@click.option("--compare", metavar="sgd,momentum,adam",
              help="Run several optimizers from the same start (name:lr sets one's rate) and "
                   "compare them.")
@click.option("--decimals", type=click.IntRange(0, 15),
              help="Print numbers with this many decimal places (the slides use 2; default: 6 "
                   "significant digits).")
@click.option("--digits", "old_digits", type=click.IntRange(0, 15), hidden=True,
              help="Old name of --decimals.")
@click.option("--rows", type=click.IntRange(min=0), default=10, show_default=True,
              help="Rows shown at each end of a long table (0: every row).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--plot", metavar="FILE",
              help="Draw the path (.png, .svg, .pdf): on the curve for one variable, on a "
                   "contour plot for two.")
def descend(expression, start, lr, optimizer, eps, max_iter, compare, decimals, old_digits,
            rows, as_json, plot):
    """Minimize EXPRESSION by gradient descent and print every iteration.

    \b
    gradviz descend "w**2" --from w=1 --lr 0.1
    gradviz descend "w**2" --from w=1 --lr 1.1              (overshoots: diverges)
    gradviz descend "(1-x)**2 + 100*(y-x**2)**2" --from x=-1.5,y=2 \\
        --compare sgd:0.001,momentum:0.001,adam:0.05 --plot paths.png

    Exit code 1 when a single run does not converge (it oscillates, diverges, falls without
    bound, or reaches --max-iter).
    """
    from gradviz.lectures.descend import compare as compare_runs
    from gradviz.lectures.descend import descend as run_descent
    from gradviz.lectures.descend import parse_compare, plot_paths

    from gradviz.files import check_output_file

    digits = decimals if decimals is not None else old_digits
    check_output_file(plot, "--plot")
    point = parse_points(start)
    if plot is not None and not plot.lower().endswith((".png", ".svg", ".pdf")):
        raise GradvizError(f"--plot writes .png, .svg or .pdf files, not {plot!r}")
    if compare is not None:
        runs = compare_runs(expression, point, parse_compare(compare), lr=lr, eps=eps,
                            max_iter=max_iter)
        if plot is not None:
            plot_paths(runs, plot)
        if as_json:
            click.echo(json.dumps({"expression": expression,
                                   "runs": [r.to_dict() for r in runs]}))
        else:
            _print_comparison(runs)
            if plot is not None:
                click.echo(f"\npaths drawn in {plot}")
        return 0
    run = run_descent(expression, point, optimizer=optimizer.lower(), lr=lr, eps=eps,
                      max_iter=max_iter)
    if plot is not None:
        plot_paths([run], plot)
    if as_json:
        click.echo(json.dumps(run.to_dict()))
    else:
        _print_run(run, digits, rows)
        if plot is not None:
            click.echo(f"path drawn in {plot}")
    return 0 if run.converged else 1
