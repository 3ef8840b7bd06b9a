"""`gradviz fit`: linear regression by gradient descent (the slides' height/weight example, or a
CSV of your own): coefficients, loss, predictions, and the cost of given coefficients."""
from __future__ import annotations

import json

import click

from gradviz.cli.common import parse_points
from gradviz.errors import GradvizError

OPTIMIZER_NAMES = ("sgd", "momentum", "rmsprop", "adam", "adamax", "adadelta")


def _values(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise GradvizError(f"--predict takes feature values separated by commas, got {text!r}") \
            from None


@click.command()
@click.argument("data")
@click.option("--target", metavar="COLUMN", help="The column to predict (CSV files).")
@click.option("--loss", type=click.Choice(["rmse", "mse", "half-mse"]), default="rmse",
              show_default=True, help="rmse (the slides'), mse, or half-mse = 1/(2n) sum err**2.")
@click.option("--optimizer", type=click.Choice(OPTIMIZER_NAMES, case_sensitive=False),
              default="sgd", show_default=True, help="Update rule.")
@click.option("--lr", type=float, help="Learning rate (default 0.5 for sgd on standardized "
                                       "features, else the optimizer's).")
@click.option("--eps", type=float, default=1e-12, show_default=True,
              help="Stop when the loss changes by less than eps.")
@click.option("--max-iter", type=int, default=10_000, show_default=True,
              help="Give up after this many iterations.")
@click.option("--from", "start", multiple=True, metavar="b=0,w=0",
              help="Starting coefficients (default all 0).")
@click.option("--raw", is_flag=True,
              help="Descend on the raw features instead of standardized ones (slow valleys).")
@click.option("--predict", metavar="X", help="Predict the target for these feature values.")
@click.option("--at", "at", multiple=True, metavar="b=3,w=0.2",
              help="Only compute the loss at these coefficients (no descent).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--plot", metavar="FILE", help="Draw the data and the fitted line (.png/.svg/.pdf).")
def fit(data, target, loss, optimizer, lr, eps, max_iter, start, raw, predict, at, as_json,
        plot):
    """Fit DATA's target as a line of its features, by gradient descent on the loss.

    DATA is `heights` (the slides' 200 people: weight from height) or a CSV file (name the
    column to predict with --target; every other column is a feature).

    \b
    gradviz fit heights --predict 174
    gradviz fit heights --at b=3,w=0.2          (the slides' first guess: RMSE 31.86411)
    gradviz fit my.csv --target price --plot fit.png
    """
    from gradviz.lectures.regression import cost, fit_linear, load_table, plot_fit, variable_names

    from gradviz.files import check_output_file

    check_output_file(plot, "--plot")
    table = load_table(data, target)
    if at:
        point = parse_points(at)
        value = cost(table, point, loss)
        if as_json:
            click.echo(json.dumps({"data": table.name, "loss_name": loss, "point": point,
                                   "loss": value}))
        else:
            click.echo(f"{table.name}: {len(table.y)} examples, {table.target} from "
                       f"{', '.join(table.feature_names)}")
            click.echo(f"{loss} at {', '.join(f'{k}={v:g}' for k, v in point.items())}: "
                       f"{value:.10g}")
        return 0
    if plot is not None and not plot.lower().endswith((".png", ".svg", ".pdf")):
        raise GradvizError(f"--plot writes .png, .svg or .pdf files, not {plot!r}")
    features = _values(predict)
    result = fit_linear(table, loss=loss, optimizer=optimizer.lower(), lr=lr, eps=eps,
                        max_iter=max_iter, start=parse_points(start) or None,
                        standardize=not raw)
    prediction = None if features is None else result.predict(features)
    if plot is not None:
        plot_fit(result, plot)
    if as_json:
        out = result.to_dict()
        if features is not None:
            out["prediction"] = {"features": features, "value": prediction}
        click.echo(json.dumps(out))
        return 0 if result.descent.converged else 1
    names = variable_names(table)
    run = result.descent
    click.echo(f"{table.name}: {len(table.y)} examples, {table.target} from "
               f"{', '.join(table.feature_names)}")
    click.echo(f"gradient descent ({run.optimizer}, lr {run.lr:g}) on the {loss} of "
               f"{' + '.join([names[0], *(f'{n}*{f}' for n, f in zip(names[1:], table.feature_names))])}"
               f"{'' if raw else ' (features standardized, coefficients converted back)'}")
    click.echo(run.message)
    click.echo("")
    click.echo(result.equation())
    click.echo(f"{loss} = {result.loss:.6g}")
    if prediction is not None:
        given = ", ".join(f"{f} = {v:g}" for f, v in zip(table.feature_names, features))
        click.echo(f"prediction for {given}: {table.target} = {prediction:.4f}")
    if plot is not None:
        click.echo(f"fit drawn in {plot}")
    return 0 if run.converged else 1
