"""docs/diagrams.md: every picture it shows is committed and drawn by a command or code block on
the page, and those commands still run (docs/make_diagrams.py redraws them)."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradviz.cli import cli

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "diagrams.md"


def _maker():
    spec = importlib.util.spec_from_file_location("make_diagrams", ROOT / "docs" / "make_diagrams.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKER = _maker()
TEXT = PAGE.read_text(encoding="utf-8")
COMMANDS = MAKER.commands(TEXT)


def test_every_picture_on_the_page_is_committed_and_drawn_by_the_page():
    shown = set(re.findall(r"\]\((img/[\w./-]+\.svg)\)", TEXT))
    assert len(shown) >= 8
    made = {m for args in COMMANDS for a in args for m in re.findall(r"^docs/(img/\S+)", a)}
    made |= {m for block in MAKER.python_blocks(TEXT)
             for m in re.findall(r"\"docs/(img/[\w.-]+)\"", block)}
    for picture in shown:
        assert (ROOT / "docs" / picture).is_file(), picture
        assert picture in made or any(picture.startswith(m + "/") for m in made), picture


def test_the_maker_finds_the_lecture_examples():
    joined = [" ".join(args) for args in COMMANDS]
    assert any("(x+y)*z" in c for c in joined)
    assert any("1/(1+exp(-(w0*x0+w1*x1+w2)))" in c for c in joined)
    assert any("abs(4-(x*w+b))" in c for c in joined)
    assert any(c.startswith("steps ") for c in joined)
    assert all("docs/img/" in c for c in joined)


@pytest.mark.parametrize("args", COMMANDS, ids=[a[-1] for a in COMMANDS])
def test_page_command_runs(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs" / "img").mkdir(parents=True)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    target = tmp_path / args[args.index("-o") + 1]
    assert target.exists()
    committed = ROOT / args[args.index("-o") + 1]
    if target.is_file():
        # The committed picture says what the command draws now. Compared by the text it shows,
        # not byte for byte: coordinates depend on which Graphviz (dot, graphviz-pure) lays it out.
        assert _texts(target) == _texts(committed)


def _texts(svg: Path) -> list[str]:
    return sorted(re.findall(r"<text[^>]*>([^<]*)</text>", svg.read_text(encoding="utf-8")))
