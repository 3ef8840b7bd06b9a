"""Issue 17's CLI consistency: README's quick start and command table, summary's trainable
split, descend --decimals, bench -m / --device auto, YAML model files, compile --model."""
import json
import re
from pathlib import Path

from click.testing import CliRunner

from gradviz.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_readme_quick_start_installs_the_test_extra_and_lists_every_command():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Quick start")
    quick = text[start:text.index("\n## ", start + 1)]
    assert "pip install -e '.[test]'" in quick and "python -m pytest" in quick
    assert quick.index("pip install -e '.[test]'") < quick.index("python -m pytest")
    table = text[text.index("## Commands"):]
    listed = set(re.findall(r"^\| `gradviz (\S+)", table, re.M))
    assert listed == set(COMMANDS), set(COMMANDS) ^ listed


def test_summary_splits_trainable_and_non_trainable(tmp_path):
    result = _cli("summary", "-m", "lenet")
    assert "trainable params: 61,706  non-trainable params: 0" in result.output
    report = json.loads(_cli("summary", "-m", "mlp", "--input-shape", "4", "--hidden", "3",
                             "--json").output)
    assert report["trainable_params"] == report["total_params"] == 4 * 3 + 3 + 3 * 10 + 10
    run = tmp_path / "run"
    assert _cli("train", "-m", "logreg", "-d", "or", "--optimizer", "adam", "--epochs", 1,
                "--device", "numpy", "--checkpoint", run).exit_code == 0
    text = _cli("summary", "--checkpoint", run).output
    # m and v of a 2x2 weight and 2 biases, and the two beta powers
    assert "optimizer state (adam): 14 values in 6 tensor(s)" in text


def test_descend_decimals_and_the_old_name():
    new = _cli("descend", "w**2", "--from", "w=1", "--lr", "0.1", "--decimals", "2")
    old = _cli("descend", "w**2", "--from", "w=1", "--lr", "0.1", "--digits", "2")
    assert new.exit_code == 0 and new.output == old.output and " 0.64 " in new.output
    assert "--digits" not in _cli("descend", "--help").output  # hidden alias


def test_bench_takes_m_and_auto(monkeypatch):
    monkeypatch.setattr("gradviz.nn.step.resolve_device", lambda device: "numpy")
    result = _cli("bench", "-m", "perceptron", "--device", "auto", "--batch", 4, "--steps", 1,
                  "--repeats", 1, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["device"] == "numpy"


def test_yaml_model_files_work_out_of_the_box():
    result = _cli("summary", "-m", ROOT / "docs" / "models" / "slides-cnn.yaml")
    assert result.exit_code == 0, result.output
    assert "total" in result.output


def test_compile_model_warms_the_cache_then_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADVIZ_CACHE", str(tmp_path / "cache"))
    first = _cli("compile", "-m", "perceptron", "-d", "and")
    assert first.exit_code == 0, first.output
    assert "compiling the training step for the CPU (first run of this model" in first.output
    assert "training step compiled for cpu" in first.output
    again = _cli("compile", "-m", "perceptron", "-d", "and", "--json")
    done = json.loads(again.output.strip().splitlines()[-1])
    assert done["cached"] is True and done["compiled"] is False
    assert "compiling" not in again.output
    assert _cli("compile").exit_code == 2
