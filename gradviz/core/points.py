"""Checking a point ({name: value}) against the variables of an expression.

The messages name the CLI option that gives the values (`--at`, `--from`), since that is where a
user of the command line has to fix them; Python callers get the same one-line `GradvizError`.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from gradviz.errors import GradvizError


def require_values(variables: Iterable[str], point: Mapping[str, float], option: str = "--at",
                   noun: str = "value") -> None:
    """Every variable of the expression has a value, and every given value a variable (the
    messages name the `option` that gives them)."""
    variables = list(variables)
    missing = [name for name in variables if name not in point]
    if missing:
        raise GradvizError(f"no {noun} for {', '.join(repr(m) for m in missing)} "
                           f"(give it with {option} {missing[0]}=...)")
    require_known(point, variables, option)


def require_known(names: Iterable[str], variables: Iterable[str], option: str) -> None:
    """Every name in `names` is a variable of the expression."""
    variables = set(variables)
    unknown = [name for name in names if name not in variables]
    if unknown:
        raise GradvizError(f"{option} names {', '.join(repr(u) for u in unknown)}, which the "
                           "expression does not use")
