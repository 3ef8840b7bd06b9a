"""Every script in examples/ runs as a user would run it (a child process, in a temporary
directory), quickly, and prints what its docstring promises."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _run(script: str, *args: str, cwd: Path, timeout: float = 120) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_every_example_is_tested():
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    tested = {"handout.py", "check_custom_gradient.py", "train_lenet.py",
              "compare_optimizers.py"}
    assert scripts == tested


def test_handout(tmp_path):
    out = _run("handout.py", "out", cwd=tmp_path)
    assert "(x+y)*z = -12; df/dx = -4, df/dy = -4, df/dz = 3" in out
    assert "neuron = 0.7311" in out and "w0 -0.1966" in out and "x1 -0.5898" in out
    for name in ("xyz.svg", "xyz.png", "neuron.svg", "backprop-xyz/index.html",
                 "backprop-xyz/step-000.svg"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    assert (tmp_path / "out" / "xyz.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_check_custom_gradient(tmp_path):
    out = _run("check_custom_gradient.py", cwd=tmp_path)
    assert "dL/dp = tanh(p - t): verified" in out
    assert "dL/dp = 1/cosh(p - t): refuted" in out
    assert "backprop, finite differences and SymPy agree" in out
    assert "every node's local derivative checks out" in out
    assert out.rstrip().endswith("all checks as expected")


def test_train_lenet(tmp_path):
    out = _run("train_lenet.py", "out", "3", cwd=tmp_path)
    assert "total" in out and "61,706" in out  # the layer table
    losses = [float(line.split()[3].rstrip(",")) for line in out.splitlines()
              if line.startswith("step ")]
    assert len(losses) == 3 and all(0 < v < 10 for v in losses)
    svg = (tmp_path / "out" / "lenet-step.svg").read_text()
    assert "<svg" in svg
    assert (tmp_path / "out" / "lenet-step.png").stat().st_size > 0


def test_compare_optimizers(tmp_path):
    out = _run("compare_optimizers.py", "out", cwd=tmp_path)
    for name in ("sgd", "momentum", "rmsprop", "adam"):
        assert any(line.startswith(name) and "converged" in line for line in out.splitlines())
    assert (tmp_path / "out" / "paths.png").stat().st_size > 0


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_examples_explain_themselves(script):
    text = (EXAMPLES / script).read_text()
    assert text.startswith('"""') and "python examples/" in text
