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
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(directory):
        raise GradvizError(f"cannot write {path}: directory {directory} does not exist")
    fd, tmp = _create_temp(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # the rename must not land before the data does
        os.replace(tmp, path)
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
