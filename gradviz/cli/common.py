"""Helpers shared by the CLI commands: reading `--at`/`--wrt`, parsing expressions, and a
command class for expressions that start with a minus sign."""
from __future__ import annotations

import math
import re

import click

from gradviz.core.points import require_values  # noqa: F401 - used by the commands
from gradviz.errors import GradvizError

_ASSIGNMENT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\S.*?)\s*$")


def parse_point(text: str | None) -> dict[str, float]:
    """`"a=1,b=2.5"` -> {"a": 1.0, "b": 2.5}. Several `--at` values may be joined by commas."""
    point: dict[str, float] = {}
    if not text:
        return point
    for item in text.split(","):
        if not item.strip():
            continue
        match = _ASSIGNMENT.match(item)
        if not match:
            raise GradvizError(f"--at expects name=value pairs separated by commas, got {item.strip()!r}")
        name, raw = match.groups()
        try:
            value = float(raw)
        except ValueError:
            raise GradvizError(f"--at {name}: {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise GradvizError(f"--at {name}: value must be finite, got {raw!r}")
        if name in point:
            raise GradvizError(f"--at gives {name!r} twice")
        point[name] = value
    return point


def parse_points(values: tuple[str, ...] | list[str] | str | None) -> dict[str, float]:
    """Merge one or more `--at` option values into one point."""
    if values is None:
        return {}
    if isinstance(values, str):
        values = [values]
    merged: dict[str, float] = {}
    for text in values:
        for name, value in parse_point(text).items():
            if name in merged:
                raise GradvizError(f"--at gives {name!r} twice")
            merged[name] = value
    return merged


def parse_names(text: str | None) -> list[str]:
    """`"a,b"` -> ["a", "b"] (for --wrt)."""
    if not text:
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n):
            raise GradvizError(f"--wrt: {n!r} is not a variable name")
    return names


def load_expression(text: str):
    """Parse an expression string; returns (output node, {name: variable node})."""
    from gradviz.core.parser import parse

    variables: dict = {}
    output = parse(text, variables)
    return output, variables


class ExpressionCommand(click.Command):
    """A command whose EXPRESSION may start with a minus sign ("-x**2"): click would take it for
    an option. A word that starts with one '-', is not one of the command's options and is not
    an option's value, is moved after '--' (the end of the options), so click reads it as the
    argument; a mistyped long option (--jsn) is still "No such option"."""

    def parse_args(self, ctx, args):
        params = self.get_params(ctx)
        known = {name for p in params for name in p.opts + p.secondary_opts}
        flags = {name for p in params if isinstance(p, click.Option) and (p.is_flag or p.count)
                 for name in p.opts + p.secondary_opts}
        for i, word in enumerate(args):
            if word == "--":  # the user ended the options already
                break
            if word.startswith("-") and not word.startswith("--") and word not in known \
                    and (i == 0 or args[i - 1] not in known or args[i - 1] in flags):
                args = [*args[:i], *args[i + 1:], "--", word]
                break
        return super().parse_args(ctx, args)
