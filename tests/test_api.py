"""The package's public surface: lazy exports that resolve, and a CLI that starts light."""
import importlib
import pkgutil
import subprocess
import sys
import types

import gradviz


def _import_all_submodules():
    for info in pkgutil.walk_packages(gradviz.__path__, "gradviz."):
        if "cuda" in info.name:
            continue  # imported by its own tests, under the simulator
        importlib.import_module(info.name)


def test_every_export_resolves_to_an_object_not_a_module():
    # Importing a submodule sets it as an attribute of the package: an export named like a
    # submodule (gradviz.parse vs gradviz/parse.py) would be shadowed by the module.
    _import_all_submodules()
    for name in gradviz.__all__:
        value = getattr(gradviz, name)
        assert not isinstance(value, types.ModuleType), name


def test_help_does_not_import_heavy_modules():
    code = ("import sys\n"
            "from gradviz.cli import cli\n"
            "try:\n"
            "    cli.main(['--help'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "heavy = [m for m in ('numpy', 'sympy', 'numba', 'graphviz', 'matplotlib') "
            "if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout, out.stdout


def test_import_gradviz_is_light():
    code = "import sys, gradviz; print([m for m in ('numpy', 'sympy', 'numba') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "gradviz", "grad", "x*y", "--at", "x=2,y=3",
                          "--json", "--wrt", "x"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert '"backprop": 3.0' in out.stdout
