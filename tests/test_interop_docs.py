"""docs/interop.md and the MNIST section of docs/training.md: their `$ gradviz` commands are run
and compared whole line by whole line by tests/test_docs_run.py (with every other page's, in a
scratch directory holding a copy of docs/models, GRADVIZ_DATA an empty directory `data`, so
nothing is downloaded). Here: the pages keep their commands, and every picture a command draws
is committed."""
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from doc_commands import ROOT, examples  # noqa: E402

pytest.importorskip("onnx", reason="the onnx package is not installed (gradviz[onnx])")

INTEROP = examples(ROOT / "docs" / "interop.md")
TRAINING = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
MNIST = TRAINING[TRAINING.index("## LeNet-5 on MNIST"):TRAINING.index("## Flags")]


def test_the_pages_have_their_commands():
    assert len(INTEROP) >= 5
    assert len(re.findall(r"^\$ gradviz ", MNIST, re.M)) >= 2


def test_pictures_the_commands_draw_are_committed():
    targets = [t for e in INTEROP for t in re.findall(r"docs/img/[\w.-]+\.svg", e.command)]
    assert targets
    for target in targets:
        assert (ROOT / target).is_file(), f"{target} is shown but not committed"
