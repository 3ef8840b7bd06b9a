"""Graphs to SymPy and back, symbolic gradients two ways, proofs of equality, formulas as text.

`sympy_rules[op](node, *args)` gives the SymPy expression of primitive `op` applied to the SymPy
expressions of its operands (each op registers its rule where it is defined: `sympy=` of
`gradviz.core.rules.primitive`). Variables become real symbols (`real=True`, so `abs`
differentiates to `sign`, not to `re`/`im`). SymPy only ever sees what a graph built: never a
user's string.

Kinked ops are written with `Max`/`Min`/`Heaviside`, never `Piecewise`, so every formula prints
back in the expression language and converts back to graph nodes (`from_sympy`).

Derivatives are "where they exist": `DiracDelta` (the derivative of a step) is dropped, and two
formulas that differ only on a set of measure zero (a tie of `max`, the 0 of `relu`) are equal.
This module imports SymPy; `gradviz` and its op modules never do.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import sympy as sp
from sympy.printing.str import StrPrinter

from gradviz import ops  # noqa: F401  (registers every primitive's SymPy rule)
from gradviz.core import custom_ops, rules
from gradviz.core.ir import Node, toposort
from gradviz.errors import GradvizError

# -- the translation table --------------------------------------------------------------------
def _bind(rule: Callable) -> Callable:
    """A registered rule `rule(sp, *operands, **attrs)` as `rule(node, *operands)`: SymPy passed
    in, the node's numeric attrs (a slope, an alpha) as SymPy numbers."""
    def translate(node: Node, *args):
        attrs = {k: number(v) for k, v in node.attrs.items() if isinstance(v, (int, float))}
        return rule(sp, *args, **attrs)
    return translate


# `sympy_rules[op](node, *args)`, one per built-in primitive registered with `sympy=`
# (gradviz.core.rules). User-defined ops come and go: theirs are bound when translated.
sympy_rules: dict[str, Callable] = {op: _bind(rule) for op, rule in rules.sympy_rules.items()
                                    if op not in custom_ops.defined_ops()}

# Primitives that only mean something on tensors; translating a graph that uses one is an error.
TENSOR_ONLY = rules.tensor_only


def _rule(op: str) -> Callable:
    rule = sympy_rules.get(op)
    if rule is not None:
        return rule
    if op in rules.sympy_rules:
        return _bind(rules.sympy_rules[op])
    if op in TENSOR_ONLY:
        raise GradvizError(f"SymPy translation supports scalar graphs; {op!r} is a tensor op")
    raise GradvizError(f"no SymPy rule for op {op!r}")


# -- numbers and symbols ----------------------------------------------------------------------
def number(value: float) -> sp.Expr:
    """A float as SymPy: an Integer or a small Rational when exactly equal, the constant it is
    the float of (pi, sqrt(2), 1/sqrt(2*pi), log(10), ...: the constants of op rules, composites
    and the parser's `pi`, so that proofs stay exact), else a Float."""
    value = float(value)
    if not math.isfinite(value):
        return {math.inf: sp.oo, -math.inf: -sp.oo}.get(value, sp.nan)
    if value == int(value):
        return sp.Integer(int(value))
    r = sp.Rational(value).limit_denominator(10_000)
    if float(r) == value:
        return r
    known = _known_constants().get(value)
    if known is not None:
        return known
    return sp.Float(value, 17)


@functools.lru_cache(maxsize=None)
def _known_constants() -> dict:
    """{float: exact SymPy constant}, both signs, matched only when the float is exactly the
    constant's nearest float (as `math.pi`, `math.sqrt(0.5)` and `math.log(10)` are)."""
    exprs = [sp.pi, sp.E, sp.sqrt(2), 1 / sp.sqrt(2), sp.sqrt(sp.pi), 1 / sp.sqrt(sp.pi),
             2 / sp.sqrt(sp.pi), sp.sqrt(2 * sp.pi), 1 / sp.sqrt(2 * sp.pi), sp.sqrt(2 / sp.pi),
             sp.log(2), sp.log(10), 1 / sp.log(2), 1 / sp.log(10), sp.pi / 2, 2 * sp.pi]
    table = {}
    for e in exprs:
        table.setdefault(float(e), e)
        table.setdefault(-float(e), -e)
    return table


def symbol(name: str) -> sp.Symbol:
    """The SymPy symbol gradviz uses for variable `name` (real)."""
    return sp.Symbol(name, real=True)


# -- graph -> SymPy ---------------------------------------------------------------------------
def to_sympy(outputs: Node | Sequence[Node], substitute: Mapping[Node, sp.Expr] | None = None):
    """The SymPy expression of a scalar node (or a list of them, sharing one translation).

    `substitute` maps nodes to expressions to use in their place (e.g. a symbol standing for an
    intermediate value). Iterative: a graph of any depth translates without recursion.
    """
    single = isinstance(outputs, Node)
    roots = [outputs] if single else list(outputs)
    memo: dict[Node, sp.Expr] = dict(substitute or {})
    names: dict[str, Node] = {}
    order = _upstream(roots, memo)
    # Chains of + and - (and of *) are built as one Add (Mul) from the flat list of their terms:
    # built pairwise, SymPy re-flattens and re-sorts the whole sum at each step, so a sum of n
    # terms took O(n**2) (1,000 terms of sin(k*x): 16 s; 3,000: 15 min).
    users: dict[Node, int] = {}
    for node in order:
        for s in node.src:
            users[s] = users.get(s, 0) + 1
    for r in roots:  # a root is used by the caller too, so never folded into a chain
        users[r] = users.get(r, 0) + 1
    pending: dict[Node, tuple[str, list]] = {}  # node -> ("add" | "mul", terms), not yet built

    def terms(s: Node, kind: str) -> list:
        chain = pending.get(s)
        if chain is not None and chain[0] == kind and users.get(s, 0) == 1:
            del pending[s]
            return chain[1]
        return [value(s)]

    def value(s: Node):
        chain = pending.pop(s, None)
        if chain is not None:
            memo[s] = sp.Add(*chain[1]) if chain[0] == "add" else sp.Mul(*chain[1])
        return memo[s]

    for node in order:
        if node.shape != ():
            raise GradvizError(f"SymPy translation supports scalar graphs; {node.op!r} has shape "
                               f"{node.shape}")
        if node.op in ("var", "param"):
            other = names.setdefault(node.name, node)
            if other is not node:
                raise GradvizError(f"two different variables are named {node.name!r}")
            memo[node] = symbol(node.name)
        elif node.op == "const":
            memo[node] = number(node.attrs["value"])
        elif node.op in _CHAINS and sympy_rules.get(node.op) is not None:
            a, b = node.src
            kind = "mul" if node.op == "mul" else "add"
            left = terms(a, kind)
            right = terms(b, kind) if node.op != "sub" else [-value(b)]
            left.extend(right)
            pending[node] = (kind, left)
        else:
            memo[node] = _rule(node.op)(node, *(value(s) for s in node.src))
    out = [value(r) for r in roots]
    return out[0] if single else out


_CHAINS = ("add", "sub", "mul")


def _upstream(roots: list[Node], known: Mapping[Node, object]) -> list[Node]:
    """The nodes the roots depend on without passing through a `known` one, operands first."""
    seen: set[Node] = set()
    stack = [r for r in roots if r not in known]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(s for s in node.src if s not in known and s not in seen)
    return sorted(seen, key=lambda n: n.uid)


# -- SymPy -> graph ---------------------------------------------------------------------------
# SymPy functions that are one gradviz op, by the op's public builder name (`rules.builders`)
_FUNCTIONS = {sp.exp: "exp", sp.log: "log", sp.Abs: "abs", sp.sin: "sin", sp.cos: "cos",
              sp.tanh: "tanh", sp.sign: "sign", sp.asin: "asin", sp.acos: "acos",
              sp.atan: "atan", sp.erf: "erf"}


def from_sympy(expr: sp.Expr, variables: dict[str, Node] | None = None) -> Node:
    """Graph nodes computing a SymPy expression built in Python (never parse a user's string
    with SymPy: use `gradviz.parse`). Symbols become `var` nodes, looked up in and added to
    `variables` by name. Sums with negative terms become `sub`, negative powers `div`."""
    from gradviz import ops

    variables = {} if variables is None else variables
    if isinstance(expr, (int, float)):
        expr = number(expr)
    if not isinstance(expr, sp.Expr):
        raise GradvizError(f"from_sympy takes a SymPy expression, not {type(expr).__name__}")
    built: dict[sp.Basic, Node] = {}
    stack: list[tuple[sp.Basic, bool]] = [(expr, False)]
    while stack:
        e, ready = stack.pop()
        if e in built:
            continue
        parts = _parts(e)
        if ready or not parts:
            built[e] = _combine(e, parts, built, variables, ops)
            continue
        stack.append((e, True))
        stack.extend((p, False) for p in reversed(parts) if p not in built)
    return built[expr]


def _parts(e: sp.Basic) -> list[sp.Basic]:
    """The sub-expressions `e` is built from, as `_combine` will use them."""
    if e.is_Atom:
        return []
    if isinstance(e, sp.Add):
        return [-t if t.could_extract_minus_sign() else t for t in e.args]
    if isinstance(e, sp.Mul):
        num, den = _split_mul(e)
        return num + den
    if isinstance(e, sp.Pow):
        base, exp_ = e.args
        if exp_.is_Number and exp_ < 0:
            return [base ** -exp_]
        if exp_ == sp.Rational(1, 2):
            return [base]
        return [base, exp_]
    return list(e.args)


def _split_mul(e: sp.Mul) -> tuple[list, list]:
    """Numerator and denominator factors of a product; the sign is left out (see `_combine`)."""
    coeff, factors = e.as_coeff_mul()
    num, den = [], []
    if isinstance(coeff, sp.Rational):
        if abs(coeff.p) != 1:
            num.append(sp.Integer(abs(coeff.p)))
        if coeff.q != 1:
            den.append(sp.Integer(coeff.q))
    elif abs(coeff) != 1:
        num.append(abs(coeff))
    for f in factors:
        if isinstance(f, sp.Pow) and f.args[1].is_Number and f.args[1] < 0:
            den.append(f.args[0] ** -f.args[1])
        else:
            num.append(f)
    return num, den


def _combine(e: sp.Basic, parts: list, built: dict, variables: dict, ops) -> Node:
    if isinstance(e, sp.Symbol):
        if e.name not in variables:
            variables[e.name] = ops.var(e.name)
        return variables[e.name]
    if e.is_Number:
        if not e.is_real:
            raise GradvizError(f"{e} is not a real number")
        return ops.const(float(e))
    if e in (sp.pi, sp.E):
        return ops.const(float(e))
    args = [built[p] for p in parts]
    if isinstance(e, sp.Add):
        minus = [t.could_extract_minus_sign() for t in e.args]
        plus = [node for node, m in zip(args, minus) if not m]
        out = _fold(ops.add, plus) if plus else None
        for node, m in zip(args, minus):
            if m:
                out = ops.neg(node) if out is None else ops.sub(out, node)
        return out
    if isinstance(e, sp.Mul):
        num, den = _split_mul(e)
        out = _product(args[:len(num)], ops)
        if den:
            out = ops.div(out, _product(args[len(num):], ops))
        return ops.neg(out) if e.as_coeff_mul()[0] < 0 else out
    if isinstance(e, sp.Pow):
        base, exp_ = e.args
        if exp_.is_Number and exp_ < 0:
            return ops.div(1.0, args[0])
        if exp_ == sp.Rational(1, 2):
            return ops.sqrt(args[0])
        return ops.pow_(args[0], args[1])
    if isinstance(e, sp.Heaviside):
        return ops.step(args[0])
    if isinstance(e, (sp.Max, sp.Min)):
        return _fold(ops.maximum if isinstance(e, sp.Max) else ops.minimum, args)
    if isinstance(e, sp.atan2):
        return ops.atan2(args[0], args[1])
    for fn, name in _FUNCTIONS.items():
        if isinstance(e, fn):
            return rules.builders[name](args[0])
    raise GradvizError(f"no gradviz op for SymPy {type(e).__name__}")


def _fold(build, nodes: list[Node]) -> Node:
    out = nodes[0]
    for node in nodes[1:]:
        out = build(out, node)
    return out


def _product(nodes: list[Node], ops) -> Node:
    return _fold(ops.mul, nodes) if nodes else ops.const(1.0)


# -- calculus ---------------------------------------------------------------------------------
def diff(expr: sp.Expr, var: sp.Symbol) -> sp.Expr:
    """d expr / d var where it exists: the Dirac deltas of steps and signs are dropped, and
    steps follow gradviz's convention step(0) = 0 (SymPy's Heaviside(0) is 1/2), so the value
    of a formula at a kink is the value of the formula as printed."""
    return gradviz_steps(_drop_deltas(sp.diff(expr, var)))


def gradviz_steps(expr: sp.Expr) -> sp.Expr:
    """Every Heaviside(u) as Heaviside(u, 0): gradviz's step(0) = 0."""
    if not expr.has(sp.Heaviside):
        return expr
    return expr.replace(lambda e: isinstance(e, sp.Heaviside) and
                        (len(e.args) == 1 or e.args[1] != 0),
                        lambda e: sp.Heaviside(e.args[0], 0))


def _drop_deltas(expr: sp.Expr) -> sp.Expr:
    if expr.has(sp.DiracDelta):
        expr = expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.Integer(0))
    return expr


def _canonical_steps(expr: sp.Expr) -> sp.Expr:
    """Steps in one form, so that differences of kinked formulas can cancel: Heaviside(u, h0)
    -> Heaviside(u) (conventions at 0 differ only on the kink), and Heaviside(-u) ->
    1 - Heaviside(u) (exact with SymPy's Heaviside(0) = 1/2), so that max's two routes meet."""
    if not expr.has(sp.Heaviside):
        return expr

    def one(e):
        u = e.args[0]
        return 1 - sp.Heaviside(-u) if u.could_extract_minus_sign() else sp.Heaviside(u)

    return expr.replace(lambda e: isinstance(e, sp.Heaviside), one)


def tidy(expr: sp.Expr) -> sp.Expr:
    """A short, readable form of `expr`: `simplify`, unless that brings in functions the
    expression did not have (SymPy likes to turn sigmoid derivatives into cosh), or is longer."""
    if sp.count_ops(expr) > MAX_TIDY_OPS:
        return expr
    had = {type(f) for f in expr.atoms(sp.Function)}
    best = expr
    for simplifier in (sp.simplify, lambda e: sp.factor_terms(sp.cancel(e))):
        candidate = _within(TIDY_SECONDS, simplifier, expr)
        if candidate is None:
            continue
        new = {type(f) for f in candidate.atoms(sp.Function)} - had
        if not new and sp.count_ops(candidate) < sp.count_ops(best):
            best = candidate
    return best


# simplify's cost grows fast with size: a formula is tidied up to MAX_TIDY_OPS operations (bigger
# ones are shown with shared subterms named), and proofs are tried up to MAX_SIMPLIFY_OPS.
MAX_TIDY_OPS = 20
MAX_SIMPLIFY_OPS = 300
# Piecewise reasoning (for kinks) is exponential in the number of kinked atoms
MAX_KINKS = 4
# and simplify has pathological inputs: each attempt gets a time budget (main thread, Unix)
TIDY_SECONDS = 1.0
PROOF_SECONDS = 2.0


# every symbolic step of `gradviz grad` and `gradviz check` (`--timeout`) runs in a child process
# killed at this deadline: SymPy can sit in C code (gmpy, big integers) where no signal reaches it
DEFAULT_TIMEOUT = 5.0


class GaveUp(Exception):
    """SymPy did not finish within the time bound; `seconds` is the bound."""

    def __init__(self, seconds: float):
        super().__init__(f"gave up after {seconds:g} s")
        self.seconds = seconds


def bounded(seconds: float | None, fn, *args, **kwargs):
    """fn(*args, **kwargs), computed in a forked child process that is killed after `seconds`
    (then `GaveUp` is raised). The result comes back pickled; an exception raised by fn is
    raised here. Without fork (Windows) or with `seconds` None, fn runs here, unbounded."""
    import os
    import pickle
    import select
    import signal
    import time

    if seconds is None or not hasattr(os, "fork"):
        return fn(*args, **kwargs)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, send, and leave without running any cleanup
        os.close(read_end)
        try:
            try:
                payload = pickle.dumps((True, fn(*args, **kwargs)))
            except BaseException as exc:  # noqa: BLE001 - sent to the parent to raise
                try:
                    payload = pickle.dumps((False, exc))
                except Exception:  # noqa: BLE001
                    payload = pickle.dumps((False, GradvizError(f"{type(exc).__name__}: {exc}")))
            with os.fdopen(write_end, "wb") as out:
                out.write(payload)
        finally:
            os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + seconds
    chunks = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_end], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                raise GaveUp(seconds)
            chunk = os.read(read_end, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    if not chunks:
        raise GradvizError("the SymPy process ended without an answer")
    ok, value = pickle.loads(b"".join(chunks))
    if ok:
        return value
    raise value


class _OutOfTime(BaseException):  # not an Exception: SymPy's `except Exception` must not eat it
    pass


def _within(seconds: float, fn, *args):
    """fn(*args), or None if it takes longer than `seconds` (SymPy is pure Python, so a timer
    signal can stop it; the timer repeats in case the first one lands where exceptions are
    swallowed, such as a gc callback). Without SIGALRM or off the main thread, no limit."""
    import signal
    import threading

    if not hasattr(signal, "setitimer") or threading.current_thread() is not \
            threading.main_thread() or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        return fn(*args)  # no timer to use (or the program runs its own: leave it alone)

    def expire(signum, frame):
        raise _OutOfTime

    previous = signal.signal(signal.SIGALRM, expire)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, seconds, 0.05)
            return fn(*args)
        finally:  # a late signal may land here: the outer handler still catches it
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _OutOfTime:
        return None
    finally:
        signal.signal(signal.SIGALRM, previous)


# -- proofs -----------------------------------------------------------------------------------
PROVED, NOT_PROVED, DIFFERENT = "proved", "not proved", "different"


@dataclass
class Proof:
    """Whether two expressions are equal: `status` is "proved" (their difference simplifies to 0,
    up to kinks), "not proved" (equal at `points` random points, SymPy could not decide) or
    "different" (they differ at `point`, where they are `values`)."""

    status: str
    points: int = 0
    point: dict[str, float] | None = None
    values: tuple[float, float] | None = None

    @property
    def equal(self) -> bool | None:
        return {PROVED: True, DIFFERENT: False}.get(self.status)


def is_zero(expr: sp.Expr) -> bool:
    """Whether SymPy can show `expr` is 0 wherever it is defined, kinks aside."""
    expr = _canonical_steps(_drop_deltas(expr))
    if expr == 0:
        return True
    if sp.count_ops(expr) > MAX_SIMPLIFY_OPS:
        return False
    if _within(PROOF_SECONDS, sp.simplify, expr) == 0:
        return True
    kinks = expr.atoms(sp.Heaviside, sp.Max, sp.Min, sp.Abs, sp.sign)
    if kinks and len(kinks) <= MAX_KINKS:
        folded = _within(PROOF_SECONDS, lambda e: sp.simplify(e.rewrite(sp.Piecewise)), expr)
        return folded is not None and _zero_almost_everywhere(folded)
    if expr.has(sp.tanh):
        return _within(PROOF_SECONDS, lambda e: sp.simplify(e.rewrite(sp.exp)), expr) == 0
    return False


def _zero_almost_everywhere(expr: sp.Expr) -> bool:
    """0, or a Piecewise whose nonzero pieces apply only on a set of measure zero (where an
    equality holds, once the earlier pieces' conditions are taken out)."""
    if expr == 0:
        return True
    if not isinstance(expr, sp.Piecewise):
        return False
    covered = sp.false
    for value, cond in expr.args:
        if value != 0 and not _negligible(sp.And(cond, sp.Not(covered))):
            return False
        covered = sp.Or(covered, cond)
    return True


def _negligible(cond) -> bool:
    """Whether a condition holds only on a set of measure zero (decided exactly for one
    variable; for more, only a plain equality counts)."""
    if cond == sp.false:
        return True
    if len(cond.free_symbols) == 1:
        try:
            return cond.as_set().measure == 0
        except (NotImplementedError, TypeError, ValueError, AttributeError):
            pass
    return isinstance(cond, sp.Eq) or isinstance(cond, sp.And) and any(
        isinstance(c, sp.Eq) for c in cond.args)


def prove_equal(a: sp.Expr, b: sp.Expr, *, points: int = 20, seed: int = 0,
                around: Mapping[str, float] | None = None, rtol: float = 1e-9) -> Proof:
    """Prove `a == b` with SymPy; when it cannot decide, compare them at random points."""
    if is_zero(a - b):
        return Proof(PROVED)
    symbols = sorted((a - b).free_symbols | a.free_symbols | b.free_symbols, key=str)
    agreed = 0
    for point in sample_points([s.name for s in symbols], points, seed=seed, around=around):
        va, vb = evaluate(a, point), evaluate(b, point)
        if not (math.isfinite(va) and math.isfinite(vb)):
            continue
        if abs(va - vb) > rtol * max(abs(va), abs(vb), 1.0):
            return Proof(DIFFERENT, agreed, point, (va, vb))
        agreed += 1
    return Proof(NOT_PROVED, agreed)


def sample_points(names: Sequence[str], count: int, *, seed: int = 0,
                  around: Mapping[str, float] | None = None) -> Iterable[dict[str, float]]:
    """Random points: the first half near `around` (when given), the rest in [-3, 3]; a few are
    positive-only, for expressions with logs and square roots."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        if around and i < count // 2:
            yield {n: float(around.get(n, 0.0) + rng.normal(0.0, 0.5)) for n in names}
        elif i % 3 == 2:
            yield {n: float(rng.uniform(0.1, 3.0)) for n in names}
        else:
            yield {n: float(rng.uniform(-3.0, 3.0)) for n in names}


def evaluate(expr: sp.Expr, point: Mapping[str, float]) -> float:
    """The value of `expr` at a point {name: value}; nan where it is not a real number."""
    subs = {s: sp.Float(point[s.name], 17) for s in expr.free_symbols if s.name in point}
    missing = [s.name for s in expr.free_symbols if s.name not in point]
    if missing:
        raise GradvizError(f"no value for {', '.join(map(repr, sorted(missing)))}")
    try:
        value = complex(sp.N(expr.xreplace(subs), 17))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return math.nan
    if abs(value.imag) > 1e-12 * max(1.0, abs(value.real)):
        return math.nan
    return value.real


def value_at(expr: sp.Expr, point: Mapping[str, float]) -> float:
    """The value of a formula at a point, where it is 0 * inf or 0/0 there its limit: the
    convention of gradviz's helpers (`xlogy(0, 0)` = 0, `dpow(0, 0)` = 0). So
    `x**y*log(x)`, d(x**y)/dy, is 0 at x = 0, y = 2, as backprop gives. The limit is taken in
    one variable at a time, the others held at their (exact) values; both sides, keeping the
    real ones, which must agree. nan where no such limit exists (or SymPy takes too long)."""
    value = evaluate(expr, point)
    if not math.isnan(value) or sp.count_ops(expr) > MAX_SIMPLIFY_OPS:
        return value
    exact = {s: number(point[s.name]) for s in expr.free_symbols if s.name in point}
    deadline = time.monotonic() + PROOF_SECONDS  # for all the variables together
    for s in sorted(exact, key=str):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        rest = expr.xreplace({t: v for t, v in exact.items() if t is not s})
        found = _within(left, _real_limit, rest, s, exact[s])
        if found is not None:
            return found
    return math.nan


def _real_limit(expr: sp.Expr, s: sp.Symbol, at: sp.Expr) -> float | None:
    """The limit of expr as s -> at from the sides where it is real, when they agree."""
    sides = []
    for direction in ("+", "-"):
        try:
            limit = sp.limit(expr, s, at, direction)
        except (NotImplementedError, ValueError, TypeError, ZeroDivisionError):
            continue
        if limit.is_extended_real and limit.is_number and not limit.has(sp.AccumBounds):
            sides.append(float(limit))
    if sides and all(v == sides[0] for v in sides):
        return sides[0]
    return None


# -- symbolic gradients -----------------------------------------------------------------------
@dataclass
class SymbolicGradient:
    """d output / d variable, two ways: `expr` from `sympy.diff` of the forward expression,
    `backward` from translating the backward graph autodiff built; `proof` says whether they
    are equal. `formula` is the tidied `expr`."""

    variable: str
    expr: sp.Expr
    backward: sp.Expr
    formula: sp.Expr
    proof: Proof

    def value(self, point: Mapping[str, float]) -> float:
        """The formula's value at a point {name: value} (its limit where it is 0 * inf or
        0/0 there: `value_at`)."""
        return value_at(self.formula, point)

    def text(self) -> str:
        """The formula in the expression language (parseable by `gradviz.parse`)."""
        return formula_text(self.formula)

    def latex(self) -> str:
        """The formula in LaTeX."""
        return latex(self.formula)


def symbolic_gradients(output: Node, wrt: Iterable[Node] | None = None, *,
                       around: Mapping[str, float] | None = None) -> dict[Node, SymbolicGradient]:
    """Symbolic partial derivatives of the scalar `output` with respect to each of `wrt` (default:
    every variable), each computed by `sympy.diff` and by autodiff's backward graph, and proved
    equal (or checked at random points near `around`)."""
    from gradviz.core.autodiff import grad

    wrt = [n for n in toposort(output) if n.op in ("var", "param")] if wrt is None else list(wrt)
    backward_nodes = grad(output, wrt)
    forward, *backward = _guard(to_sympy, [output, *backward_nodes])
    result = {}
    for w, b in zip(wrt, backward):
        d = _guard(diff, forward, symbol(w.name))
        formula = _guard(tidy, d)
        proof = _guard(prove_equal, d, b, around=around)
        result[w] = SymbolicGradient(w.name, d, b, formula, proof)
    return result


def _guard(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except RecursionError:
        raise GradvizError("the expression is too deep for SymPy") from None


# -- text -------------------------------------------------------------------------------------
class _ExpressionPrinter(StrPrinter):
    """SymPy to gradviz's expression language: `step`, `max`, `min`, `abs`, plain floats."""

    def _print_Heaviside(self, e):
        return f"step({self._print(e.args[0])})"

    def _print_Max(self, e):
        return f"max({', '.join(self._print(a) for a in e.args)})"

    def _print_Min(self, e):
        return f"min({', '.join(self._print(a) for a in e.args)})"

    def _print_Abs(self, e):
        return f"abs({self._print(e.args[0])})"

    def _print_Piecewise(self, e):
        # the one Piecewise gradviz writes itself: 0**b (see ops.elementwise._pow_sympy)
        b = e.args[1][1].args[0] if len(e.args) == 3 and isinstance(e.args[0][1], sp.Eq) \
            else None
        if b is not None and e.args[0][0] == 1 and e.args[1][0] == 0:
            return f"0**({self._print(b)})"
        return super()._print_Piecewise(e)

    def _print_Exp1(self, e):
        return "exp(1)"

    def _print_Float(self, e):
        from gradviz.core.text import format_number

        return format_number(float(e))


CSE_OPS = 40  # formulas with more operations than this are shown with shared subterms named


def formula_text(expr: sp.Expr) -> str:
    """`expr` as text in the expression language. Big formulas name their repeated parts:
    `c0 = exp(-x); x*c0/(c0 + 1)**2`."""
    printer = _ExpressionPrinter()
    if sp.count_ops(expr) <= CSE_OPS:
        return printer.doprint(expr)
    names = sp.numbered_symbols("c", exclude=expr.free_symbols, real=True)
    replacements, (reduced,) = sp.cse(expr, symbols=names)
    lines = [f"{printer.doprint(s)} = {printer.doprint(v)}" for s, v in replacements]
    return "; ".join([*lines, printer.doprint(reduced)])


def latex(expr: sp.Expr) -> str:
    """`expr` in LaTeX (steps written as H(x))."""
    return sp.latex(expr)
