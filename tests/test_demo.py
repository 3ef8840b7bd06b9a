"""`gradviz demo`: every lecture step ends as expected and the pictures are written."""
from click.testing import CliRunner

from gradviz.cli import cli


def test_demo_quick(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--quick", "-o", str(out)])
    assert result.exit_code == 0, result.output[-2000:]
    assert "demo done" in result.output
    for text in ("f = -12", "-0.1966", "verified", "refuted", "[3, 0.2]",
                 "2.6x1 + 3.5x2 - 10.1 = 0", "61,706", "test accuracy 100.00%"):
        assert text in result.output, text
    for name in ("circuit-xyz.svg", "circuit-neuron.svg", "backprop-steps/index.html",
                 "xor-regions.png"):
        assert (out / name).stat().st_size > 0, name


def test_demo_summarises_epochs_unless_verbose(tmp_path):
    short = CliRunner().invoke(cli, ["demo", "--quick", "-o", str(tmp_path / "a")])
    assert "epoch  10/100" in short.output and "epoch  11/100" not in short.output
    assert "epoch 100/100" in short.output
    assert len(short.output.splitlines()) < 200
    full = CliRunner().invoke(cli, ["demo", "--quick", "--verbose", "-o", str(tmp_path / "b")])
    assert full.exit_code == 0 and "epoch  11/100" in full.output
