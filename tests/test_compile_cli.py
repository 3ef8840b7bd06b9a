"""`gradviz compile` and `gradviz bench` from the command line."""
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from gradviz.cli import cli


@pytest.fixture(autouse=True)
def kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GRADVIZ_CACHE", str(tmp_path_factory.getbasetemp() / "gradviz-cache"))


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, standalone_mode=False)


def test_emit_source_prints_one_fused_loop_for_the_sigmoid_neuron():
    result = invoke("compile", "sigmoid(w*x + b)", "--emit-source")
    assert result.exit_code == 0
    text = result.output
    assert "@njit(cache=True" in text and "def run(n," in text
    assert text.count("for i in range(n):") == 1      # value and 3 gradients in one loop
    assert "sigmoid_(" in text
    compile(text, "<generated>", "exec")               # it is valid Python


def test_kernel_listing_json():
    result = invoke("compile", "(x + y) * z", "--wrt", "x,z", "--json")
    report = json.loads(result.output)
    assert report["outputs"] == ["value", "d/dx", "d/dz"]
    assert [k["kind"] for k in report["kernels"]] == ["elementwise"]


def test_bad_expression_is_exit_code_2():
    done = subprocess.run([sys.executable, "-m", "gradviz", "compile", "x +", "--emit-source"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("gradviz: error:")
    done = subprocess.run([sys.executable, "-m", "gradviz", "compile", "x*y", "--wrt", "q"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "'q'" in done.stderr


def test_bench_json_shape():
    result = invoke("bench", "--model", "logreg", "--batch", "4", "--steps", "2", "--repeats",
                    "2", "--device", "cpu", "--json")
    report = json.loads(result.output)
    assert set(report) == {"model", "device", "batch", "samples_per_sec", "step_ms", "compile_s"}
    assert report["model"] == "logreg" and report["device"] == "cpu" and report["batch"] == 4
    assert report["samples_per_sec"] > 0 and report["step_ms"] > 0
