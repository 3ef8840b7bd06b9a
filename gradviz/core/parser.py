"""Expression strings to graph nodes, safely.

The text is parsed by Python's `ast` and walked against a whitelist: numbers, names,
`+ - * / **`, unary minus and plus, parentheses, and calls of the functions in `FUNCTIONS`.
Everything else (attributes, subscripts, strings, keywords, lambdas, comparisons, ...) is
rejected with the column where it starts. Nothing is ever passed to `eval`, `sympify` or
`parse_expr`.
"""
from __future__ import annotations

import ast
import math
import re
import sys
from gradviz import ops  # registers every op's builders in `rules.functions`
from gradviz.core import rules
from gradviz.core.ir import Node
from gradviz.core.rules import Function
from gradviz.errors import ParseError

MAX_LENGTH = 100_000        # characters
MAX_NESTING = 150           # parentheses / call nesting (Python's own parser stops at 200)
MAX_EXPONENT = 10_000       # largest literal exponent accepted in `a ** n`
CONSTANTS = {"pi": math.pi}


# The expression language's functions: each op module registers its builders there
# (`rules.builder(parse=...)`), and `define_op` adds user ops. `Function` says how one is called.
FUNCTIONS: dict[str, Function] = rules.functions


def _fold(build, args):
    out = args[0]
    for a in args[1:]:
        out = build(out, a)
    return out


_BINARY = {ast.Add: ops.add, ast.Sub: ops.sub, ast.Mult: ops.mul, ast.Div: ops.div,
           ast.Pow: ops.pow_}
_FORBIDDEN_NAMES = {
    ast.Attribute: "attribute access", ast.Subscript: "indexing", ast.Lambda: "lambda",
    ast.Compare: "comparison", ast.BoolOp: "'and'/'or'", ast.IfExp: "'if' expression",
    ast.List: "a list", ast.Tuple: "a tuple", ast.Dict: "a dict", ast.Set: "a set",
    ast.ListComp: "a comprehension", ast.GeneratorExp: "a generator", ast.Starred: "'*'",
    ast.JoinedStr: "an f-string", ast.NamedExpr: "':='", ast.Await: "'await'",
}


def parse(text: str, variables: dict[str, Node] | None = None, dtype: str = "float64") -> Node:
    """Parse an expression string into a graph and return its output node.

    `variables` maps names to existing nodes; names not in it become new scalar `var` nodes
    and are added to it, so two strings parsed with the same dict share their variables.
    Raises `ParseError` (with the column) for anything outside the whitelist.
    """
    if not isinstance(text, str):
        raise ParseError("the expression must be a string")
    if len(text) > MAX_LENGTH:
        raise ParseError(f"expression is too long ({len(text)} characters; the limit is "
                         f"{MAX_LENGTH})")
    if not text.strip():
        raise ParseError("the expression is empty")
    if "\n" in text or "\r" in text:
        raise ParseError("the expression must be on one line",
                         column=min(i for i in (text.find("\n"), text.find("\r")) if i >= 0) + 1)
    _check_nesting(text)
    tree = _python_ast(text.strip())
    offset = len(text) - len(text.lstrip())
    return _Builder(variables if variables is not None else {}, dtype, offset,
                    text.strip()).build(tree.body)


def _check_nesting(text: str) -> None:
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
            if depth > MAX_NESTING:
                raise ParseError(f"expression is nested too deeply (more than {MAX_NESTING} "
                                 "levels of parentheses)", column=i + 1)
        elif ch in ")]}":
            depth -= 1


def _python_ast(text: str) -> ast.Expression:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * MAX_LENGTH))  # long a+b+c+... chains are deep trees
    try:
        return ast.parse(text, mode="eval")
    except SyntaxError as exc:
        message, column = exc.msg, exc.offset
        juxtaposed = _JUXTAPOSED.search(text)
        if juxtaposed:  # 2x: Python says "invalid decimal literal"
            number, name = juxtaposed.group(1), juxtaposed.group(2)
            raise ParseError(f"a number right before a name: write {number}*{name} for the "
                             "product", column=juxtaposed.start(2) + 1) from None
        if "Exceeds the limit" in message:
            message = "number literal is too long"
        elif not column:
            message, column = "the expression ends too early", len(text) + 1
        raise ParseError(f"syntax error: {message}", column=column) from None
    except (RecursionError, MemoryError):
        raise ParseError("expression is nested too deeply") from None
    except ValueError as exc:  # e.g. null bytes
        raise ParseError(f"cannot parse: {exc}") from None
    finally:
        sys.setrecursionlimit(limit)


class _Builder:
    """Turns a whitelisted Python AST into nodes, iteratively (no recursion on deep trees)."""

    def __init__(self, variables: dict[str, Node], dtype: str, offset: int, text: str = ""):
        self.text = text
        self.variables = variables
        self.dtype = dtype
        self.offset = offset

    def fail(self, message: str, at: ast.AST) -> ParseError:
        col = getattr(at, "col_offset", None)
        return ParseError(message, column=None if col is None else col + 1 + self.offset)

    def build(self, root: ast.AST) -> Node:
        built: dict[int, Node | float] = {}
        stack: list[tuple[ast.AST, bool]] = [(root, False)]
        while stack:
            node, ready = stack.pop()
            if ready:
                built[id(node)] = self.combine(node, built)
                continue
            children = self.children(node)
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(children))
        result = built[id(root)]
        return result if isinstance(result, Node) else ops.const(result, dtype=self.dtype)

    def children(self, node: ast.AST) -> list[ast.AST]:
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                # the operator's own column: the first non-space after the left operand
                gap = self.text[node.left.end_col_offset:node.right.col_offset]
                column = node.left.end_col_offset + len(gap) - len(gap.lstrip(" ()"))
                where = ast.Constant(None, col_offset=column)
                if isinstance(node.op, ast.BitXor):
                    raise self.fail("'^' is not a power here: use ** for powers (x**2)", where)
                raise self.fail(f"operator {_op_text(node.op)} is not allowed", where)
            return [node.left, node.right]
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                raise self.fail(f"operator {_op_text(node.op)} is not allowed", node)
            return [node.operand]
        if isinstance(node, ast.Call):
            return self.check_call(node)
        if isinstance(node, (ast.Constant, ast.Name)):
            return []
        what = _FORBIDDEN_NAMES.get(type(node), type(node).__name__)
        raise self.fail(f"{what} is not allowed in an expression", node)

    def check_call(self, node: ast.Call) -> list[ast.AST]:
        if isinstance(node.func, ast.Attribute):
            where = ast.Constant(None, col_offset=node.func.end_col_offset - len(node.func.attr))
            raise self.fail(f"attribute access ('.{node.func.attr}') is not allowed", where)
        if not isinstance(node.func, ast.Name):
            raise self.fail("only calls of known functions by name are allowed", node.func)
        name = node.func.id
        fn = FUNCTIONS.get(name)
        if fn is None:
            raise self.fail(f"unknown function {name!r} (known: {', '.join(sorted(FUNCTIONS))})",
                            node.func)
        if node.keywords:
            raise self.fail(f"{name}() takes no keyword arguments", node.keywords[0].value)
        n = len(node.args)
        if fn.arity is None:
            if n < 2:
                raise self.fail(f"{name}() needs at least two arguments, got {n}", node)
        elif not fn.arity <= n <= fn.arity + fn.constants:
            expected = (f"{fn.arity}" if not fn.constants else
                        f"{fn.arity} to {fn.arity + fn.constants}")
            raise self.fail(f"{name}() takes {expected} argument(s), got {n}", node)
        return list(node.args)

    def combine(self, node: ast.AST, built: dict) -> Node | float:
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.fail(f"{type(value).__name__} literal {value!r} is not allowed", node)
            value = float(value)
            if not math.isfinite(value):
                raise self.fail("number literal is too large", node)
            return value
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.UnaryOp):
            operand = built[id(node.operand)]
            if isinstance(node.op, ast.UAdd):
                return operand
            return -operand if isinstance(operand, float) else ops.neg(operand)
        if isinstance(node, ast.BinOp):
            left, right = built[id(node.left)], built[id(node.right)]
            if isinstance(left, float) and isinstance(right, float):
                return self.fold(node, left, right)
            if isinstance(node.op, ast.Pow) and isinstance(right, float) \
                    and abs(right) > MAX_EXPONENT:
                raise self.fail(f"exponent {right:g} is too large (the limit is {MAX_EXPONENT})",
                                node.right)
            return _BINARY[type(node.op)](self.node(left), self.node(right))
        if isinstance(node, ast.Call):
            return self.call(node, built)
        raise self.fail(f"{type(node).__name__} is not allowed", node)  # unreachable by whitelist

    def fold(self, node: ast.BinOp, left: float, right: float) -> float:
        """A constant sub-expression, computed in float64 now (never in exact arithmetic, where
        9**9**9 would take forever), or a one-line error where it is not a finite number."""
        what = f"{_number_text(left)} {_SYMBOLS[type(node.op)]} {_number_text(right)}"
        try:
            value = _FOLD[type(node.op)](left, right)
        except ZeroDivisionError:
            raise self.fail(f"the constant {what} divides by zero", node) from None
        except OverflowError:
            value = math.inf
        except ValueError:
            raise self.fail(f"the constant {what} is not a real number", node) from None
        if not math.isfinite(value):
            raise self.fail(f"the constant {what} overflows float64 (the largest is about "
                            "1.8e308)", node)
        return value

    def node(self, item: Node | float) -> Node:
        return item if isinstance(item, Node) else ops.const(item, dtype=self.dtype)

    def name(self, node: ast.Name) -> Node | float:
        name = node.id
        if name in FUNCTIONS:
            raise self.fail(f"{name!r} is a function; call it as {name}(...)", node)
        if name in self.variables:
            return self.variables[name]
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name.startswith("__"):
            raise self.fail(f"name {name!r} is not allowed", node)
        var = ops.var(name, dtype=self.dtype)
        self.variables[name] = var
        return var

    def call(self, node: ast.Call, built: dict) -> Node:
        fn = FUNCTIONS[node.func.id]
        args = [built[id(a)] for a in node.args]
        arity = len(args) if fn.arity is None else fn.arity
        inputs = [self.node(a) for a in args[:arity]]
        extra = args[arity:]
        for a, src in zip(extra, node.args[arity:]):
            if not isinstance(a, float):
                raise self.fail(f"{node.func.id}(): argument {arity + 1} must be a number", src)
        if fn.arity is None:
            return _fold(fn.build, inputs)
        return fn.build(*inputs, *extra)


# a number literal directly followed by a name (not an exponent: 1e5, 2.5E-3)
_JUXTAPOSED = re.compile(r"(?<![\w.])(\d+(?:\.\d*)?)(?![eE][+-]?\d)([A-Za-z_]\w*)")
_FOLD = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
         ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b, ast.Pow: math.pow}
_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}


def _number_text(value: float) -> str:
    text = str(int(value)) if value.is_integer() and abs(value) < 1e16 else f"{value:.6g}"
    return f"({text})" if value < 0 else text


def _op_text(op: ast.AST) -> str:
    return {ast.FloorDiv: "'//'", ast.Mod: "'%'", ast.MatMult: "'@'", ast.BitAnd: "'&'",
            ast.BitOr: "'|'", ast.BitXor: "'^'", ast.LShift: "'<<'", ast.RShift: "'>>'",
            ast.Not: "'not'", ast.Invert: "'~'"}.get(type(op), type(op).__name__)
