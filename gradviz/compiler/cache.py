"""Generated source as importable, content-addressed modules, so Numba's `cache=True` works.

`exec` of a string cannot be cached by Numba: it needs a real file. Each source is written once
to `<cache>/kernels/gradviz_k_<sha256>.py` (atomically, with `gradviz.files.write_atomic`),
imported with importlib and registered in `sys.modules` before it runs, so a second process finds both the module and Numba's compiled code next to it (`__pycache__/`).

A source file whose content no longer matches its name is rewritten. Numba's own files for a
module can be dropped with `purge` (the compiler does so when loading them fails), after which
they are rebuilt.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from gradviz.files import write_atomic

PREFIX = "gradviz_k_"


def cache_dir() -> Path:
    """`$GRADVIZ_CACHE`, else the user's cache directory (`$XDG_CACHE_HOME/gradviz`,
    `~/.cache/gradviz`; `%LOCALAPPDATA%\\gradviz` on Windows, `~/Library/Caches/gradviz` on macOS)."""
    env = os.environ.get("GRADVIZ_CACHE")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        root = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        root = Path.home() / "Library" / "Caches"
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "gradviz"


def module_name(source: str) -> str:
    """The module name of a source: its content hash."""
    return PREFIX + hashlib.sha256(source.encode()).hexdigest()[:32]


def source_path(source: str) -> Path:
    """Where `source` lives in the cache, written there if missing or damaged."""
    directory = cache_dir() / "kernels"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{module_name(source)}.py"
    try:
        intact = path.read_text(encoding="utf-8") == source
    except (OSError, UnicodeDecodeError):
        intact = False
    if not intact:
        write_atomic(path, source)
    return path


def load(source: str) -> ModuleType:
    """The module for `source`: from `sys.modules` if this process has it, else imported from
    the cache directory."""
    name = module_name(source)
    module = sys.modules.get(name)
    if module is not None:
        return module
    path = source_path(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before exec: Numba's cache finds functions by module name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def purge(module: ModuleType) -> None:
    """Forget `module` and delete Numba's cached code for it (its index and data files)."""
    name = module.__name__
    sys.modules.pop(name, None)
    pycache = Path(module.__file__).parent / "__pycache__"
    for path in pycache.glob(f"{name}.*"):
        try:
            path.unlink()
        except OSError:
            pass
