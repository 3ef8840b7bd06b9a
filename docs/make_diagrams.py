"""Redraw every picture of docs/diagrams.md from the commands and code shown there.

    python docs/make_diagrams.py          # from the repository root

Each `$ gradviz ...` line of a console block that writes under docs/img is run, and each python
block that renders under docs/img is executed (in one namespace, in order, as a reader would),
so the committed pictures are exactly what the page says produces them.
"""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "diagrams.md"
_BLOCK = re.compile(r"```(console|python)\n(.*?)```", re.S)


def commands(text: str) -> list[list[str]]:
    """The argument lists of the page's `$ gradviz ...` lines that write under docs/img."""
    found = []
    for kind, body in _BLOCK.findall(text):
        if kind != "console":
            continue
        for line in body.splitlines():
            if line.startswith("$ gradviz ") and "docs/img/" in line:
                found.append(shlex.split(line[2:])[1:])
    return found


def python_blocks(text: str) -> list[str]:
    """The page's python blocks that render under docs/img, in order (later ones use names the
    earlier ones define)."""
    return [body for kind, body in _BLOCK.findall(text) if kind == "python" and "docs/img/" in body]


def main() -> int:
    import os

    from click.testing import CliRunner

    from gradviz.cli import cli

    os.chdir(ROOT)
    text = PAGE.read_text(encoding="utf-8")
    for args in commands(text):
        result = CliRunner().invoke(cli, args)
        print(result.output.strip())
        if result.exit_code != 0:
            return result.exit_code
    namespace: dict = {"__name__": "diagrams_page"}
    for block in python_blocks(text):
        exec(compile(block, str(PAGE), "exec"), namespace)  # noqa: S102 - our own page's code
    print(f"ran {len(python_blocks(text))} python blocks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
