"""Fetching public data sets the way Keras and torchvision do, verified.

`fetch_dataset("mnist")` downloads the canonical files of a data set into its directory under
`data_root()` (``$GRADVIZ_DATA``, else ``$XDG_CACHE_HOME/gradviz/data``, else
``~/.cache/gradviz/data``), checking each file's size and SHA-256 against the table below
(`CATALOG`). Nothing unverified ever lies under a final file name:

- a file downloads into ``NAME.part`` next to its final name; only when its size and SHA-256
  match is it fsynced and renamed (``os.replace``) to ``NAME``;
- a broken transfer (connection error, timeout, HTTP 5xx, fewer bytes than announced) is retried
  up to ``retries`` times, resuming the ``.part`` file with an HTTP ``Range`` request (a server
  that ignores the range sends the whole file, which then replaces the part);
- a checksum mismatch deletes the ``.part`` file and raises `GradvizError` (exit code 2).

``mirror`` (or ``$GRADVIZ_DATA_MIRROR``) fetches the same file names from another base URL; the
checksums still apply. ``catalog`` replaces the table of known files (tests serve small files
with their own sums).

Where the sums come from (see docs/training.md): MNIST's SHA-256 are the ones TensorFlow
Datasets lists for the files on ``storage.googleapis.com/cvdf-datasets/mnist`` and many
downloaders repeat, Fashion-MNIST's the ones published with the Zalando files; the MD5 sums,
kept for reference, are torchvision's (``torchvision/datasets/mnist.py``). CIFAR-10's archive
``cifar-10-python.tar.gz`` (170,498,071 bytes) has the SHA-256 that torchvision's prototype data
sets give for it (``_SHA256`` of ``Cifar10`` in ``torchvision/prototype/datasets/_builtin/cifar.py``
in pytorch/vision), the same sum that independent downloaders publish beside that size; its MD5
is the one ``torchvision/datasets/cifar.py`` checks (``tgz_md5``). TensorFlow Datasets lists only
the binary version (``cifar-10-binary.tar.gz``), so its checksums file does not apply here. The
archive is read in place, never extracted or unpickled unsafely: see `gradviz.data.cifar`.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from gradviz.errors import GradvizError
from gradviz.files import _fsync_directory

PART_SUFFIX = ".part"
CHUNK = 1 << 16
USER_AGENT = "gradviz-data-fetch/1"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set: its name, size in bytes, SHA-256 (checked) and MD5 (reference)."""

    name: str
    size: int | None
    sha256: str
    md5: str = ""


@dataclass(frozen=True)
class RemoteDataset:
    """A data set that can be fetched: its name (a `--data` spec), a title, the base URLs tried
    in order, and its files."""

    name: str
    title: str
    urls: tuple[str, ...]
    files: tuple[RemoteFile, ...]


CATALOG: dict[str, RemoteDataset] = {
    "mnist": RemoteDataset(
        "mnist", "MNIST handwritten digits (LeCun, Cortes & Burges), 60,000 + 10,000 28x28",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/",
         "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        (RemoteFile("train-images-idx3-ubyte.gz", 9912422,
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
         RemoteFile("train-labels-idx1-ubyte.gz", 28881,
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                    "d53e105ee54ea40749a09fcbcd1e9432"),
         RemoteFile("t10k-images-idx3-ubyte.gz", 1648877,
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                    "9fb629c4189551a2d022fa330f9573f3"),
         RemoteFile("t10k-labels-idx1-ubyte.gz", 4542,
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                    "ec29112dd5afa0611ce80d1b7f02629c"))),
    "fashion-mnist": RemoteDataset(
        "fashion-mnist", "Fashion-MNIST clothing images (Zalando), 60,000 + 10,000 28x28",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
         "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
        (RemoteFile("train-images-idx3-ubyte.gz", 26421880,
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
         RemoteFile("train-labels-idx1-ubyte.gz", 29515,
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                    "25c81989df183df01b3e8a0aad5dffbe"),
         RemoteFile("t10k-images-idx3-ubyte.gz", 4422102,
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                    "bef4ecab320f06d8554ea6380940ec79"),
         RemoteFile("t10k-labels-idx1-ubyte.gz", 5148,
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                    "bb300cfdad3c16e7a12a480ee83cd310"))),
    "cifar10": RemoteDataset(
        "cifar10", "CIFAR-10 colour images (Krizhevsky), 50,000 + 10,000 3x32x32, 10 classes",
        ("https://www.cs.toronto.edu/~kriz/",),
        (RemoteFile("cifar-10-python.tar.gz", 170498071,
                    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
                    "c58f30108f718f92721af3b95e74349a"),)),
}


# -- where data lives ---------------------------------------------------------------------------
def data_root(environ: Mapping[str, str] | None = None) -> Path:
    """The data directory: ``$GRADVIZ_DATA``, else ``$XDG_CACHE_HOME/gradviz/data``, else
    ``~/.cache/gradviz/data``."""
    env = os.environ if environ is None else environ
    if env.get("GRADVIZ_DATA"):
        return Path(env["GRADVIZ_DATA"]).expanduser()
    cache = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "gradviz" / "data"


def dataset_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    """Where data set `name`'s files go: ``data_root()/name``."""
    return (Path(root).expanduser() if root is not None else data_root()) / name


def fetch_command(name: str) -> str:
    """The one command that fetches data set `name`."""
    return f"gradviz data fetch {name}"


def _dataset(name: str, catalog: Mapping[str, RemoteDataset]) -> RemoteDataset:
    catalog = CATALOG if catalog is None else catalog
    key = name.strip().lower()
    if key not in catalog:
        raise GradvizError(f"unknown data set {name!r} to fetch (known: {', '.join(catalog)})")
    return catalog[key]


# -- what is there ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LocalStatus:
    """What `data list` reports for one data set: its directory, the files present (and how many
    of them the catalog knows), bytes on disk, and whether every file is there."""

    name: str
    title: str
    directory: Path
    present: tuple[str, ...]
    missing: tuple[str, ...]
    partial: tuple[str, ...]
    size: int

    @property
    def complete(self) -> bool:
        return not self.missing


def local_status(name: str, *, root=None, catalog: Mapping[str, RemoteDataset] | None = None
                 ) -> LocalStatus:
    """Which of data set `name`'s files are in its directory (by name and size: the checksum was
    checked when each was fetched)."""
    ds = _dataset(name, catalog)
    directory = dataset_dir(ds.name, root)
    present, missing, partial, size = [], [], [], 0
    for f in ds.files:
        path = directory / f.name
        if path.is_file() and (f.size is None or path.stat().st_size == f.size):
            present.append(f.name)
            size += path.stat().st_size
        else:
            missing.append(f.name)
        if (directory / (f.name + PART_SUFFIX)).is_file():
            partial.append(f.name + PART_SUFFIX)
    return LocalStatus(ds.name, ds.title, directory, tuple(present), tuple(missing),
                       tuple(partial), size)


def list_local(*, root=None, catalog: Mapping[str, RemoteDataset] | None = None) -> list[LocalStatus]:
    """`local_status` of every data set in the catalog."""
    catalog = CATALOG if catalog is None else catalog
    return [local_status(name, root=root, catalog=catalog) for name in catalog]


def list_table(statuses: list[LocalStatus], root: Path) -> str:
    """The `gradviz data list` text."""
    lines = [f"data directory: {root}"]
    width = max(len(s.name) for s in statuses) if statuses else 0
    for s in statuses:
        if s.complete:
            count = len(s.present)
            state = f"{count} file{'' if count == 1 else 's'}, {s.size / 1e6:.1f} MB"
        elif s.present or s.partial:
            state = (f"incomplete: {len(s.present)} of {len(s.present) + len(s.missing)} files"
                     f" (run: {fetch_command(s.name)})")
        else:
            state = f"not fetched (run: {fetch_command(s.name)})"
        lines.append(f"{s.name.ljust(width)}  {state}")
    return "\n".join(lines)


def list_report(root: str | os.PathLike | None = None,
                catalog: Mapping[str, RemoteDataset] | None = None) -> str:
    """The `gradviz data list` text for the data directory `root` (default: `data_root()`)."""
    where = data_root() if root is None else Path(root).expanduser()
    return list_table(list_local(root=where, catalog=catalog), where)


def require_local(name: str, *, root=None, catalog: Mapping[str, RemoteDataset] | None = None) -> Path:
    """The directory of a fetched data set, or a `GradvizError` naming the command that fetches
    it (what `--data mnist` without a directory uses)."""
    status = local_status(name, root=root, catalog=catalog)
    if not status.complete:
        what = "is not fetched" if not status.present else \
            f"is incomplete ({', '.join(status.missing)} missing)"
        raise GradvizError(f"{name} {what} in {status.directory}; run: {fetch_command(name)} "
                           f"(or give a directory: {name}:DIR)")
    return status.directory


# -- downloading --------------------------------------------------------------------------------
class _Retry(Exception):
    """A transfer that broke: try again (resuming)."""


class _NotHere(Exception):
    """This server does not have the file (HTTP 4xx): try the next base URL."""


@dataclass
class FetchedFile:
    name: str
    path: Path
    status: str  # "downloaded", "resumed", "present"
    attempts: int


ProgressFn = Callable[[str, int, int | None], None]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _join(base: str, name: str) -> str:
    return base if base.endswith(name) else base.rstrip("/") + "/" + name


def _transfer(url: str, part: Path, expected: int | None, timeout: float,
              progress: ProgressFn | None, name: str) -> bool:
    """One attempt: append to (or restart) `part` from `url`. Returns True when it resumed.
    Raises _Retry for a broken transfer, _NotHere for a 4xx."""
    offset = part.stat().st_size if part.is_file() else 0
    if expected is not None and offset > expected:
        part.unlink()
        offset = 0
    if expected is not None and offset == expected:
        return offset > 0  # complete already: verify it
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) only
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the range starts past the end: start again
            part.unlink()
            raise _Retry("HTTP 416 for a resumed transfer") from None
        if 500 <= exc.code < 600 or exc.code in (408, 429):
            raise _Retry(f"HTTP {exc.code} {exc.reason}") from None
        raise _NotHere(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _Retry(_reason(exc)) from None
    with response:
        resumed = offset > 0 and response.status == 206
        if offset and not resumed:  # the server sent the whole file
            offset = 0
        length = response.headers.get("Content-Length")
        announced = offset + int(length) if length and length.isdigit() else expected
        got = offset
        try:
            with open(part, "ab" if resumed else "wb") as out:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    out.write(block)
                    got += len(block)
                    if progress is not None:
                        progress(name, got, announced)
                out.flush()
                os.fsync(out.fileno())
        except (OSError, http.client.HTTPException, socket.timeout) as exc:
            raise _Retry(f"transfer broke after {got} bytes: {_reason(exc)}") from None
    if announced is not None and got < announced:
        raise _Retry(f"transfer ended after {got} of {announced} bytes")
    return resumed


def fetch_file(urls: list[str] | str, dest: str | os.PathLike, sha256: str,
               size: int | None = None, *, retries: int = 3, timeout: float = 60.0,
               backoff: float = 1.0, progress: ProgressFn | None = None) -> FetchedFile:
    """Download `dest` from the first of `urls` that has it, verified against `sha256` (and
    `size`); see the module docstring for resuming, retrying and what is left behind."""
    dest = Path(dest)
    name = dest.name
    if dest.is_file() and (size is None or dest.stat().st_size == size) \
            and _sha256(dest) == sha256:
        return FetchedFile(name, dest, "present", 0)
    part = dest.with_name(name + PART_SUFFIX)
    urls = [urls] if isinstance(urls, str) else list(urls)
    errors = []
    attempts = 0
    resumed_any = False
    for url in urls:
        done = False
        for attempt in range(retries + 1):
            attempts += 1
            try:
                resumed_any |= _transfer(url, part, size, timeout, progress, name)
                done = True
                break
            except _NotHere as exc:
                errors.append(f"{url}: {exc}")
                break
            except _Retry as exc:
                errors.append(f"{url}: {exc}")
                if attempt < retries:
                    time.sleep(backoff * (2 ** attempt))
        if done:
            return _finish(part, dest, sha256, size, url, attempts, resumed_any)
    raise GradvizError(f"could not download {name} after {attempts} attempt(s): "
                       f"{errors[-1] if errors else 'no URL given'}"
                       + (f" (the partial file {part.name} is kept; fetch again to resume)"
                          if part.is_file() else ""))


def _finish(part: Path, dest: Path, sha256: str, size, url, attempts, resumed) -> FetchedFile:
    got_size = part.stat().st_size
    digest = _sha256(part)
    if (size is not None and got_size != size) or digest != sha256:
        part.unlink()
        what = (f"{got_size} bytes, expected {size}" if size is not None and got_size != size
                else f"SHA-256 {digest}, expected {sha256}")
        raise GradvizError(f"checksum mismatch for {dest.name} from {url}: {what}; "
                           "nothing was kept")
    os.replace(part, dest)
    _fsync_directory(str(dest.parent))
    return FetchedFile(dest.name, dest, "resumed" if resumed else "downloaded", attempts)


def fetch_dataset(name: str, *, root: str | os.PathLike | None = None, mirror: str | None = None,
                  catalog: Mapping[str, RemoteDataset] | None = None, retries: int = 3,
                  timeout: float = 60.0, backoff: float = 1.0,
                  progress: ProgressFn | None = None) -> list[FetchedFile]:
    """Fetch every file of data set `name` into `dataset_dir(name, root)`, verified. `mirror`
    (default ``$GRADVIZ_DATA_MIRROR``) replaces the catalog's base URLs."""
    ds = _dataset(name, catalog)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise GradvizError(f"retries must be an integer >= 0, got {retries!r}")
    mirror = mirror if mirror is not None else os.environ.get("GRADVIZ_DATA_MIRROR") or None
    if mirror is not None and not mirror.lower().startswith(("http://", "https://")):
        raise GradvizError(f"--mirror takes an http:// or https:// URL, got {mirror!r}")
    bases = [mirror] if mirror else list(ds.urls)
    directory = dataset_dir(ds.name, root)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GradvizError(f"cannot create data directory {directory}: "
                           f"{exc.strerror or exc}") from None
    return [fetch_file([_join(b, f.name) for b in bases], directory / f.name, f.sha256, f.size,
                       retries=retries, timeout=timeout, backoff=backoff, progress=progress)
            for f in ds.files]


class ProgressBar:
    """A one-line progress bar per file on a stream (stderr), redrawn in place."""

    def __init__(self, stream=None, width: int = 30):
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.current = None
        self.last = 0.0

    def __call__(self, name: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if name == self.current and not finished and now - self.last < 0.1:
            return
        self.current, self.last = name, now
        if total:
            filled = min(self.width, self.width * done // total)
            bar = "#" * filled + "-" * (self.width - filled)
            text = f"\r{name}  [{bar}] {done / 1e6:7.1f} / {total / 1e6:.1f} MB"
        else:
            text = f"\r{name}  {done / 1e6:7.1f} MB"
        self.stream.write(text + ("\n" if finished else ""))
        self.stream.flush()


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return " ".join(str(reason if reason is not None else exc).split()) or type(exc).__name__
