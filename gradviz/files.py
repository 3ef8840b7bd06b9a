"""Writing files atomically: a reader (or a crash) sees the old file or the complete new one.

`write_atomic` is the one writer every picture, page, checkpoint, plot and cached kernel goes
through: the data goes to a temporary file in the same directory, is flushed and fsynced, then
`os.replace`s the target, and the directory itself is fsynced so the rename survives a crash.
A new file gets the usual mode (0o666 less the umask, 0o644 under the common umask 022), not the
0o600 of `tempfile.mkstemp`. If anything fails the temporary file is removed and the old file,
if there was one, is left untouched.
"""
from __future__ import annotations

import os
import secrets
import stat

from gradviz.errors import GradvizError

TEMP_PREFIX = ".tmp-"


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Write `data` (bytes, or text written as UTF-8) to `path` so readers see either the old
    content or the complete new one; raises GradvizError when the directory does not exist."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"write_atomic writes bytes or str, not {type(data).__name__}")
    path = os.fspath(path)
    target = _writable_target(path, "cannot write")
    directory = os.path.dirname(target) or "."
    fd, tmp = _create_temp(directory, os.path.basename(target))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # the rename must not land before the data does
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _create_temp(directory: str, name: str) -> tuple[int, str]:
    """A new, empty file next to the target, opened for writing with mode 0o666 less the umask
    (the kernel applies the umask, so it is never read or changed here)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f"{TEMP_PREFIX}{secrets.token_hex(6)}-{name}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {directory}")


def _fsync_directory(directory: str) -> None:
    """Make the rename durable; a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- checking outputs before the work starts ------------------------------------------------------
#: Pseudo file systems no output belongs in (writing there fails late, or does harm).
_SYSTEM_ROOTS = ("/proc", "/sys", "/dev")
_SYSTEM_ALLOWED = ("/dev/shm",)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _under_system(path: str) -> bool:
    if os.name != "posix":
        return False
    inside = lambda root: path == root or path.startswith(root + "/")  # noqa: E731
    return any(inside(r) for r in _SYSTEM_ROOTS) and not any(inside(r) for r in _SYSTEM_ALLOWED)


def _writable_target(path: str, what: str) -> str:
    """The file `path` really names (a symbolic link followed), checked: a regular file or a new
    name in an existing, writable directory outside /proc, /sys and /dev."""
    if not path or not path.strip():
        raise GradvizError(f"{what}: the path is empty")
    if "\0" in path:
        raise GradvizError(f"{what} {path!r}: the path contains a NUL byte")
    target = os.path.realpath(path)  # a symlink (or a chain of them) is followed
    shown = path if target == os.path.abspath(path) else f"{path} (-> {target})"
    if _under_system(target):
        raise GradvizError(f"{what} {shown}: output files do not go under "
                           f"{'/'.join(target.split('/')[:2])}/")
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise GradvizError(f"{what} {shown}: {exc.strerror or exc}") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise GradvizError(f"{what} {shown}: it is {_kind(mode)}, not a regular file")
    directory = os.path.dirname(target) or "."
    if not os.path.isdir(directory):
        raise GradvizError(f"{what} {shown}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise GradvizError(f"{what} {shown}: directory {directory} is not writable")
    return target


def check_output_file(path, option: str = "-o") -> str:
    """Refuse an output file before any work: empty, a directory, a device, a FIFO, a socket,
    under /proc, /sys or /dev, or in a directory that is missing or not writable. A symbolic
    link is followed (its target is what gets written). Returns the path unchanged."""
    if path is None:
        return path
    _writable_target(os.fspath(path), f"{option}")
    return path


def check_output_dir(path, option: str = "-o") -> str:
    """Refuse an output directory before any work: empty, an existing non-directory, under
    /proc, /sys or /dev, or one that cannot be created (the nearest existing ancestor is not a
    writable directory). Returns the path unchanged; nothing is created."""
    if path is None:
        return path
    text = os.fspath(path)
    if not text or not text.strip():
        raise GradvizError(f"{option}: the path is empty")
    if "\0" in text:
        raise GradvizError(f"{option} {text!r}: the path contains a NUL byte")
    target = os.path.realpath(text)
    if _under_system(target):
        raise GradvizError(f"{option} {text}: output directories do not go under "
                           f"{'/'.join(target.split('/')[:2])}/")
    probe = target
    while True:
        try:
            mode = os.stat(probe).st_mode
            break
        except FileNotFoundError:
            parent = os.path.dirname(probe)
            if parent == probe:
                raise GradvizError(f"{option} {text}: cannot be created") from None
            probe = parent
        except OSError as exc:
            raise GradvizError(f"{option} {text}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(mode):
        what = text if probe == target else f"{text} ({probe})"
        raise GradvizError(f"{option} {what}: it is {_kind(mode)}, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise GradvizError(f"{option} {text}: {probe} is not writable")
    return path
