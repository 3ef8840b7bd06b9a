"""Checking a hand-derived derivative: prove it with SymPy, or refute it with a counterexample.

The claim is a graph (parsed from text by the safe parser, or built in Python). The true
derivative is `sympy.diff` of the expression; SymPy tries to show the difference is zero. When
it cannot, the claim and autodiff's derivative are evaluated at points: first the user's point,
then small integers, then random reals. A point where they differ, and where finite differences
confirm autodiff, refutes the claim; if none is found the verdict is "inconclusive".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from gradviz.errors import GradvizError
from gradviz.core.ir import Node, toposort
from gradviz.core.text import expression_text

VERIFIED, REFUTED, INCONCLUSIVE = "verified", "refuted", "inconclusive"
POINTS = 40  # points tried before saying "inconclusive"
RTOL = 1e-7  # two exact derivatives computed in float64 differ by far less
ATOL = 1e-12  # rounding noise around a derivative that is 0


@dataclass
class Counterexample:
    """A point where the claim is wrong, with the claimed and the actual derivative there."""

    point: dict[str, float]
    claimed: float
    actual: float


@dataclass
class ClaimCheck:
    """The verdict on a claimed derivative ("verified", "refuted" or "inconclusive"), the true
    derivative (`derivative`, a simplified SymPy expression, `derivative_text` in the expression
    language), the counterexample when refuted, and how many points agreed."""

    verdict: str
    wrt: str
    derivative: object
    derivative_text: str
    claim_text: str
    counterexample: Counterexample | None = None
    points_agreed: int = 0

    def to_json(self) -> dict:
        """The `check --json` object."""
        ce = self.counterexample
        return {
            "verdict": self.verdict,
            "wrt": self.wrt,
            "claim": self.claim_text,
            "derivative": self.derivative_text,
            "counterexample": None if ce is None else {
                "point": ce.point, "claimed": ce.claimed, "actual": ce.actual},
            "points_agreed": self.points_agreed,
        }


def check_claim(expression: Node, wrt: Node, claim: Node, *,
                at: Mapping[str, float] | None = None, points: int = POINTS,
                seed: int = 0) -> ClaimCheck:
    """Check that `claim` is d expression / d wrt (both scalar graphs over the same variables).

    `at` (optional, {name: value}) is tried first and centres half of the random points.
    """
    from gradviz.verify import symbolic

    names = [n.name for n in toposort(expression) if n.op in ("var", "param")]
    extra = sorted({n.name for n in toposort(claim) if n.op in ("var", "param")} - set(names))
    if extra:
        raise GradvizError(f"the claim uses {', '.join(map(repr, extra))}, which the expression "
                           "does not")
    if wrt.op not in ("var", "param"):
        raise GradvizError("can only differentiate with respect to a variable")
    exact = symbolic.diff(symbolic.to_sympy(expression), symbolic.symbol(wrt.name))
    claimed = symbolic.to_sympy(claim)
    shown = symbolic.tidy(exact)
    result = ClaimCheck(VERIFIED, wrt.name, shown, symbolic.formula_text(shown),
                        expression_text(claim))
    if symbolic.is_zero(exact - claimed):
        return result

    from gradviz.core.autodiff import grad

    derivative = grad(expression, wrt)
    for point in _candidates(names, at, points, seed):
        actual, claim_value = _values(derivative, claim, point)
        if actual is None:
            continue
        if abs(actual - claim_value) <= ATOL + RTOL * max(abs(actual), abs(claim_value)) \
                or not _confirmed(expression, wrt, point, actual):
            result.points_agreed += 1
            continue
        result.verdict = REFUTED
        result.counterexample = Counterexample(point, claim_value, actual)
        return result
    result.verdict = INCONCLUSIVE
    return result


def check_claim_text(expression: str, wrt: str, claim: str,
                     at: Mapping[str, float] | None = None) -> ClaimCheck:
    """`check_claim` on strings: parse `expression` and the `claim` (sharing their variables)
    and check that the claim is d expression / d `wrt`, trying the point `at` first."""
    from gradviz.core.parser import parse
    from gradviz.core.points import require_known
    from gradviz.errors import ParseError

    variables: dict[str, Node] = {}
    output = parse(expression, variables)
    if wrt not in variables:
        raise GradvizError(f"--wrt {wrt!r}: the expression does not use it")
    at = dict(at or {})
    require_known(at, variables, "--at")
    try:
        claimed = parse(claim, dict(variables))
    except ParseError as exc:
        raise GradvizError(f"in the claim: {exc}") from None
    return check_claim(output, variables[wrt], claimed, at=at)


def _candidates(names: list[str], at: Mapping[str, float] | None, count: int, seed: int):
    from gradviz.verify.symbolic import sample_points

    if at and all(n in at for n in names):
        yield {n: float(at[n]) for n in names}
    rng = np.random.default_rng(seed)
    for _ in range(count // 4):  # small integers make counterexamples easy to check by hand
        yield {n: float(rng.integers(-3, 4)) for n in names}
    yield from sample_points(names, count - count // 4, seed=seed, around=at)


def _values(derivative: Node, claim: Node, point: dict[str, float]):
    """(autodiff's derivative, the claim) at `point`, or (None, None) where either is not finite."""
    from gradviz.core.interpret import evaluate

    values = evaluate([derivative, claim], point)
    actual, claimed = float(values[derivative]), float(values[claim])
    if not (math.isfinite(actual) and math.isfinite(claimed)):
        return None, None
    return actual, claimed


def _confirmed(expression: Node, wrt: Node, point: dict[str, float], actual: float) -> bool:
    """Whether finite differences agree with autodiff here (so the point is not on a kink)."""
    from gradviz.verify.finite_differences import agrees, numeric_grad

    fd = numeric_grad(expression, point, [wrt])[wrt]
    return agrees(actual, fd) is True
