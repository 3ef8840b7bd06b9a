"""Every command in docs/tour.md runs, succeeds (or exits as the tour says) and prints what the
tour shows under it, so the tour never goes stale.

A ```console block holds `$ gradviz ...` lines, each followed by the output the tour shows: every
shown line (whitespace collapsed) must appear in the command's output, in order; a `...` line
stands for lines left out. `<!-- exit N -->` right before a block sets its expected exit status.
Commands run in a scratch directory holding a copy of docs/models, so the tour's pictures are
written there, not over the committed ones.
"""
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradviz.cli import cli

ROOT = Path(__file__).resolve().parent.parent
TOUR = ROOT / "docs" / "tour.md"
_BLOCK = re.compile(r"(?:<!--\s*exit\s+(\d+)\s*-->\s*\n)?```console\n(.*?)```", re.S)


@dataclass
class Example:
    line: int
    command: str
    shown: list[str]
    exit_code: int


def examples(text: str) -> list[Example]:
    """The `$ gradviz` commands of a markdown text with the output shown under each."""
    found = []
    for block in _BLOCK.finditer(text):
        code = int(block.group(1) or 0)
        start = text.count("\n", 0, block.start(2)) + 1
        current = None
        for offset, raw in enumerate(block.group(2).splitlines()):
            if raw.startswith("$ "):
                current = Example(start + offset, raw[2:].strip(), [], code)
                found.append(current)
            elif current is None:
                raise AssertionError(f"tour.md line {start + offset}: output before a command")
            else:
                current.shown.append(raw)
    return found


def _squash(line: str) -> str:
    return " ".join(line.split())


def check_output(shown: list[str], output: str) -> None:
    """Each shown line appears as (part of) an output line, in order; `...` skips lines."""
    lines = [_squash(line) for line in output.splitlines()]
    at = 0
    for want in (_squash(s) for s in shown):
        if want in ("", "..."):
            continue
        for i in range(at, len(lines)):
            if want in lines[i]:
                at = i + 1
                break
        else:
            raise AssertionError(f"the tour shows {want!r}, which is not in the output "
                                 f"(after line {at}):\n{output}")


EXAMPLES = examples(TOUR.read_text(encoding="utf-8"))


def test_the_tour_has_its_commands():
    assert len(EXAMPLES) >= 30
    assert all(e.command.startswith("gradviz ") for e in EXAMPLES)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tour")
    shutil.copytree(ROOT / "docs" / "models", path / "docs" / "models")
    (path / "docs" / "img").mkdir()
    return path


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"line{e.line}" for e in EXAMPLES])
def test_tour_command(example, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    args = shlex.split(example.command)[1:]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == example.exit_code, (
        f"tour.md line {example.line}: {example.command}\nexit {result.exit_code}\n"
        f"{result.output}")
    check_output(example.shown, result.output)
    for target in re.findall(r"docs/img/[\w.-]+\.(?:png|svg)", example.command):
        assert (workdir / target).stat().st_size > 1000, target


def test_every_picture_the_tour_shows_is_committed_and_drawn_by_a_command():
    text = TOUR.read_text(encoding="utf-8")
    shown = set(re.findall(r"\]\((img/[\w.-]+)\)", text))
    assert shown
    drawn = {m for e in EXAMPLES for m in re.findall(r"docs/(img/[\w.-]+)", e.command)}
    assert shown <= drawn
    for picture in shown:
        assert (ROOT / "docs" / picture).is_file(), picture


def test_the_checker_catches_a_stale_line():
    with pytest.raises(AssertionError, match="not in the output"):
        check_output(["f = 5.75"], "f = 5.7\n")
    check_output(["f = 2", "...", "g  =  3"], "f = 2\nx\ng = 3 (ok)\n")
    with pytest.raises(AssertionError):
        check_output(["g = 3", "f = 2"], "f = 2\ng = 3\n")  # order matters
