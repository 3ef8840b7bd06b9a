"""Reading CIFAR-10's Python version (``cifar-10-python.tar.gz``) without trusting its pickles.

The archive (Krizhevsky, 2009; https://www.cs.toronto.edu/~kriz/cifar.html) holds
``cifar-10-batches-py/data_batch_1`` ... ``data_batch_5`` (10,000 training images each) and
``test_batch`` (10,000), each a Python 2 pickle of a dict: ``b"data"`` is a uint8 NumPy array of
shape (N, 3072), every row one 32x32 image channel-major (1,024 red, then green, then blue
values, each plane row by row), and ``b"labels"`` a list of N class indices 0-9.

A pickle can name any importable callable and have it called (``os.system`` is the classic), so
the batches are read with `_BatchUnpickler`, whose ``find_class`` answers only the three globals a
NumPy array is rebuilt from (``numpy.core.multiarray._reconstruct``, or ``numpy._core...`` as
NumPy 2 writes it, ``numpy.ndarray`` and ``numpy.dtype``), each wrapped so that it builds nothing
but plain arrays of numbers, and refuses every other name before anything is called. Members are
read straight from the gzip-compressed tar stream (nothing is extracted to disk), or from an
already extracted ``cifar-10-batches-py`` folder. Every bad input (not a tar.gz, truncated, a
missing batch, a refused global, the wrong shapes) is one `GradvizError` line.
"""
from __future__ import annotations

import io
import os
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from gradviz.errors import GradvizError

ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")
IMAGE_SHAPE = (3, 32, 32)
_ROW = 3 * 32 * 32
#: The largest batch file read (bytes): a real one is about 31 MB (10,000 x 3,072 bytes plus
#: labels and file names), so anything much larger is refused before it is read.
MAX_BATCH_BYTES = 64 << 20
#: An archive is read only this far (members, and bytes of them decompressed, skipped or read):
#: the real one has 8 members and 185 MB, so a crafted archive of millions of members or
#: gigabytes of padding is refused early instead of filling memory or taking minutes.
MAX_MEMBERS = 100
MAX_ARCHIVE_BYTES = 1 << 30


class _Refused(pickle.UnpicklingError):
    """A pickle asked for something a CIFAR-10 batch never holds."""


_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0, np.uint8))[0]  # NumPy's own _reconstruct


def _reconstruct(subtype, shape, dtype):
    """`numpy.core.multiarray._reconstruct`, for plain arrays only (the state comes after)."""
    if subtype is not np.ndarray:
        raise _Refused(f"an array of type {subtype!r}")
    return _RECONSTRUCT(np.ndarray, shape, dtype)


def _dtype(spec, align=False, copy=True):
    """`numpy.dtype` for numbers only: no object (or structured) dtypes, which could hold
    arbitrary Python objects."""
    if isinstance(spec, bytes):
        spec = spec.decode("ascii", "replace")
    if not isinstance(spec, str):
        raise _Refused(f"a dtype made from {type(spec).__name__}")
    try:
        dtype = np.dtype(spec, bool(align), bool(copy))
    except (TypeError, ValueError) as exc:
        raise _Refused(f"dtype {spec!r} ({exc})") from None
    if dtype.kind not in "biuf" or dtype.hasobject:
        raise _Refused(f"dtype {spec!r}")
    return dtype


#: (module, name) -> what `find_class` hands back; everything else is refused.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds dicts, lists, strings, numbers and numeric NumPy arrays, and
    nothing else: ``find_class`` refuses every global but the three NumPy needs."""

    def find_class(self, module, name):
        found = _ALLOWED.get((module, name))
        if found is None:
            raise _Refused(f"{module}.{name}")
        return found

    def persistent_load(self, pid):
        raise _Refused("a persistent id")


def parse_batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch's pickle bytes -> (images uint8 (N, 3072), labels int64 (N,)); `where` names it
    in errors."""
    try:
        obj = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except _Refused as exc:
        raise GradvizError(f"{where}: refused to unpickle {exc} (a CIFAR-10 batch holds only "
                           "a dict of bytes, lists and a uint8 array); nothing was run") from None
    except MemoryError:
        raise GradvizError(f"{where}: not a CIFAR-10 batch (out of memory unpickling it)") \
            from None
    except Exception as exc:  # noqa: BLE001 - a damaged pickle raises any of a dozen types
        raise GradvizError(f"{where}: not a CIFAR-10 batch (bad pickle: "
                           f"{type(exc).__name__}: {_one_line(exc)})") from None
    if not isinstance(obj, dict):
        raise GradvizError(f"{where}: not a CIFAR-10 batch (a pickled {type(obj).__name__}, "
                           "expected a dict)")
    images, labels = _entry(obj, "data"), _entry(obj, "labels")
    if images is None or labels is None:
        key = "data" if images is None else "labels"
        raise GradvizError(f"{where}: not a CIFAR-10 batch (no {key} entry)")
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 \
            or images.shape[1] != _ROW:
        what = (f"{images.dtype} array of shape {images.shape}" if isinstance(images, np.ndarray)
                else type(images).__name__)
        raise GradvizError(f"{where}: data is a {what}, expected uint8 rows of {_ROW} values "
                           "(3x32x32 images)")
    if isinstance(labels, np.ndarray):
        labels = labels.tolist()
    if not isinstance(labels, list) or not all(type(v) is int for v in labels):
        raise GradvizError(f"{where}: labels are not a list of whole numbers")
    if len(labels) != len(images):
        raise GradvizError(f"{where}: {len(images)} images but {len(labels)} labels")
    if not labels:
        raise GradvizError(f"{where}: contains no images")
    y = np.asarray(labels, dtype=np.int64)
    bad = np.flatnonzero((y < 0) | (y > 9))
    if bad.size:
        raise GradvizError(f"{where}: label {int(y[bad[0]])} at index {int(bad[0])} is not 0-9")
    return np.ascontiguousarray(images), y


def _entry(obj: dict, key: str):
    value = obj.get(key.encode())
    return obj.get(key) if value is None else value


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


# -- where the batches are ----------------------------------------------------------------------
def _batch_folder(directory: Path) -> Path | None:
    """The extracted folder holding the batches (`directory` itself or its cifar-10-batches-py),
    or None."""
    for folder in (directory / FOLDER, directory):
        if (folder / TRAIN_BATCHES[0]).is_file():
            return folder
    return None


def source_files(location: str | os.PathLike) -> list[Path]:
    """The files `load_cifar10(location)` reads (those present): the archive, or the extracted
    batch files. For checkpoints' fingerprints of the data a run read."""
    path = Path(location).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    folder = _batch_folder(path)
    if folder is not None:
        return [folder / n for n in (*TRAIN_BATCHES, TEST_BATCH) if (folder / n).is_file()]
    return [path / ARCHIVE] if (path / ARCHIVE).is_file() else []


def load_cifar10(location: str | os.PathLike, limit: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read CIFAR-10 from `location`: ``cifar-10-python.tar.gz`` itself, a directory holding it,
    or the extracted ``cifar-10-batches-py`` folder (or the directory holding that folder).

    Returns ``(train_images, train_labels, test_images, test_labels)``: images uint8
    ``(N, 3, 32, 32)``, labels int64. ``limit`` keeps at most the first that many examples of
    the training batches (in order) and of the test batch."""
    path = Path(location).expanduser()
    if not path.exists():
        raise GradvizError(f"no such file or directory: {path}")
    if path.is_dir():
        folder = _batch_folder(path)
        if folder is not None:
            batches = _read_folder(folder)
        elif (path / ARCHIVE).is_file():
            batches = _read_archive(path / ARCHIVE)
        else:
            raise GradvizError(f"{path} holds neither {ARCHIVE} nor the extracted {FOLDER} "
                               f"folder ({TRAIN_BATCHES[0]} ... {TEST_BATCH})")
    else:
        batches = _read_archive(path)
    train = [batches[n] for n in TRAIN_BATCHES]
    train_x = np.concatenate([x for x, _ in train])
    train_y = np.concatenate([y for _, y in train])
    test_x, test_y = batches[TEST_BATCH]
    if limit is not None:
        train_x, train_y = train_x[:limit], train_y[:limit]
        test_x, test_y = test_x[:limit], test_y[:limit]
    shape = (-1, *IMAGE_SHAPE)
    return train_x.reshape(shape), train_y, test_x.reshape(shape), test_y


def _wanted() -> tuple[str, ...]:
    return (*TRAIN_BATCHES, TEST_BATCH)


def _read_folder(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    missing = [n for n in _wanted() if not (folder / n).is_file()]
    if missing:
        raise GradvizError(f"{folder}: missing {', '.join(missing)}")
    out = {}
    for name in _wanted():
        path = folder / name
        try:
            size = path.stat().st_size
            if size > MAX_BATCH_BYTES:
                raise GradvizError(f"{path}: {size} bytes, larger than a CIFAR-10 batch "
                                   f"(at most {MAX_BATCH_BYTES})")
            data = path.read_bytes()
        except OSError as exc:
            raise GradvizError(f"cannot read {path}: {exc.strerror or exc}") from None
        out[name] = parse_batch(data, str(path))
    return out


def _read_archive(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The batches of a cifar-10-python.tar.gz, read from the compressed stream in one pass."""
    wanted = set(_wanted())
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    seen = total = 0
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            for member in tar:
                seen += 1
                total += member.size
                if seen > MAX_MEMBERS or total > MAX_ARCHIVE_BYTES:
                    much = (f"{MAX_MEMBERS} members" if seen > MAX_MEMBERS
                            else f"{MAX_ARCHIVE_BYTES} bytes")
                    raise GradvizError(f"{path}: not {ARCHIVE} (more than {much} before all "
                                       "the batches were found)")
                name = member.name.rsplit("/", 1)[-1]
                if name not in wanted or name in out or not member.isfile():
                    continue
                where = f"{path}:{member.name}"
                if member.size > MAX_BATCH_BYTES:
                    raise GradvizError(f"{where}: {member.size} bytes, larger than a CIFAR-10 "
                                       f"batch (at most {MAX_BATCH_BYTES})")
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
                if len(data) != member.size:
                    raise GradvizError(f"{path}: truncated ({member.name} ends after "
                                       f"{len(data)} of {member.size} bytes)")
                out[name] = parse_batch(data, where)
                if len(out) == len(wanted):
                    break
    except GradvizError:
        raise
    except FileNotFoundError:
        raise GradvizError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise GradvizError(f"{path} is a directory, not {ARCHIVE}") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _one_line(exc)
        raise GradvizError(f"{path}: not a readable {ARCHIVE} (damaged or truncated: "
                           f"{reason})") from None
    missing = [n for n in _wanted() if n not in out]
    if missing:
        raise GradvizError(f"{path}: no {FOLDER}/{missing[0]} in the archive"
                           + (f" (nor {', '.join(missing[1:])})" if missing[1:] else ""))
    return out
