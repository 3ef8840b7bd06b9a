"""The `$ gradviz` commands of docs/interop.md, and of the MNIST section of docs/training.md, run
and print what the pages show (the checker of tests/test_tour.py: each shown line appears in the
output, in order; `...` skips lines). They run in a scratch directory holding a copy of
docs/models, with GRADVIZ_DATA pointing at an empty directory `data` (nothing is downloaded)."""
import re
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradviz.cli import cli
from test_tour import check_output, examples  # tests/ is on sys.path (no __init__.py)

pytest.importorskip("onnx", reason="the onnx package is not installed (gradviz[onnx])")

ROOT = Path(__file__).resolve().parent.parent
INTEROP = (ROOT / "docs" / "interop.md").read_text(encoding="utf-8")
TRAINING = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
MNIST = TRAINING[TRAINING.index("## LeNet-5 on MNIST"):TRAINING.index("## Flags")]
EXAMPLES = [("interop", e) for e in examples(INTEROP)] + [("training", e) for e in examples(MNIST)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("interop")
    shutil.copytree(ROOT / "docs" / "models", path / "docs" / "models")
    (path / "docs" / "img").mkdir()
    (path / "data").mkdir()
    return path


def test_the_pages_have_their_commands():
    assert len([e for page, e in EXAMPLES if page == "interop"]) >= 5
    assert len([e for page, e in EXAMPLES if page == "training"]) >= 2


@pytest.mark.parametrize("page,example", EXAMPLES,
                         ids=[f"{p}-line{e.line}" for p, e in EXAMPLES])
def test_docs_command(page, example, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("GRADVIZ_DATA", "data")
    monkeypatch.delenv("GRADVIZ_DATA_MIRROR", raising=False)
    result = CliRunner().invoke(cli, shlex.split(example.command)[1:])
    assert result.exit_code == example.exit_code, (
        f"{page}.md: {example.command}\nexit {result.exit_code}\n{result.output}")
    check_output(example.shown, result.output)
    for target in re.findall(r"docs/img/[\w.-]+\.svg", example.command):
        assert (workdir / target).stat().st_size > 1000, target
        assert (ROOT / target).is_file(), f"{target} is shown but not committed"
