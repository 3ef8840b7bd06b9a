"""Reading IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.

An IDX file is: two zero bytes, a type code, the number of dimensions ``d``, then ``d`` big-endian
uint32 sizes, then the data in C order, big-endian. MNIST images are ``0x00000803`` (unsigned
bytes, 3 dimensions: count, rows, columns); labels are ``0x00000801`` (unsigned bytes, count).
Nothing is downloaded: the files come from a directory the user already has.
"""
from __future__ import annotations

import gzip
import math
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


#: The largest IDX data section read (bytes), unless $GRADVIZ_MAX_IDX_BYTES says otherwise: MNIST's
#: training images are 47 MB, so 1 GiB leaves room for much larger sets while a crafted header
#: (or a small gzip file that expands to gigabytes) is refused before anything is allocated.
MAX_IDX_BYTES = 1 << 30
_CHUNK = 1 << 20


def max_idx_bytes() -> int:
    """The IDX size limit in force: $GRADVIZ_MAX_IDX_BYTES, else `MAX_IDX_BYTES`."""
    text = os.environ.get("GRADVIZ_MAX_IDX_BYTES")
    if not text:
        return MAX_IDX_BYTES
    try:
        value = int(text)
    except ValueError:
        raise GradvizError(f"$GRADVIZ_MAX_IDX_BYTES must be a whole number of bytes, got "
                           f"{text!r}") from None
    if value < 1:
        raise GradvizError(f"$GRADVIZ_MAX_IDX_BYTES must be positive, got {text!r}")
    return value


def _header(head: bytes, name: str, more) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header length) from the first bytes of an IDX file; `more(n)` reads the
    next n bytes. Sizes are Python integers: no header can overflow them."""
    if len(head) < 4:
        raise GradvizError(f"{name}: too short to be an IDX file ({len(head)} bytes)")
    if head[0] != 0 or head[1] != 0:
        raise GradvizError(
            f"{name}: not an IDX file (magic number 0x{head[:4].hex()} does not start with 0000)")
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        raise GradvizError(f"{name}: unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise GradvizError(f"{name}: IDX header says 0 dimensions")
    sizes = more(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise GradvizError(f"{name}: truncated IDX header ({ndim} dimensions, "
                           f"{4 + len(sizes)} bytes)")
    shape = tuple(int.from_bytes(sizes[4 * i:4 * i + 4], "big") for i in range(ndim))
    return shape, IDX_DTYPES[code], 4 + 4 * ndim


def _check_size(shape, dtype: np.dtype, name: str, limit: int) -> int:
    """The data section's size in bytes, refused when zero or over `limit`."""
    if 0 in shape:
        raise GradvizError(f"{name}: IDX header gives shape {shape}, which holds no data")
    expected = math.prod(shape) * dtype.itemsize
    if expected > limit:
        raise GradvizError(
            f"{name}: IDX header says shape {shape} ({expected:,} bytes of data), more than "
            f"the limit of {limit:,} bytes (raise it with $GRADVIZ_MAX_IDX_BYTES)")
    return expected


def parse_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Decode the bytes of an IDX file into an array of its native dtype (machine byte order).

    Raises `GradvizError` naming ``name`` for a bad magic number, an unknown type code, a shape
    holding no data or more than the size limit, or a data section whose length does not match
    the header's sizes.
    """
    shape, dtype, header = _header(data[:4], name, lambda n: data[4:4 + n])
    expected = _check_size(shape, dtype, name, max_idx_bytes())
    got = len(data) - header
    if got != expected:
        raise GradvizError(
            f"{name}: header says shape {shape} ({expected} bytes of data) but the file has "
            f"{got} bytes of data" + (" (truncated)" if got < expected else ""))
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def _gzip_size(path: Path) -> int | None:
    """The uncompressed size modulo 2**32 a gzip file records in its last 4 bytes."""
    with open(path, "rb") as raw:
        raw.seek(0, os.SEEK_END)
        if raw.tell() < 18:
            return None
        raw.seek(-4, os.SEEK_END)
        return int.from_bytes(raw.read(4), "little")


def _read_stream(f, path: Path, name: str, limit: int, gz: bool) -> np.ndarray:
    """Header first (checked, the size computed and bounded), then exactly that many bytes
    into one preallocated array, then a check that nothing follows."""
    shape, dtype, header = _header(f.read(4), name, f.read)
    expected = _check_size(shape, dtype, name, limit)
    total = header + expected
    if gz:
        isize = _gzip_size(path)
        if isize is not None and isize != total % (1 << 32):
            raise GradvizError(
                f"{name}: header says shape {shape} ({expected} bytes of data) but the gzip "
                f"file says it holds {isize} bytes in all")
    else:
        size = os.fstat(f.fileno()).st_size
        if size != total:
            got = size - header
            raise GradvizError(
                f"{name}: header says shape {shape} ({expected} bytes of data) but the file "
                f"has {got} bytes of data" + (" (truncated)" if got < expected else ""))
    arr = np.empty(expected // dtype.itemsize, dtype=dtype)
    view = memoryview(arr).cast("B")
    done = 0
    while done < expected:
        n = f.readinto(view[done:done + _CHUNK])
        if not n:
            raise GradvizError(f"{name}: header says shape {shape} ({expected} bytes of data) "
                               f"but the file has {done} bytes of data (truncated)")
        done += n
    if f.read(1):
        raise GradvizError(f"{name}: header says shape {shape} ({expected} bytes of data) but "
                           "the file has more data after it")
    return arr.reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (``.gz`` is decompressed as a stream): the header is read and checked
    first, and the data section must match it and stay within `max_idx_bytes()`; see
    `parse_idx` for the checks made."""
    path = Path(path)
    name = str(path)
    limit = max_idx_bytes()
    gz = path.name.endswith(".gz")
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            try:
                return _read_stream(f, path, name, limit, gz)
            except GradvizError:
                if gz:  # a damaged stream reads as garbage: say what is really wrong
                    f.read(_CHUNK)
                raise
    except FileNotFoundError:
        raise GradvizError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise GradvizError(f"{path} is a directory, not an IDX file") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise GradvizError(f"{path}: corrupt gzip file ({exc})") from None
    except OSError as exc:
        raise GradvizError(f"cannot read {path}: {exc.strerror or exc}") from None


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
