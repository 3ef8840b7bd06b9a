"""Turning DOT source into SVG, PNG or PDF without asking the user to install anything.

The renderer is, in order: `$GRADVIZ_DOT` (a path to a `dot`-compatible program), a real
Graphviz `dot` on PATH, then `graphviz-pure` (a Rust port shipped as a wheel, a declared
dependency; it renders SVG and PNG but not PDF), looked up next to the running interpreter first.
DOT source itself never needs a program.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gradviz.errors import GradvizError

FORMATS = ("svg", "png", "pdf", "dot")
TIMEOUT_S = 120


@dataclass(frozen=True)
class Renderer:
    """A program that lays out DOT: its path, and whether it is a full Graphviz (PDF capable)."""

    path: str
    full: bool

    @property
    def name(self) -> str:
        return Path(self.path).name


def find_renderer() -> Renderer | None:
    """The renderer gradviz will use, or None when there is none at all."""
    override = os.environ.get("GRADVIZ_DOT")
    if override:
        found = shutil.which(override)
        if not found:
            raise GradvizError(f"$GRADVIZ_DOT is {override!r}, which is not an executable program")
        return Renderer(found, full="graphviz-pure" not in Path(found).name)
    dot = shutil.which("dot")
    if dot:
        return Renderer(dot, full=True)
    beside = Path(sys.executable).parent / "graphviz-pure"
    if beside.is_file() and os.access(beside, os.X_OK):
        return Renderer(str(beside), full=False)
    pure = shutil.which("graphviz-pure")
    if pure:
        return Renderer(pure, full=False)
    return None


def render(source: str, fmt: str) -> bytes:
    """Lay out DOT `source` and return the file contents in `fmt` (svg, png, pdf or dot)."""
    if fmt not in FORMATS:
        raise GradvizError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if fmt == "dot":
        return source.encode()
    renderer = find_renderer()
    if renderer is None:
        raise GradvizError("no Graphviz renderer found: install gradviz's dependency "
                           "graphviz-pure, or Graphviz, or write --format dot")
    if fmt == "pdf" and not renderer.full:
        raise GradvizError("PDF needs a full Graphviz `dot` (found only graphviz-pure): "
                           "write --format svg or png, or set $GRADVIZ_DOT")
    try:
        done = subprocess.run([renderer.path, f"-T{fmt}"], input=source.encode(),
                              capture_output=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise GradvizError(f"{renderer.name} took more than {TIMEOUT_S} s to lay out the "
                           "diagram (try --collapse or a smaller graph)") from None
    except OSError as exc:
        raise GradvizError(f"cannot run {renderer.path}: {exc.strerror}") from None
    if done.returncode != 0 or not done.stdout:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise GradvizError(f"{renderer.name} failed: {message[-1] if message else 'no output'}")
    return done.stdout


def format_for(path: str, fmt: str | None) -> str:
    """The output format: `fmt` when given, else the file's suffix (default svg)."""
    if fmt:
        return fmt.lower()
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    if suffix == "gv":
        return "dot"
    if suffix:
        raise GradvizError(f"cannot tell the format from {path!r}: use a .svg, .png, .pdf or "
                           ".dot name, or --format")
    return "svg"
