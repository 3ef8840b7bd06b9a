"""Reading IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.

An IDX file is: two zero bytes, a type code, the number of dimensions ``d``, then ``d`` big-endian
uint32 sizes, then the data in C order, big-endian. MNIST images are ``0x00000803`` (unsigned
bytes, 3 dimensions: count, rows, columns); labels are ``0x00000801`` (unsigned bytes, count).
Nothing is downloaded: the files come from a directory the user already has.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from gradviz.errors import GradvizError

# IDX type code -> big-endian NumPy dtype
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: The four files of an MNIST-style directory: role -> base name (".gz" also accepted, and the
#: "train-images.idx3-ubyte" spelling some mirrors use).
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise GradvizError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise GradvizError(f"{path} is a directory, not an IDX file") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise GradvizError(f"{path}: corrupt gzip file ({exc})") from None
    except OSError as exc:
        raise GradvizError(f"cannot read {path}: {exc.strerror or exc}") from None


def parse_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Decode the bytes of an IDX file into an array of its native dtype (machine byte order).

    Raises `GradvizError` naming ``name`` for a bad magic number, an unknown type code, or a data
    section whose length does not match the header's sizes.
    """
    if len(data) < 4:
        raise GradvizError(f"{name}: too short to be an IDX file ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise GradvizError(
            f"{name}: not an IDX file (magic number 0x{data[:4].hex()} does not start with 0000)")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise GradvizError(f"{name}: unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise GradvizError(f"{name}: IDX header says 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise GradvizError(f"{name}: truncated IDX header ({ndim} dimensions, {len(data)} bytes)")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        raise GradvizError(
            f"{name}: header says shape {shape} ({expected} bytes of data) but the file has "
            f"{got} bytes of data" + (" (truncated)" if got < expected else ""))
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (``.gz`` is decompressed); see `parse_idx` for the checks made."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def find_mnist_file(directory: Path, role: str) -> Path | None:
    """The file for ``role`` (a key of `MNIST_FILES`) in ``directory``, or None if absent.
    Tries ``base``, ``base.gz`` and the dotted spelling (``train-images.idx3-ubyte``)."""
    base = MNIST_FILES[role]
    dotted = base.replace("-idx", ".idx")
    for name in (base, base + ".gz", dotted, dotted + ".gz"):
        p = directory / name
        if p.is_file():
            return p
    return None


def _load_pair(directory: Path, split: str, limit: int | None, required: bool):
    img_path = find_mnist_file(directory, f"{split}_images")
    lbl_path = find_mnist_file(directory, f"{split}_labels")
    if img_path is None and lbl_path is None and not required:
        return None
    for role, p in ((f"{split}_images", img_path), (f"{split}_labels", lbl_path)):
        if p is None:
            raise GradvizError(
                f"{directory}: missing {MNIST_FILES[role]} (or {MNIST_FILES[role]}.gz)")
    images = read_idx(img_path)
    labels = read_idx(lbl_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise GradvizError(
            f"{img_path}: expected unsigned-byte images of 3 dimensions (magic 0x00000803), "
            f"got {images.dtype} with {images.ndim} dimensions")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise GradvizError(
            f"{lbl_path}: expected unsigned-byte labels of 1 dimension (magic 0x00000801), "
            f"got {labels.dtype} with {labels.ndim} dimensions")
    if images.shape[0] != labels.shape[0]:
        raise GradvizError(
            f"{directory}: {images.shape[0]} {split} images but {labels.shape[0]} {split} labels")
    if images.shape[0] == 0:
        raise GradvizError(f"{img_path}: contains no images")
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise GradvizError(f"{lbl_path}: label {int(labels[bad])} at index {bad} is not 0-9")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels.astype(np.int64)


def load_mnist_dir(directory: str | os.PathLike, limit: int | None = None):
    """Read an MNIST-style directory.

    Returns ``(train_images, train_labels, test)`` where images are uint8 ``(N, rows, cols)``,
    labels int64, and ``test`` is ``(test_images, test_labels)`` or None when neither t10k file is
    present. ``limit`` keeps at most that many examples from each file. The train files are
    required; the two test files must be both present or both absent; the train and test image
    sizes must agree.
    """
    directory = Path(directory).expanduser()
    if not directory.exists():
        raise GradvizError(f"no such directory: {directory}")
    if not directory.is_dir():
        raise GradvizError(f"{directory} is not a directory (expected the folder holding "
                           f"{MNIST_FILES['train_images']} and friends)")
    train_images, train_labels = _load_pair(directory, "train", limit, required=True)
    test = _load_pair(directory, "test", limit, required=False)
    if test is not None and test[0].shape[1:] != train_images.shape[1:]:
        raise GradvizError(
            f"{directory}: train images are {train_images.shape[1]}x{train_images.shape[2]} "
            f"but test images are {test[0].shape[1]}x{test[0].shape[2]}")
    return train_images, train_labels, test


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``).

    The inverse of `read_idx`; handy for making small MNIST-shaped files for tests and demos.
    """
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    key = array.dtype.newbyteorder("=")
    if key not in codes:
        raise GradvizError(f"IDX cannot store dtype {array.dtype}")
    if array.ndim == 0 or array.ndim > 255:
        raise GradvizError("IDX needs an array of 1 to 255 dimensions")
    code = codes[key]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    path = Path(path)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
