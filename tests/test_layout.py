"""The package's layering: the command line sits on top of the library, never under it."""
import ast
from pathlib import Path

import gradviz

PACKAGE = Path(gradviz.__file__).parent
CLI = PACKAGE / "cli"


def _imported_modules(tree: ast.AST, module: str):
    """(line, module name) of every import in `tree`, relative ones resolved against `module`,
    and of `importlib.import_module("...")` calls with a literal name."""
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            yield node.lineno, base
            for alias in node.names:  # `from gradviz import cli`
                yield node.lineno, f"{base}.{alias.name}"
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"):
            yield node.lineno, node.args[0].value


def _is_cli(name: str) -> bool:
    return name == "gradviz.cli" or name.startswith("gradviz.cli.")


def test_nothing_outside_the_cli_imports_it():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if CLI in path.parents:
            continue
        relative = path.relative_to(PACKAGE.parent)
        module = ".".join(relative.with_suffix("").parts)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        offenders += [f"{relative}:{line} imports {name}"
                      for line, name in _imported_modules(tree, module) if _is_cli(name)]
    # the console-script entry point (`python -m gradviz`) is the one way in from outside
    offenders = [o for o in offenders if not o.startswith("gradviz/__main__.py:")]
    assert offenders == [], "the library must not import the CLI:\n" + "\n".join(offenders)


def test_the_check_sees_every_kind_of_import():
    source = ("import gradviz.cli\nfrom gradviz.cli.common import x\nfrom gradviz import cli\n"
              "from ..cli import grad\nimportlib.import_module('gradviz.cli.grad')\n"
              "from gradviz.core import text\n")
    lines = {line for line, name in _imported_modules(ast.parse(source), "gradviz.render.dot")
             if _is_cli(name)}
    assert lines == {1, 2, 3, 4, 5}
