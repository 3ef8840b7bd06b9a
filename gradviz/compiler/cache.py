"""Generated source as importable, content-addressed modules, so Numba's `cache=True` works.

`exec` of a string cannot be cached by Numba: it needs a real file. Each source is written once
to `<cache>/kernels/gradviz_k_<sha256>.py` (atomically, with `gradviz.files.write_atomic`),
imported with importlib and registered in `sys.modules` before it runs, so a second process finds both the module and Numba's compiled code next to it (`__pycache__/`).

A source file whose content no longer matches its name is rewritten. Numba's own files for a
module can be dropped with `purge` (the compiler does so when loading them fails), after which
they are rebuilt.

Numba's cache files are pickles: whoever can write them can run code in the next process that
loads them. So the cache directories are created user-only (0o700) and used only when they
belong to the user and are not writable by group or others (else a one-line `GradvizError`,
exit code 2), and every file gradviz or Numba writes there is listed with its SHA-256 in a
manifest next to the module (`<name>.manifest.json`, written when the process ends). Before a
module is imported, Numba files that are not in its manifest, or whose content differs, are
deleted, so they are rebuilt rather than executed.
"""
from __future__ import annotations

import atexit
import hashlib
import importlib.util
import json
import os
import stat
import sys
from pathlib import Path
from types import ModuleType

from gradviz.errors import GradvizError
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


def _private_dir(path: Path) -> Path:
    """`path` as a directory only this user can write: created with mode 0o700 if missing;
    refused (GradvizError) if it is not a directory, belongs to someone else, or is writable
    by group or others."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except FileExistsError:
        raise GradvizError(f"kernel cache {path} is not a directory (set $GRADVIZ_CACHE to "
                           "another place)") from None
    except OSError as exc:
        raise GradvizError(f"cannot use kernel cache {path}: {exc.strerror or exc} (set "
                           "$GRADVIZ_CACHE to another place)") from None
    if not stat.S_ISDIR(info.st_mode):
        raise GradvizError(f"kernel cache {path} is not a directory (set $GRADVIZ_CACHE to "
                           "another place)")
    if hasattr(os, "getuid"):
        if info.st_uid != os.getuid():
            raise GradvizError(f"kernel cache {path} belongs to another user (uid "
                               f"{info.st_uid}); its compiled code could run as you: set "
                               "$GRADVIZ_CACHE to a directory of your own")
        if info.st_mode & 0o022:
            raise GradvizError(f"kernel cache {path} is writable by group or others (mode "
                               f"{stat.S_IMODE(info.st_mode):o}): run chmod go-w {path}, or "
                               "set $GRADVIZ_CACHE to another place")
    if not os.access(path, os.W_OK | os.X_OK):
        raise GradvizError(f"kernel cache {path} is not writable (set $GRADVIZ_CACHE to "
                           "another place)")
    return path


def kernels_dir() -> Path:
    """`<cache>/kernels` (and the cache itself), checked private."""
    root = cache_dir()
    _private_dir(root)
    return _private_dir(root / "kernels")


def source_path(source: str) -> Path:
    """Where `source` lives in the cache, written there if missing or damaged."""
    directory = kernels_dir()
    path = directory / f"{module_name(source)}.py"
    try:
        intact = path.read_text(encoding="utf-8") == source
    except (OSError, UnicodeDecodeError):
        intact = False
    if not intact:
        write_atomic(path, source)
    return path


def is_compiled(source: str) -> bool:
    """Whether Numba's compiled code for `source` is already in the cache (an index file of the
    module's functions in `__pycache__/`), so that loading it compiles nothing; read-only, for
    callers that say "compiling ..." only when a compile will happen (gradviz.nn.step)."""
    pycache = cache_dir() / "kernels" / "__pycache__"
    try:
        return any(pycache.glob(f"{module_name(source)}.*.nbi"))
    except OSError:
        return False


def load(source: str) -> ModuleType:
    """The module for `source`: from `sys.modules` if this process has it, else imported from
    the cache directory."""
    name = module_name(source)
    module = sys.modules.get(name)
    if module is not None:
        return module
    path = source_path(source)
    _check_numba_files(path.parent, name)
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


# -- Numba's files: only the ones this user's processes wrote, unchanged -------------------------
_loaded: dict[str, Path] = {}  # module name -> its kernels directory, recorded at exit


def _manifest_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.manifest.json"


def _numba_files(directory: Path, name: str) -> list[Path]:
    pycache = directory / "__pycache__"
    return sorted(pycache.glob(f"{name}.*")) if pycache.is_dir() else []


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_numba_files(directory: Path, name: str) -> None:
    """Delete Numba's files for `name` that its manifest does not vouch for (they are rebuilt);
    the manifest is brought up to date when this process ends."""
    pycache = directory / "__pycache__"
    if pycache.exists():
        _private_dir(pycache)
    try:
        listed = json.loads(_manifest_path(directory, name).read_text(encoding="utf-8"))
        if not isinstance(listed, dict):
            listed = {}
    except (OSError, ValueError, RecursionError):
        listed = {}
    for path in _numba_files(directory, name):
        try:
            good = listed.get(path.name) == _sha256(path) and path.stat().st_uid == (
                os.getuid() if hasattr(os, "getuid") else path.stat().st_uid)
        except OSError:
            good = False
        if not good:
            try:
                path.unlink()
            except OSError:
                pass
    if not _loaded:
        atexit.register(_record_manifests)
    _loaded[name] = directory


def _record_manifests() -> None:
    """At exit: the SHA-256 of every Numba file of the modules this process loaded."""
    for name, directory in list(_loaded.items()):
        try:
            files = {p.name: _sha256(p) for p in _numba_files(directory, name)}
            path = _manifest_path(directory, name)
            try:
                if json.loads(path.read_text(encoding="utf-8")) == files:
                    continue
            except (OSError, ValueError):
                pass
            write_atomic(path, json.dumps(files, sort_keys=True))
        except (OSError, GradvizError):
            pass  # no manifest: next time the files are rebuilt, never trusted
