"""Gradient descent on expressions: the slides' w**2 table, stopping rules, optimizers, the CLI."""
import json
import math

import pytest
from click.testing import CliRunner

from gradviz.cli import cli
from gradviz.lectures.descend import compare, descend, parse_compare
from gradviz.errors import GradvizError


def run(*args):
    return CliRunner().invoke(cli, list(args))


# The slides' table for f(w) = w**2 from w = 1, learning rate 0.1 (seed 001; their iteration
# column starts at 2): w0, f(w0), derivative, w1, f(w1), |f(w1) - f(w0)|, rounded to 2 decimals.
SLIDES_ROWS = [
    (1.00, 1.00, 2.00, 0.80, 0.64, 0.36),
    (0.80, 0.64, 1.60, 0.64, 0.41, 0.23),
    (0.64, 0.41, 1.28, 0.51, 0.26, 0.15),
]


def test_w_squared_reproduces_the_slides_table():
    result = descend("w**2", {"w": 1.0}, lr=0.1)
    for step, want in zip(result.steps, SLIDES_ROWS):
        got = (step.point["w"], step.value, step.gradient["w"], step.new_point["w"],
               step.new_value, step.change)
        assert [round(v, 2) for v in got] == list(want)
    assert [s.new_point["w"] for s in result.steps[:3]] == pytest.approx([0.8, 0.64, 0.512])
    # w_k = 0.8**k exactly; it stops at the first |Δf| = 0.36 * 0.64**(k-1) below 1e-6
    k = len(result.steps)
    assert 0.36 * 0.64 ** (k - 1) < 1e-6 <= 0.36 * 0.64 ** (k - 2)
    assert result.status == "converged"
    assert result.minimum["w"] == pytest.approx(0.8 ** k)


def test_cli_table_with_the_slides_rounding():
    result = run("descend", "w**2", "--from", "w=1", "--lr", "0.1", "--digits", "2")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("iteration"))
    assert header.split() == ["iteration", "w", "f(w)", "df/dw", "new", "w", "f(new", "w)",
                              "|Δf|"]
    rows = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert rows[0] == ["1", "1.00", "1.00", "2.00", "0.80", "0.64", "0.36"]
    assert rows[1] == ["2", "0.80", "0.64", "1.60", "0.64", "0.41", "0.23"]
    assert rows[2] == ["3", "0.64", "0.41", "1.28", "0.51", "0.26", "0.15"]
    assert "converged after 30 iterations" in result.output


def test_long_tables_elide_the_middle_unless_asked():
    short = run("descend", "w**2", "--from", "w=1", "--rows", "2")
    rows = [line.split()[0] for line in short.output.splitlines()
            if line.strip()[:1].isdigit() or line.strip().startswith(":")]
    assert rows == ["1", "2", ":", "29", "30"]
    full = run("descend", "w**2", "--from", "w=1", "--rows", "0")
    assert sum(1 for line in full.output.splitlines() if line.strip()[:1].isdigit()) == 30


def test_too_large_a_rate_diverges_with_a_message_and_exit_1():
    result = descend("w**2", {"w": 1.0}, lr=1.1)
    assert result.status == "diverged"
    assert "too large" in result.message and "1.1" in result.message
    # each step multiplies w by -1.2: it overshoots to the other side, further out
    ws = [s.new_point["w"] for s in result.steps[:3]]
    assert ws == pytest.approx([-1.2, 1.44, -1.728])
    cli_result = run("descend", "w**2", "--from", "w=1", "--lr", "1.1")
    assert cli_result.exit_code == 1
    assert "diverged" in cli_result.output and "Traceback" not in cli_result.output


def test_rate_one_jumps_between_plus_and_minus_one_and_is_not_called_converged():
    result = descend("w**2", {"w": 1.0}, lr=1.0)
    assert result.status == "oscillating"
    assert result.steps[0].new_point["w"] == -1.0
    assert "overshooting" in result.message


def test_a_flat_bowl_converges_by_the_rule_and_is_not_called_oscillating():
    # the gradient hardly changes, but it never reverses: nothing jumped across a valley
    result = descend("1e-8*w**2", {"w": 1.0}, lr=0.1)
    assert result.status == "converged" and len(result.steps) == 1


def test_momentum_circling_into_the_minimum_converges():
    result = descend("x**2 + 10*y**2", {"x": -4.0, "y": 1.0}, optimizer="momentum", lr=0.02)
    assert result.status == "converged"


def test_overflow_to_inf_is_divergence_not_an_error():
    result = descend("exp(w**2)", {"w": 3.0}, lr=1.0, max_iter=100)
    assert result.status == "diverged"
    assert json.dumps(result.to_dict())  # inf/nan become null, so JSON stays valid


def test_unbounded_below_and_max_iter():
    assert descend("w", {"w": 0.0}, lr=1e9).status == "unbounded"
    slow = descend("w**2", {"w": 1.0}, lr=1e-4, max_iter=50)
    assert slow.status == "max-iter" and len(slow.steps) == 50
    assert "--max-iter" in slow.message


def test_start_at_the_minimum_stops_at_once():
    result = descend("(x-3)**2 + (y+1)**2", {"x": 3.0, "y": -1.0})
    assert result.status == "converged" and len(result.steps) == 1
    assert result.minimum == {"x": 3.0, "y": -1.0}


@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.1), ("momentum", 0.05), ("rmsprop", 0.01),
                                           ("adam", 0.1), ("adamax", 0.1), ("adadelta", 1.0)])
def test_every_optimizer_finds_the_minimum_of_a_bowl(optimizer, lr):
    result = descend("(x-1)**2 + 2*(y+2)**2", {"x": -1.0, "y": 1.0}, optimizer=optimizer, lr=lr,
                     eps=1e-10, max_iter=20_000)
    assert result.status == "converged", result.message
    assert result.minimum["x"] == pytest.approx(1.0, abs=0.05)
    assert result.minimum["y"] == pytest.approx(-2.0, abs=0.05)


def test_momentum_update_is_the_heavy_ball_rule():
    # v1 = g0 = 2; w1 = 1 - 0.1*2 = 0.8; v2 = 0.9*2 + 1.6 = 3.4; w2 = 0.8 - 0.34 = 0.46
    result = descend("w**2", {"w": 1.0}, optimizer="momentum", lr=0.1)
    assert [s.new_point["w"] for s in result.steps[:2]] == pytest.approx([0.8, 0.46])


def test_compare_parses_rates_and_runs_each_optimizer():
    assert parse_compare("sgd, momentum:0.01,adam") == [("sgd", None), ("momentum", 0.01),
                                                        ("adam", None)]
    runs = compare("x**2 + 10*y**2", {"x": -4.0, "y": 1.0},
                   parse_compare("sgd:0.05,momentum:0.02,adam:0.3"))
    assert [r.optimizer for r in runs] == ["sgd", "momentum", "adam"]
    assert [r.lr for r in runs] == [0.05, 0.02, 0.3]
    assert all(r.converged for r in runs)
    with pytest.raises(GradvizError, match="unknown optimizer"):
        parse_compare("sgd,nesterov")


def test_json_object():
    result = run("descend", "w**2", "--from", "w=1", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["status"] == "converged" and out["optimizer"] == "sgd" and out["lr"] == 0.1
    assert out["iterations"] == len(out["steps"]) == 30
    assert out["steps"][0] == {"iteration": 1, "point": {"w": 1.0}, "value": 1.0,
                               "gradient": {"w": 2.0}, "new_point": {"w": 0.8},
                               "new_value": pytest.approx(0.64), "change": pytest.approx(0.36)}
    assert out["minimum"]["point"]["w"] == pytest.approx(0.8 ** 30)


@pytest.mark.parametrize("args, message", [
    (["w**2"], "no starting value for 'w'"),
    (["w**2", "--from", "w=1,v=2"], "'v', which the expression does not use"),
    (["w**2", "--from", "w=1", "--lr", "-1"], "--lr must be a positive number"),
    (["w**2", "--from", "w=1", "--eps", "0"], "--eps must be a positive number"),
    (["w**2", "--from", "w=1", "--max-iter", "0"], "--max-iter must be a positive integer"),
    (["w**", "--from", "w=1"], "syntax error"),
    (["3", "--from", "w=1"], "no variables"),
    (["log(w)", "--from", "w=-1"], "not defined at the start"),
    (["w**2", "--from", "w=1", "--plot", "out.gif"], "--plot writes .png, .svg or .pdf"),
    (["x*y*z", "--from", "x=1,y=1,z=1", "--plot", "out.png"], "one or two variables"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("descend", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("expr, start, extra", [
    ("w**2 - 2*w", "w=-1", ["--lr", "0.3"]),
    ("x**2 + 10*y**2", "x=-4,y=1", ["--compare", "sgd:0.05,momentum:0.02,adam:0.3"]),
    ("w**2", "w=1", ["--lr", "1.05"]),
])
def test_plots_are_written(expr, start, extra, tmp_path):
    target = tmp_path / "path.png"
    result = run("descend", expr, "--from", start, *extra, "--plot", str(target))
    assert result.exit_code in (0, 1), result.output
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_descend_on_a_node_with_its_variables():
    import gradviz as gv

    w = gv.var("w")
    result = descend((w - 2) * (w - 2), {"w": 0.0}, variables={"w": w}, lr=0.25)
    assert result.converged and result.minimum["w"] == pytest.approx(2.0, abs=1e-3)
    assert math.isclose(result.steps[0].gradient["w"], -4.0)


def test_the_iteration_table_keeps_both_ends_of_a_long_run():
    from gradviz.lectures.descend import descend as run_descent, iteration_table

    run = run_descent("w**2", {"w": 1.0}, lr=0.1)
    cells = iteration_table(run, digits=2, rows=2)
    assert cells[0][:3] == ["iteration", "w", "f(w)"]
    assert cells[1][:3] == ["1", "1.00", "1.00"] and cells[3] == [":"] * len(cells[0])
    assert len(cells) == 6 and cells[-1][0] == str(len(run.steps))
