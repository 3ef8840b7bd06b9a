"""Run the `$ gradviz ...` examples of the markdown pages and compare whole lines.

Every fenced block of README.md and docs/*.md whose first line starts with `$ ` and that holds a
`$ gradviz` command is run. A block holds one or more commands, each followed by the output the
page shows and, optionally, `[exit N]`; `<!-- exit N -->` on the line before a block sets the
status of all its commands (default 0). The output must equal the shown lines, whole line by
whole line (trailing spaces aside), with one marker for elided text, `...`:

- a line that is `...` alone stands for any number of lines (left out, or machine-dependent);
- `...` inside a line stands for any text within that line (`2 epoch(s) in ... s`: a timing).

`<!-- not run: REASON -->` on the line before a block skips it (a GPU, the network, a user's
file, a timing that cannot be elided). A page's commands run in order in one scratch directory
holding a copy of docs/models, so a later command can use what an earlier one wrote (a
checkpoint), with `GRADVIZ_DATA=data` (an empty directory: nothing is downloaded). Besides
`gradviz`, a command may be `ls [DIR]`, and a gradviz command may be piped into `tail -N` or
`head -N`; anything else is an error that asks for a not-run mark.

`python tests/doc_commands.py docs/verifying.md` rewrites a page's outputs from real runs (check
the diff before committing: elisions are not kept).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"(?:<!--\s*(not run:[^>]*|exit\s+\d+)\s*-->\s*\n)?```[\w-]*\n(\$ .*?)```",
                    re.S)
_EXIT = re.compile(r"^\[exit (\d+)\]$")
ENV = {"GRADVIZ_DATA": "data"}


@dataclass
class Example:
    page: str
    line: int
    command: str
    shown: list[str]
    exit_code: int
    span: tuple[int, int]  # where the block's text is in the page
    index: int = 0  # its place among the page's run examples


def examples(page: Path) -> list[Example]:
    """The commands of `page`'s run blocks, with what the page shows under each."""
    text = page.read_text(encoding="utf-8")
    name = page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else page.name
    found = []
    for block in _BLOCK.finditer(text):
        mark, body = block.group(1) or "", block.group(2)
        if mark.startswith("not run") or not re.search(r"^\$ gradviz ", body, re.M):
            continue
        code = int(mark.split()[1]) if mark.startswith("exit") else 0
        start = text.count("\n", 0, block.start(2)) + 1
        current = []
        for offset, raw in enumerate(body.splitlines()):
            if raw.startswith("$ "):
                current.append(Example(name, start + offset, raw[2:].strip(), [], code,
                                       block.span(2)))
                continue
            m = _EXIT.match(raw.strip())
            if m:
                current[-1].exit_code = int(m.group(1))
            else:
                current[-1].shown.append(raw.rstrip())
        for e in current:
            while e.shown and not e.shown[-1]:
                e.shown.pop()
        found += current
    for i, e in enumerate(found):
        e.index = i
    return found


def all_examples(pages=PAGES) -> list[Example]:
    return [e for page in pages for e in examples(ROOT / page)]


def scratch(path: Path) -> Path:
    """Make `path` a directory to run a page's commands in: docs/models copied, docs/img and
    an empty data directory."""
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "docs" / "models").exists():
        shutil.copytree(ROOT / "docs" / "models", path / "docs" / "models")
    (path / "docs" / "img").mkdir(parents=True, exist_ok=True)
    (path / "data").mkdir(exist_ok=True)
    return path


def run(command: str):
    """(exit status, output lines) of one command, in the current directory."""
    from click.testing import CliRunner

    from gradviz.cli import cli

    command, _, pipe = command.partition(" | ")
    args = shlex.split(command)
    if args[0] == "ls":
        where = Path(args[1] if len(args) > 1 else ".")
        if not where.is_dir():
            return 2, [f"ls: cannot access '{where}': No such file or directory"]
        return 0, sorted(p.name for p in where.iterdir())
    if args[0] != "gradviz":
        raise ValueError(f"the doc runner runs gradviz and ls, not {args[0]!r}: mark the block "
                         "<!-- not run: REASON -->")
    result = CliRunner().invoke(cli, args[1:], env=ENV)
    lines = [line.rstrip() for line in result.output.rstrip("\n").splitlines()]
    if pipe:
        tool, *rest = shlex.split(pipe)
        if tool not in ("tail", "head") or len(rest) != 1 or not re.fullmatch(r"-\d+", rest[0]):
            raise ValueError(f"the doc runner pipes into tail -N or head -N, not {pipe!r}")
        n = int(rest[0][1:])
        lines = lines[-n:] if tool == "tail" and n else lines[:n] if tool == "head" else []
    return result.exit_code, lines


def line_matches(shown: str, got: str) -> bool:
    """One line: equal, where each `...` in `shown` stands for any text."""
    if "..." not in shown:
        return shown == got
    parts = [re.escape(p) for p in shown.split("...")]
    return re.fullmatch(".*".join(parts), got, re.S) is not None


def matches(shown: list[str], got: list[str]) -> bool:
    """Whole lines, in order; a `...` line matches any number of lines (iterative, so long
    outputs do not recurse)."""
    # positions in `got` reachable after matching shown[:i]
    reach = {0}
    for want in shown:
        if want == "...":
            reach = set(range(min(reach), len(got) + 1)) if reach else set()
        else:
            reach = {j + 1 for j in reach if j < len(got) and line_matches(want, got[j])}
        if not reach:
            return False
    return len(got) in reach


def regenerate(page: Path) -> None:
    """Rewrite every run block of `page` with the real output (`...` lines are not kept)."""
    import tempfile

    text = page.read_text(encoding="utf-8")
    blocks = {}
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(scratch(Path(tmp)))
        try:
            for e in examples(page):
                code, got = run(e.command)
                part = [f"$ {e.command}", *got, f"[exit {code}]"]
                blocks.setdefault(e.span, []).append("\n".join(part))
        finally:
            os.chdir(here)
    for span in sorted(blocks, reverse=True):
        text = text[:span[0]] + "\n\n".join(blocks[span]) + "\n" + text[span[1]:]
    page.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    for name in sys.argv[1:]:
        regenerate(ROOT / name)
