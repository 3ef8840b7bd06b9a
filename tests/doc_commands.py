"""Run the `$ gradviz ...` examples of a markdown page and compare whole lines.

A fenced block whose first line starts with `$ gradviz ` holds one or more commands, each
followed by the output the page shows and, optionally, `[exit N]` (default 0). The output must
equal the shown lines exactly (trailing spaces aside); a line `...` alone stands for any number
of lines (for elided or machine-dependent text such as timings). A block preceded by
`<!-- not run: REASON -->` is skipped (a GPU, the network, a user's file, timing).
`python tests/doc_commands.py docs/verifying.md` rewrites the page's outputs from real runs
(check the diff before committing).
"""
from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_BLOCK = re.compile(r"(<!--\s*not run:[^>]*-->\s*\n)?```[a-z]*\n(\$ gradviz .*?)```", re.S)
_EXIT = re.compile(r"^\[exit (\d+)\]$")


@dataclass
class Example:
    page: str
    line: int
    command: str
    shown: list[str]
    exit_code: int
    span: tuple[int, int]  # where the block's text is in the page


def examples(page: Path) -> list[Example]:
    text = page.read_text(encoding="utf-8")
    found = []
    for block in _BLOCK.finditer(text):
        if block.group(1):
            continue
        start = text.count("\n", 0, block.start(2)) + 1
        current = None
        for offset, raw in enumerate(block.group(2).splitlines()):
            if raw.startswith("$ "):
                current = Example(page.name, start + offset, raw[2:].strip(), [], 0, block.span(2))
                found.append(current)
                continue
            m = _EXIT.match(raw.strip())
            if m:
                current.exit_code = int(m.group(1))
            else:
                current.shown.append(raw.rstrip())
        for e in found:
            while e.shown and not e.shown[-1]:
                e.shown.pop()
    return found


def run(command: str):
    from click.testing import CliRunner

    from gradviz.cli import cli

    args = shlex.split(command)
    assert args[0] == "gradviz"
    result = CliRunner().invoke(cli, args[1:])
    return result.exit_code, [line.rstrip() for line in result.output.rstrip("\n").splitlines()]


def matches(shown: list[str], got: list[str]) -> bool:
    """Whole lines, in order; `...` matches any number of lines."""
    if not shown:
        return not got
    if shown[0] == "...":
        return any(matches(shown[1:], got[i:]) for i in range(len(got) + 1))
    return bool(got) and got[0] == shown[0] and matches(shown[1:], got[1:])


def regenerate(page: Path) -> None:
    """Rewrite every run block of `page` with the real output (`...` lines are not kept)."""
    text = page.read_text(encoding="utf-8")
    blocks = {}
    for e in examples(page):
        code, got = run(e.command)
        part = [f"$ {e.command}", *got, f"[exit {code}]"]
        blocks.setdefault(e.span, []).append("\n".join(part))
    for span in sorted(blocks, reverse=True):
        text = text[:span[0]] + "\n\n".join(blocks[span]) + "\n" + text[span[1]:]
    page.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    for name in sys.argv[1:]:
        regenerate(ROOT / name)
