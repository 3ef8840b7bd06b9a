"""Checking a hand-derived derivative: refute it with a counterexample, or prove it with SymPy.

The claim is a graph (parsed from text by the safe parser, or built in Python). The search for
a counterexample comes first and is adversarial: autodiff's derivative and the claim are
compared at the user's point, small integers, every region of every piecewise part (the
breakpoints of abs, max, min, step, relu, sign, ... found by scanning their arguments along
each variable), magnitudes from 1e-3 to 1e4 of both signs, random reals, and finally a local
search from the worst points for the largest difference. A point refutes the claim only where
finite differences confirm autodiff (so never at a kink); points where they cannot are not
counted as agreeing.

Then SymPy tries to show that the claim minus `sympy.diff` of the expression is zero: as is,
with the kinked functions rewritten as Piecewise (region by region), and on the expression's
domain (a variable whose defined points all lie beyond a boundary c is written c + u with u > 0,
which lets sqrt(x-1)*sqrt(x+1) meet sqrt(x**2-1)). Each SymPy attempt runs in a child process
killed at the time bound (`timeout`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from gradviz.errors import GradvizError
from gradviz.core.ir import Node, toposort
from gradviz.core.text import expression_text

VERIFIED, REFUTED, INCONCLUSIVE = "verified", "refuted", "inconclusive"
POINTS = 40  # random points (near the --at point and in [-3, 3]) on top of the structured ones
RTOL = 1e-7  # two exact derivatives computed in float64 differ by far less
ATOL = 1e-12  # rounding noise around a derivative that is 0
MAGNITUDES = [s * 10.0 ** k for k in range(-3, 5) for s in (1.0, -1.0)]  # 1e-3 .. 1e4
SEARCH_STEPS = 60  # evaluations of the local search for the largest difference


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
    language), the counterexample when refuted, how many points agreed (finite differences
    confirming autodiff there), how many differed where finite differences could not confirm
    autodiff (`points_unconfirmed`: kinks), how many were `points_tried` in all, what kinds of
    points (`tried`), and `sympy_note` when SymPy gave up."""

    verdict: str
    wrt: str
    derivative: object
    derivative_text: str
    claim_text: str
    counterexample: Counterexample | None = None
    points_agreed: int = 0
    points_unconfirmed: int = 0
    points_tried: int = 0
    tried: list[str] = field(default_factory=list)
    sympy_note: str | None = None

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
            "points_unconfirmed": self.points_unconfirmed,
            "points_tried": self.points_tried,
            "tried": self.tried,
            "sympy": self.sympy_note or "ran",
        }

    def _repr_html_(self) -> str:
        """In a notebook: the verdict as an HTML table (see gradviz.notebook)."""
        from gradviz.notebook import claim_html

        return claim_html(self)


def check_claim(expression: Node, wrt: Node, claim: Node, *,
                at: Mapping[str, float] | None = None, points: int = POINTS,
                seed: int = 0, timeout: float | None = None) -> ClaimCheck:
    """Check that `claim` is d expression / d wrt (both scalar graphs over the same variables).

    `at` (optional, {name: value}) is tried first and centres half of the random points.
    `timeout`: seconds for SymPy (default `symbolic.DEFAULT_TIMEOUT`); past it, the verdict
    rests on the points.
    """
    from gradviz.core.autodiff import grad
    from gradviz.verify import symbolic

    names = [n.name for n in toposort(expression) if n.op in ("var", "param")]
    extra = sorted({n.name for n in toposort(claim) if n.op in ("var", "param")} - set(names))
    if extra:
        raise GradvizError(f"the claim uses {', '.join(map(repr, extra))}, which the expression "
                           "does not")
    if wrt.op not in ("var", "param"):
        raise GradvizError("can only differentiate with respect to a variable")
    timeout = symbolic.DEFAULT_TIMEOUT if timeout is None else timeout
    derivative = grad(expression, wrt)
    result = ClaimCheck(INCONCLUSIVE, wrt.name, None, "", expression_text(claim))
    search = _Search(expression, wrt, derivative, claim, names, result)
    search.run(at, points, seed)
    domain = search.domain_bounds()
    try:
        shown, text, proved = symbolic.bounded(timeout, _prove, expression, wrt.name, claim,
                                               domain, result.verdict == REFUTED)
    except symbolic.GaveUp as exc:
        result.sympy_note = f"SymPy gave up after {exc.seconds:g} s"
        result.derivative, result.derivative_text = None, expression_text(derivative)
        return result
    result.derivative, result.derivative_text = shown, text
    if proved and result.verdict != REFUTED:
        result.verdict = VERIFIED
    return result


def _prove(expression: Node, wrt: str, claim: Node, domain: dict, shown_only: bool):
    """(the tidied derivative, its text, whether SymPy proves claim == derivative), in SymPy."""
    from gradviz.verify import symbolic

    exact = symbolic.diff(symbolic.to_sympy(expression), symbolic.symbol(wrt))
    shown = symbolic.tidy(exact)
    text = symbolic.formula_text(shown)
    if shown_only:
        return shown, text, False
    difference = exact - symbolic.to_sympy(claim)
    if symbolic.is_zero(difference):
        return shown, text, True
    return shown, text, _zero_on_domain(difference, domain)


def _zero_on_domain(difference, domain: dict[str, tuple[str, float]]) -> bool:
    """Whether the difference is zero once each variable is restricted to the side of the
    boundary where all its defined points lay: v = c + u (or c - u) with u > 0."""
    if not domain:
        return False
    import sympy as sp

    from gradviz.verify import symbolic

    subs = {}
    for name, (side, c) in domain.items():
        u = sp.Symbol(f"{name}_", positive=True)
        c = symbolic.number(c)
        subs[symbolic.symbol(name)] = c + u if side == ">" else c - u
    restricted = difference.xreplace(subs)
    return symbolic.is_zero(restricted) or symbolic.is_zero(sp.factor(sp.together(restricted)))


class _Search:
    """The adversary: points where the claim and autodiff's derivative may differ."""

    def __init__(self, expression, wrt, derivative, claim, names, result: ClaimCheck):
        from gradviz.core.rules import kinks

        self.expression, self.wrt, self.derivative, self.claim = \
            expression, wrt, derivative, claim
        self.names, self.result = names, result
        self.seen: set[tuple] = set()
        self.defined: list[dict[str, float]] = []
        self.worst: list[tuple[float, dict[str, float]]] = []
        # the arguments whose sign changes are the breakpoints of the piecewise parts
        nodes = {n for g in (expression, claim) for n in toposort(g) if n.op in kinks}
        from gradviz import ops

        self.kink_args = [n.src[0] if len(n.src) == 1 else ops.sub(n.src[0], n.src[1])
                          for n in sorted(nodes, key=lambda n: n.uid)]

    def run(self, at, count: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        at = dict(at or {})
        base = {n: float(at.get(n, 1.0)) for n in self.names}
        stages = [
            ("the --at point", [base] if at and all(n in at for n in self.names) else []),
            ("small integers", [{n: float(rng.integers(-3, 4)) for n in self.names}
                                for _ in range(10)]),
            ("every region of the piecewise parts", self._regions(base, rng)),
            ("magnitudes from 1e-3 to 1e4 of both signs", self._magnitudes(base)),
            ("random reals", list(_random_points(self.names, count, seed, at))),
        ]
        for label, candidates in stages:
            if candidates:
                self.result.tried.append(label)
            for point in candidates:
                if self._try(point):
                    return
        self.result.tried.append("a local search for the largest difference")
        self._local_search(rng)

    def _try(self, point: dict[str, float]) -> bool:
        """Compare at `point`; True when it refutes the claim."""
        key = tuple(point[n] for n in self.names)
        if key in self.seen:
            return False
        self.seen.add(key)
        self.result.points_tried += 1
        actual, claimed = _values(self.derivative, self.claim, point)
        if actual is None:
            return False
        self.defined.append(point)
        gap = abs(actual - claimed) / (ATOL + RTOL * max(abs(actual), abs(claimed)))
        if gap <= 1:
            self.result.points_agreed += 1
            self.worst.append((gap, point))
            return False
        if not _confirmed(self.expression, self.wrt, point, actual):
            self.result.points_unconfirmed += 1
            return False
        self.result.verdict = REFUTED
        self.result.counterexample = Counterexample(point, claimed, actual)
        return True

    def _line(self, base, name, values):
        return [{**base, name: float(v)} for v in values]

    def _regions(self, base, rng) -> list[dict[str, float]]:
        """Points on both sides of, and between, every breakpoint along each variable."""
        if not self.kink_args:
            return []
        from gradviz.core.interpret import evaluate

        grid = np.unique(np.concatenate([-np.geomspace(1e-3, 1e4, 120), [0.0],
                                         np.geomspace(1e-3, 1e4, 120)]))
        out = []
        bases = [base, {n: float(rng.uniform(-3, 3)) for n in self.names}]
        for b in bases:
            for name in self.names:
                points = self._line(b, name, grid)
                rows = [self._kink_values(evaluate, p) for p in points]
                breaks = set()
                for k in range(len(self.kink_args)):
                    for i in range(len(grid) - 1):
                        u, v = rows[i][k], rows[i + 1][k]
                        if math.isfinite(u) and math.isfinite(v) and (u > 0) != (v > 0):
                            breaks.add(_nice(self._root(evaluate, b, name, k,
                                                        grid[i], grid[i + 1])))
                if not breaks:
                    continue
                edges = sorted(breaks)
                probes = [edges[0] - 1.0, edges[-1] + 1.0, edges[0] - 10.0, edges[-1] + 10.0]
                probes += [(p + q) / 2 for p, q in zip(edges, edges[1:])]
                probes += [e + d for e in edges for d in (-1e-3, 1e-3, -0.5, 0.5)]
                out += self._line(b, name, probes)
        return out

    def _kink_values(self, evaluate, point) -> list[float]:
        try:
            values = evaluate(self.kink_args, point)
        except GradvizError:
            return [math.nan] * len(self.kink_args)
        return [float(values[a]) for a in self.kink_args]

    def _root(self, evaluate, base, name, k, lo, hi) -> float:
        arg = self.kink_args[k]
        value = lambda v: float(evaluate(arg, {**base, name: v})[arg])  # noqa: E731
        low_positive = value(lo) > 0
        for _ in range(80):
            mid = (lo + hi) / 2
            if (value(mid) > 0) == low_positive:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    def _magnitudes(self, base) -> list[dict[str, float]]:
        out = []
        for name in self.names:
            out += self._line(base, name, MAGNITUDES)
        out += [{n: m for n in self.names} for m in MAGNITUDES]
        return out

    def _local_search(self, rng) -> None:
        """From the points where the two came closest to differing, random steps that keep
        whatever makes the relative difference larger, with a shrinking scale."""
        starts = [p for _, p in sorted(self.worst, key=lambda t: -t[0])[:3]]
        per_start = SEARCH_STEPS // max(len(starts), 1)
        for start in starts:
            point, best = dict(start), self._gap(start)
            scale = 1.0
            for _ in range(per_start):
                trial = {n: v + scale * max(abs(v), 1.0) * float(rng.normal())
                         for n, v in point.items()}
                if self._try(trial):
                    return
                gap = self._gap(trial)
                if gap is not None and gap > best:
                    point, best = trial, gap
                else:
                    scale *= 0.8

    def _gap(self, point) -> float | None:
        actual, claimed = _values(self.derivative, self.claim, point)
        if actual is None:
            return None
        return abs(actual - claimed) / (ATOL + RTOL * max(abs(actual), abs(claimed)))

    def domain_bounds(self) -> dict[str, tuple[str, float]]:
        """{variable: (">" or "<", c)} for variables all of whose defined points tried lie on
        one side of a boundary c (the nearest integer to the extreme defined value, or 0),
        where some points tried on the other side were undefined."""
        if len(self.defined) < 5:
            return {}
        out = {}
        for name in self.names:
            values = [p[name] for p in self.defined]
            lo, hi = min(values), max(values)
            tried = [float(k[self.names.index(name)]) for k in self.seen]
            for side, edge in ((">", lo), ("<", hi)):
                c = float(np.floor(edge)) if side == ">" else float(np.ceil(edge))
                if abs(edge - round(edge)) < 1e-6:
                    c = float(round(edge))
                beyond = [t for t in tried if (t < c if side == ">" else t > c)]
                if beyond and all((v > c if side == ">" else v < c) or v == c for v in values) \
                        and (c != 0 or side == ">" and lo >= 0 or side == "<" and hi <= 0):
                    out[name] = (side, c)
                    break
        return out


def _nice(value: float) -> float:
    """A breakpoint rounded to an integer or a tenth when it is that up to bisection noise."""
    for digits in (0, 1, 2):
        r = round(value, digits)
        if abs(r - value) < 1e-9 * max(1.0, abs(value)):
            return float(r)
    return float(value)


def _random_points(names, count, seed, at):
    from gradviz.verify.symbolic import sample_points

    return sample_points(names, count, seed=seed, around=at)
def check_claim_text(expression: str, wrt: str, claim: str,
                     at: Mapping[str, float] | None = None, *,
                     timeout: float | None = None) -> ClaimCheck:
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
    return check_claim(output, variables[wrt], claimed, at=at, timeout=timeout)


def _values(derivative: Node, claim: Node, point: dict[str, float]):
    """(autodiff's derivative, the claim) at `point`, or (None, None) where either is not finite."""
    from gradviz.core.interpret import evaluate

    try:
        values = evaluate([derivative, claim], point)
    except GradvizError:
        return None, None
    actual, claimed = float(values[derivative]), float(values[claim])
    if not (math.isfinite(actual) and math.isfinite(claimed)):
        return None, None
    return actual, claimed


def _confirmed(expression: Node, wrt: Node, point: dict[str, float], actual: float) -> bool:
    """Whether finite differences agree with autodiff here (so the point is not on a kink)."""
    from gradviz.verify.finite_differences import agrees, numeric_grad

    fd = numeric_grad(expression, point, [wrt])[wrt]
    return agrees(actual, fd) is True
