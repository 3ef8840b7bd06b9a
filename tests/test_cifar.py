"""CIFAR-10: `gradviz data fetch cifar10`, the safe reader of its pickles, `--data cifar10`.

Every archive here is a small fake ``cifar-10-python.tar.gz`` made in the real layout: members
``cifar-10-batches-py/data_batch_1..5``, ``test_batch``, ``batches.meta`` and ``readme.html``,
the batches pickled the way Python 2's cPickle wrote the real ones (protocol 2, byte strings as
BINSTRING, the array through ``numpy.core.multiarray._reconstruct``). The fetch tests serve it
from a local HTTP server on 127.0.0.1 (the one tests/test_data_fetch.py uses) with a catalog
holding its own sum. Nothing touches the network.
"""
import hashlib
import io
import os
import pickle
import struct
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gradviz.cli import cli
from gradviz.data import fetch as F
from gradviz.data import load_dataset
from gradviz.data.cifar import CLASSES, load_cifar10, parse_batch
from gradviz.errors import GradvizError
from gradviz.nn.models import build_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_data_fetch import Server  # noqa: E402

ARCHIVE = "cifar-10-python.tar.gz"
PER_BATCH, TEST_N = 8, 10
# the real archive's member order is not data_batch_1 first
ORDER = ("batches.meta", "data_batch_4", "readme.html", "test_batch", "data_batch_3",
         "data_batch_2", "data_batch_5", "data_batch_1")


def py2_pickle(obj) -> bytes:
    """`obj` (dicts, lists, bytes, ints, uint8 arrays) as Python 2's cPickle protocol 2 wrote
    CIFAR-10's batches."""
    out = bytearray(b"\x80\x02")

    def string(b: bytes):  # a Python 2 str
        out.extend((b"U" + bytes([len(b)])) if len(b) < 256 else b"T" + struct.pack("<i", len(b)))
        out.extend(b)

    def integer(v: int):
        out.extend(b"K" + bytes([v]) if 0 <= v < 256 else b"J" + struct.pack("<i", v))

    def emit(o):
        if isinstance(o, dict):
            out.extend(b"}(")
            for k, v in o.items():
                emit(k)
                emit(v)
            out.extend(b"u")
        elif isinstance(o, list):
            out.extend(b"](")
            for v in o:
                emit(v)
            out.extend(b"e")
        elif isinstance(o, bytes):
            string(o)
        elif isinstance(o, int):
            integer(o)
        elif isinstance(o, np.ndarray):
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            integer(0)
            out.extend(b"\x85")
            string(b"b")
            out.extend(b"\x87R(")
            integer(1)
            for d in o.shape:
                integer(d)
            out.extend(b"\x85\x86\x87"[o.ndim - 1:o.ndim])
            out.extend(b"cnumpy\ndtype\n")
            string(o.dtype.str[1:].encode())
            out.extend(b"\x89\x88\x87R(")
            integer(3)
            string(b"|")
            out.extend(b"NNN")
            integer(-1)
            integer(-1)
            integer(0)
            out.extend(b"tb\x89")
            string(o.tobytes())
            out.extend(b"tb")
        else:
            raise TypeError(type(o))

    emit(obj)
    out.extend(b".")
    return bytes(out)


def fake_batches(seed=0) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    batches = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        n = TEST_N if name == "test_batch" else PER_BATCH
        batches[name] = {
            b"batch_label": f"{name} of the fake".encode(),
            b"labels": [int(v) for v in (np.arange(n) + i) % 10],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(n)],
        }
    return batches


def make_tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def fake_archive(batches=None, replace=None, dumps=py2_pickle) -> bytes:
    batches = fake_batches() if batches is None else batches
    members = {}
    for name in ORDER:
        if name == "batches.meta":
            members[name] = dumps({b"label_names": [c.encode() for c in CLASSES],
                                   b"num_cases_per_batch": PER_BATCH, b"num_vis": 3072})
        elif name == "readme.html":
            members[name] = b"<html>fake</html>"
        else:
            members[name] = dumps(batches[name])
    members.update(replace or {})
    return make_tar(members)


@pytest.fixture
def archive(tmp_path) -> Path:
    path = tmp_path / "src" / ARCHIVE
    path.parent.mkdir()
    path.write_bytes(fake_archive())
    return path


# -- the reader ---------------------------------------------------------------------------------
def test_reads_the_real_layout_from_the_tar_without_extracting(archive, tmp_path):
    batches = fake_batches()
    train_x, train_y, test_x, test_y = load_cifar10(archive)
    assert train_x.shape == (5 * PER_BATCH, 3, 32, 32) and train_x.dtype == np.uint8
    assert test_x.shape == (TEST_N, 3, 32, 32) and test_y.dtype == np.int64
    # batches in order 1..5 whatever the member order; rows are channel-major 3x32x32
    first = batches["data_batch_1"][b"data"]
    assert np.array_equal(train_x[0, 2, 5, 7], first[0, 2 * 1024 + 5 * 32 + 7])
    assert np.array_equal(train_x[PER_BATCH:2 * PER_BATCH].reshape(PER_BATCH, -1),
                          batches["data_batch_2"][b"data"])
    assert train_y[:PER_BATCH].tolist() == batches["data_batch_1"][b"labels"]
    assert test_y.tolist() == batches["test_batch"][b"labels"]
    assert sorted(p.name for p in archive.parent.iterdir()) == [ARCHIVE]  # nothing extracted
    # a directory holding the archive, and the limit
    x, y, tx, ty = load_cifar10(archive.parent, limit=3)
    assert len(x) == len(y) == len(tx) == len(ty) == 3


def test_extracted_folder_and_python3_pickles(archive, tmp_path):
    batches = fake_batches(seed=1)
    folder = tmp_path / "x" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, batch in batches.items():  # NumPy 2's names (numpy._core.multiarray) this time
        (folder / name).write_bytes(pickle.dumps(batch, protocol=4))
    for where in (folder, folder.parent):
        train_x, train_y, test_x, _ = load_cifar10(where)
        assert np.array_equal(train_x[-1].reshape(-1), batches["data_batch_5"][b"data"][-1])
    (folder / "test_batch").unlink()
    with pytest.raises(GradvizError, match="missing test_batch"):
        load_cifar10(folder)
    with pytest.raises(GradvizError, match="holds neither cifar-10-python.tar.gz"):
        load_cifar10(tmp_path / "src" / "..")  # tmp_path: no archive, no batches
    with pytest.raises(GradvizError, match="no such file or directory"):
        load_cifar10(tmp_path / "nowhere")


@pytest.mark.parametrize("body, match", [
    (b"", "not a readable cifar-10-python.tar.gz"),
    (b"this is not a gzip file at all" * 10, "not a readable cifar-10-python.tar.gz"),
    ("truncate", "truncated|damaged or truncated"),
    ("no-test", "no cifar-10-batches-py/test_batch in the archive"),
    ("not-a-pickle", "data_batch_3: not a CIFAR-10 batch .bad pickle"),
    ("wrong-shape", r"data is a uint8 array of shape \(8, 100\)"),
    ("bad-label", "label 12 at index 0 is not 0-9"),
    ("many-members", "more than 100 members before all the batches were found"),
])
def test_bad_archives_are_one_line(tmp_path, body, match):
    if body == "truncate":
        whole = fake_archive()
        body = whole[:len(whole) * 2 // 3]
    elif body == "no-test":
        body = make_tar({n: py2_pickle(b) for n, b in fake_batches().items()
                         if n != "test_batch"})
    elif body == "many-members":
        body = make_tar({f"padding_{i}": b"" for i in range(101)})
    elif body == "not-a-pickle":
        body = fake_archive(replace={"data_batch_3": b"\x80\x02}q\x01(U\x04data"})
    elif body in ("wrong-shape", "bad-label"):
        batches = fake_batches()
        if body == "wrong-shape":
            batches["data_batch_2"][b"data"] = np.zeros((8, 100), np.uint8)
        else:
            batches["test_batch"][b"labels"][0] = 12
        body = fake_archive(batches)
    path = tmp_path / ARCHIVE
    path.write_bytes(body)
    with pytest.raises(GradvizError, match=match) as info:
        load_cifar10(path)
    assert "\n" not in str(info.value)


class Boom:
    """What a malicious batch would hold: unpickling it runs a shell command."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": Boom(f"touch {marker}"), b"labels": [0]}, protocol=4)
    command = f"touch {marker}".encode()  # and as Python 2 would have written it
    evil2 = (b"\x80\x02}(U\x04datacos\nsystem\nU" + bytes([len(command)]) + command
             + b"\x85RU\x06labels](K\x00eu.")
    path = tmp_path / ARCHIVE
    for payload in (evil, evil2):
        path.write_bytes(fake_archive(replace={"data_batch_1": payload}))
        with pytest.raises(GradvizError, match=r"data_batch_1: refused to unpickle "
                                               r"(posix|nt|os)\.system .*nothing was run"):
            load_cifar10(path)
        assert not marker.exists()
    # through the CLI: exit code 2, one line, still nothing run
    result = CliRunner().invoke(cli, ["train", "-m", "cnn", "-d", f"cifar10:{path}",
                                      "--epochs", "1", "--device", "numpy"])
    assert result.exit_code == 2 and "refused to unpickle" in result.output
    assert "Traceback" not in result.output and not marker.exists()


@pytest.mark.parametrize("payload, match", [
    (pickle.dumps(eval, protocol=4), "builtins.eval"),
    (pickle.dumps({b"data": np.array([1, "x"], dtype=object)}, protocol=4), "dtype 'O"),
    (pickle.dumps(np.ma.masked_array([1, 2]), protocol=4), r"numpy\.ma\.core"),
    (pickle.dumps(np.zeros(3), protocol=5), r"numpy\._core\.numeric\._frombuffer"),
    (pickle.dumps([1, 2], protocol=4), "a pickled list, expected a dict"),
])
def test_only_plain_numeric_arrays_are_rebuilt(payload, match):
    with pytest.raises(GradvizError, match=match):
        parse_batch(payload, "batch")


# -- fetching and loading by name ---------------------------------------------------------------
@pytest.fixture
def served(archive):
    server = Server({ARCHIVE: archive.read_bytes()})
    yield server
    server.close()


def _catalog(server, sha256=None) -> dict:
    body = server.files[ARCHIVE]
    f = F.RemoteFile(ARCHIVE, len(body), sha256 or hashlib.sha256(body).hexdigest())
    return {"cifar10": F.RemoteDataset("cifar10", "test CIFAR-10", (server.url,), (f,))}


def test_fetch_then_load_by_name(served, tmp_path, monkeypatch):
    root = tmp_path / "data"
    got = F.fetch_dataset("cifar10", root=root, catalog=_catalog(served), backoff=0, timeout=5)
    assert [(f.name, f.status) for f in got] == [(ARCHIVE, "downloaded")]
    assert (root / "cifar10" / ARCHIVE).read_bytes() == served.files[ARCHIVE]
    monkeypatch.setattr(F, "CATALOG", _catalog(served))
    monkeypatch.setenv("GRADVIZ_DATA", str(root))
    ds = load_dataset("cifar10", layout="image")
    assert ds.image_shape == (3, 32, 32) and ds.X_train.shape[1:] == (3, 32, 32)
    assert ds.class_names == CLASSES and ds.n_classes == 10
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (36, 4, TEST_N)
    assert ds.X_train.dtype == np.float32 and 0.0 <= ds.X_train.min() <= ds.X_train.max() <= 1.0
    assert ds.info["test_from"] == "test batch" and len(ds.feature_names) == 3072
    # the same files through cifar10:DIR
    again = load_dataset(f"cifar10:{root / 'cifar10'}", layout="image")
    assert np.array_equal(again.X_test, ds.X_test)


def test_without_the_files_the_error_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADVIZ_DATA", str(tmp_path))
    with pytest.raises(GradvizError, match=r"cifar10 is not fetched in .*; run: gradviz data "
                                           r"fetch cifar10 \(or give a directory: cifar10:DIR\)"):
        load_dataset("cifar10")


def test_cli_bad_checksum_is_exit_2_and_keeps_nothing(served, tmp_path, monkeypatch):
    monkeypatch.setattr(F, "CATALOG", _catalog(served, sha256="0" * 64))
    monkeypatch.delenv("GRADVIZ_DATA_MIRROR", raising=False)
    result = CliRunner().invoke(cli, ["data", "fetch", "cifar10", "--dir", str(tmp_path / "d"),
                                      "--retries", "0"])
    assert result.exit_code == 2
    assert "checksum mismatch for cifar-10-python.tar.gz" in result.output
    assert not any((tmp_path / "d" / "cifar10").iterdir())


def test_cli_fetch_list_and_train_cnn(served, tmp_path, monkeypatch):
    monkeypatch.setattr(F, "CATALOG", {**F.CATALOG, **_catalog(served)})
    monkeypatch.setenv("GRADVIZ_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("GRADVIZ_DATA_MIRROR", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    listed = runner.invoke(cli, ["data", "list"]).output
    assert "cifar10        not fetched (run: gradviz data fetch cifar10)" in listed
    result = runner.invoke(cli, ["data", "fetch", "cifar10", "--retries", "0"])
    assert result.exit_code == 0, result.output
    assert "cifar-10-python.tar.gz  downloaded, SHA-256 verified" in result.output
    assert "cifar10        1 file, 0.2 MB" in runner.invoke(cli, ["data", "list"]).output
    result = runner.invoke(cli, ["train", "-m", "cnn", "-d", "cifar10", "--epochs", "2",
                                 "--batch", "12", "--device", "numpy", "--json"])
    assert result.exit_code == 0, result.output
    assert '"data": "cifar10"' in result.output.splitlines()[-1]
    # cifar10:DIR with a checkpoint: the run records the archive's fingerprint, evaluate reopens it
    where = tmp_path / "data" / "cifar10"
    result = runner.invoke(cli, ["train", "-m", "cnn", "-d", f"cifar10:{where}", "--epochs", "1",
                                 "--device", "numpy", "--checkpoint", "run"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["evaluate", "--checkpoint", "run"])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output


def test_models_for_3x32x32():
    assert build_model("cnn", (3, 32, 32), 10).output_shape((3, 32, 32)) == (10,)
    assert build_model("lenet", (3, 32, 32), 10).output_shape((3, 32, 32)) == (10,)
    with pytest.raises(GradvizError, match="alexnet needs inputs of at least 63x63"):
        build_model("alexnet", (3, 32, 32), 10)


def test_the_catalog_knows_the_canonical_archive():
    ds = F.CATALOG["cifar10"]
    assert ds.urls == ("https://www.cs.toronto.edu/~kriz/",)
    (f,) = ds.files
    assert (f.name, f.size) == (ARCHIVE, 170498071)
    assert f.sha256 == "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
    assert f.md5 == "c58f30108f718f92721af3b95e74349a"
