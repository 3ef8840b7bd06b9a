"""`gradviz perceptron`: the learning rule's trace, the slides' examples, the line trick."""
import json

import pytest
from click.testing import CliRunner

from gradviz.cli import cli


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_or_gate_converges_to_a_separating_line():
    result = run("perceptron", "--data", "or", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["converged"] and out["errors_per_epoch"][-1] == 0
    w, b = out["w"], out["b"]
    for (x1, x2), t in (((0, 0), 0), ((0, 1), 1), ((1, 0), 1), ((1, 1), 1)):
        assert (w[0] * x1 + w[1] * x2 + b >= 0) == bool(t)


def test_hagans_test_problem_gives_the_slides_weights():
    # seed 004: w = [1, -0.8] -> [2, 1.2] -> [3, -0.8] -> [3, 0.2], no bias
    result = run("perceptron", "--sample", "1,2:1", "--sample=-1,2:0", "--sample", "0,-1:0",
                 "--w0", "1,-0.8", "--no-bias", "--json")
    assert result.exit_code == 0, result.output
    history = json.loads(result.output)["weight_history"]
    assert history == [[1.0, -0.8], [2.0, 1.2], [3.0, -0.8], [3.0, pytest.approx(0.2)]]
    text = run("perceptron", "--sample", "1,2:1", "--sample=-1,2:0", "--sample", "0,-1:0",
               "--w0", "1,-0.8", "--no-bias").output
    assert "-0.6" in text and "[3, 0.2]" in text


def test_xor_never_converges_and_exits_1():
    result = run("perceptron", "--data", "xor", "--epochs", "20")
    assert result.exit_code == 1
    assert "not separated after 20 epoch(s)" in result.output


def test_moving_the_line_toward_a_point():
    # seed 000: 3x1 + 4x2 - 10 = 0, point (4, 5) on the wrong side, rate 0.1
    result = run("perceptron", "--line", "3,4,-10", "--point", "4,5", "--label", "0",
                 "--lr", "0.1")
    assert result.exit_code == 0, result.output
    assert "new line  2.6x1 + 3.5x2 - 10.1 = 0" in result.output
    same = run("perceptron", "--line", "3,4,-10", "--point", "4,5", "--label", "1")
    assert "the line stays" in same.output


@pytest.mark.parametrize("args, message", [
    ([], "give the training samples"),
    (["--data", "or", "--sample", "1,2:1"], "either --data or --sample"),
    (["--sample", "1,2:3"], "INPUTS:TARGET"),
    (["--sample", "1,2:1", "--sample", "1:0"], "same number of inputs"),
    (["--data", "or", "--w0", "1,2,3"], "w0 has 3 weights"),
    (["--line", "3,4,-10"], "--line needs --point and --label"),
    (["--data", "or", "--point", "1,2"], "--point and --label go with --line"),
    (["--data", "or", "--lr", "0"], "learning rate must be a positive number"),
])
def test_bad_input(args, message):
    result = run("perceptron", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
