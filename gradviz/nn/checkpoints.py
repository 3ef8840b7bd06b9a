"""Training checkpoints: a directory holding `checkpoint.json` and one `arrays-<hash>.npz`.

The JSON file holds everything that is not an array (format version, configuration, epoch, RNG
state, history, normalization statistics) and names the arrays file with its SHA-256. Saving
writes the new arrays file under a new name first, then replaces the JSON file
(`gradviz.files.write_atomic`: temp file, fsync, `os.replace`), then deletes arrays files nothing
refers to. A crash at any moment therefore leaves either the old checkpoint or the new one,
complete; never a mix, never nothing.

Every problem with a checkpoint on reading (missing, unreadable, truncated, tampered, another
format) raises `GradvizError` with one line naming it.

Format version 2 checksums the metadata too: `meta_sha256` is the SHA-256 of the JSON document
without that field (keys sorted, compact separators), so an edited configuration, data path or
history is refused like a damaged arrays file. Version 1 checkpoints (arrays checksummed, metadata
not) are refused with a message that says to train again: their settings cannot be trusted.

`lock(directory)` keeps two trainings out of one directory: a `.lock` file created exclusively,
holding the owner's pid and host name; a lock whose pid no longer runs on this host is stale and
taken over.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import socket
import zipfile
from dataclasses import dataclass

import numpy as np

from gradviz.errors import GradvizError
from gradviz.files import write_atomic

FORMAT = "gradviz-checkpoint"
VERSION = 2
META_FILE = "checkpoint.json"
LOCK_FILE = ".lock"
#: checkpoint.json files larger than this are refused unread (they hold settings and history).
MAX_META_BYTES = 64 << 20
_PARAM, _STATE = "param/", "state/"


@dataclass
class Checkpoint:
    """A loaded checkpoint: `meta` (the JSON document), `params` and optimizer `state` by name."""

    directory: str
    meta: dict
    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray]

    @property
    def epoch(self) -> int:
        """Number of epochs completed when it was written."""
        return int(self.meta["epoch"])


def exists(directory: str | os.PathLike) -> bool:
    """Whether `directory` holds a checkpoint (valid or not)."""
    return os.path.isfile(os.path.join(directory, META_FILE))


def save(directory: str | os.PathLike, meta: dict, params: dict[str, np.ndarray],
         state: dict[str, np.ndarray]) -> str:
    """Write a checkpoint atomically into `directory` (created if needed); returns the path of
    its JSON file. `meta` must be JSON-serializable and must not use the keys it adds
    (`format`, `version`, `arrays`, `sha256`)."""
    directory = _make_directory(directory)
    buffer = io.BytesIO()
    arrays = {_PARAM + k: np.asarray(v) for k, v in params.items()}
    arrays.update({_STATE + k: np.asarray(v) for k, v in state.items()})
    np.savez(buffer, **arrays)
    blob = buffer.getvalue()
    digest = hashlib.sha256(blob).hexdigest()
    arrays_name = f"arrays-{digest[:16]}.npz"
    document = {"format": FORMAT, "version": VERSION, "arrays": arrays_name, "sha256": digest,
                **meta}
    document["meta_sha256"] = meta_digest(document)
    text = json.dumps(document, indent=1, sort_keys=False)
    meta_path = os.path.join(directory, META_FILE)
    try:
        write_atomic(os.path.join(directory, arrays_name), blob)
        write_atomic(meta_path, text.encode())
    except OSError as exc:
        raise GradvizError(f"cannot write checkpoint into {directory}: "
                           f"{exc.strerror or exc}") from None
    for name in os.listdir(directory):
        if name.startswith("arrays-") and name.endswith(".npz") and name != arrays_name:
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass  # an old arrays file left behind is harmless
    return meta_path


def load(directory: str | os.PathLike) -> Checkpoint:
    """Read and verify the checkpoint in `directory`."""
    directory = os.fspath(directory)
    meta_path = os.path.join(directory, META_FILE)
    if not os.path.isdir(directory):
        raise GradvizError(f"checkpoint directory {directory} does not exist")
    if not os.path.isfile(meta_path):
        raise GradvizError(f"no checkpoint in {directory} ({META_FILE} is missing)")
    try:
        with open(meta_path, "rb") as handle:
            raw = handle.read(MAX_META_BYTES + 1)
        if len(raw) > MAX_META_BYTES:
            raise GradvizError(f"corrupt checkpoint {meta_path}: more than {MAX_META_BYTES:,} "
                               "bytes")
        meta = json.loads(raw.decode())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise GradvizError(f"corrupt checkpoint {meta_path}: {_reason(exc)}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise GradvizError(f"{meta_path} is not a gradviz checkpoint")
    if meta.get("version") == 1:
        raise GradvizError(f"checkpoint {directory} was written by an older gradviz (format "
                           "version 1, whose settings are not checksummed); train it again")
    if meta.get("version") != VERSION:
        raise GradvizError(f"checkpoint {meta_path} has format version {meta.get('version')!r}; "
                           f"this gradviz reads version {VERSION}")
    if not isinstance(meta.get("meta_sha256"), str) or meta_digest(meta) != meta["meta_sha256"]:
        raise GradvizError(f"corrupt checkpoint: {meta_path} does not match its checksum (was it "
                           "edited?)")
    for key, kind in (("arrays", str), ("sha256", str), ("epoch", int)):
        if not isinstance(meta.get(key), kind):
            raise GradvizError(f"corrupt checkpoint {meta_path}: field {key!r} is missing or wrong")
    arrays_name = meta["arrays"]
    if os.path.basename(arrays_name) != arrays_name:
        raise GradvizError(f"corrupt checkpoint {meta_path}: bad arrays file name")
    arrays_path = os.path.join(directory, arrays_name)
    try:
        with open(arrays_path, "rb") as handle:
            blob = handle.read()
    except OSError as exc:
        raise GradvizError(f"checkpoint {directory} is incomplete: cannot read {arrays_name} "
                           f"({exc.strerror or exc})") from None
    if hashlib.sha256(blob).hexdigest() != meta["sha256"]:
        raise GradvizError(f"corrupt checkpoint: {arrays_path} does not match its checksum")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise GradvizError(f"corrupt checkpoint {arrays_path}: {_reason(exc)}") from None
    params = {k[len(_PARAM):]: v for k, v in arrays.items() if k.startswith(_PARAM)}
    state = {k[len(_STATE):]: v for k, v in arrays.items() if k.startswith(_STATE)}
    return Checkpoint(directory, meta, params, state)


def meta_digest(document: dict) -> str:
    """SHA-256 of a checkpoint document without its `meta_sha256` field, in canonical JSON."""
    body = {k: v for k, v in document.items() if k != "meta_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists (someone else's), or we cannot tell: assume it runs
    return True


def _read_lock(path: str) -> tuple[int | None, str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            parts = handle.read(200).split()
    except OSError:
        return None, ""
    try:
        return int(parts[0]), (parts[1] if len(parts) > 1 else "")
    except (IndexError, ValueError):
        return None, ""


@contextlib.contextmanager
def lock(directory: str | os.PathLike):
    """Hold `directory/.lock` while the block runs (the directory is created if needed). Another
    live holder is a `GradvizError`; a lock left by a process that is gone from this host is
    stale and taken over."""
    directory = _make_directory(directory)
    path = os.path.join(directory, LOCK_FILE)
    host = socket.gethostname() or "localhost"
    mine = f"{os.getpid()} {host}\n".encode()
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pid, owner = _read_lock(path)
            if pid is not None and owner == host and not _pid_running(pid):
                try:
                    os.unlink(path)  # stale: its process is gone
                except FileNotFoundError:
                    pass
                continue
            who = f"process {pid} on {owner or 'an unknown host'}" if pid is not None \
                else "another process"
            raise GradvizError(f"checkpoint directory {directory} is in use by {who} (if no "
                               f"training runs there, delete {path})") from None
        except OSError as exc:
            raise GradvizError(f"cannot lock checkpoint directory {directory}: "
                               f"{exc.strerror or exc}") from None
        try:
            os.write(fd, mine)
        finally:
            os.close(fd)
        break
    else:
        raise GradvizError(f"cannot lock checkpoint directory {directory}")
    try:
        yield path
    finally:
        if _read_lock(path)[0] == os.getpid():
            try:
                os.unlink(path)
            except OSError:
                pass


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _make_directory(directory) -> str:
    """`directory` as a string, created (with its parents) if needed; a one-line error if not."""
    directory = os.fspath(directory)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise GradvizError(f"cannot create checkpoint directory {directory}: "
                           f"{exc.strerror or exc}") from None
    return directory
