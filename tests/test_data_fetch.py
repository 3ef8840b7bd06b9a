"""`gradviz data fetch`: downloads verified by SHA-256, atomic, retried and resumed.

Every test serves small MNIST-shaped IDX files (made with `write_idx`) from its own HTTP server
on 127.0.0.1 (port 0, a daemon thread, shut down by the fixture) and passes a catalog with those
files' sums. Nothing touches the network.
"""
import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gradviz.cli import cli
from gradviz.data import fetch as F
from gradviz.data.idx import write_idx
from gradviz.errors import GradvizError

NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _files(tmp_path: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    arrays = {NAMES[0]: rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
              NAMES[1]: (np.arange(40) % 10).astype(np.uint8),
              NAMES[2]: rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
              NAMES[3]: (np.arange(20) % 10).astype(np.uint8)}
    out = {}
    for name, array in arrays.items():
        write_idx(src / name, array)
        out[name] = (src / name).read_bytes()
    return out


class Server:
    """A local server of `files`; `plan[name]` is a list of behaviours for successive requests
    of that file: "ok", "500", "truncate" (announce the whole length, send half, close),
    "ignore-range" (send 200 with the whole file), "corrupt" (flip a byte)."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.plan: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append((name, self.headers.get("Range")))
                if name not in server.files:
                    self.send_error(404)
                    return
                steps = server.plan.get(name) or ["ok"]
                how = steps.pop(0) if len(steps) > 1 else steps[0]
                body = server.files[name]
                if how == "500":
                    self.send_error(500)
                    return
                if how == "corrupt":
                    body = bytes([body[0] ^ 1]) + body[1:]
                start = 0
                rng = self.headers.get("Range")
                if rng and how != "ignore-range":
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if how == "truncate":
                    self.wfile.write(payload[:len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mnist/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def served(tmp_path):
    files = _files(tmp_path)
    server = Server(files)
    yield server
    server.close()


def _catalog(server: Server, **wrong) -> dict:
    files = tuple(F.RemoteFile(n, len(b), wrong.get(n, hashlib.sha256(b).hexdigest()))
                  for n, b in server.files.items())
    return {"mnist": F.RemoteDataset("mnist", "test MNIST", (server.url,), files)}


def _fetch(server, root, **kw):
    kw.setdefault("catalog", _catalog(server))
    return F.fetch_dataset("mnist", root=root, retries=kw.pop("retries", 3), backoff=0,
                           timeout=5, **kw)


def test_fetch_verifies_and_places_every_file(served, tmp_path):
    root = tmp_path / "data"
    got = _fetch(served, root)
    assert [f.status for f in got] == ["downloaded"] * 4
    for name, body in served.files.items():
        assert (root / "mnist" / name).read_bytes() == body
    assert not list((root / "mnist").glob("*.part"))
    # a second fetch finds them, verified, and downloads nothing
    before = len(served.requests)
    assert [f.status for f in _fetch(served, root)] == ["present"] * 4
    assert len(served.requests) == before
    # and the loader reads the fetched set by name
    status = F.local_status("mnist", root=root, catalog=_catalog(served))
    assert status.complete and F.require_local("mnist", root=root, catalog=_catalog(served))


def test_bad_checksum_leaves_nothing_behind(served, tmp_path):
    root = tmp_path / "data"
    catalog = _catalog(served, **{NAMES[1]: "0" * 64})
    with pytest.raises(GradvizError, match="checksum mismatch for train-labels-idx1-ubyte.gz"):
        _fetch(served, root, catalog=catalog)
    left = sorted(p.name for p in (root / "mnist").iterdir())
    assert left == [NAMES[0]]  # the verified file before it stays; nothing of the bad one


def test_corrupt_bytes_from_a_mirror_are_refused(served, tmp_path):
    served.plan[NAMES[3]] = ["corrupt"]
    with pytest.raises(GradvizError, match="SHA-256 .* expected"):
        _fetch(served, tmp_path / "d", mirror=served.url)
    assert not (tmp_path / "d" / "mnist" / NAMES[3]).exists()
    assert not (tmp_path / "d" / "mnist" / (NAMES[3] + ".part")).exists()


def test_truncated_transfer_resumes_with_a_range_request(served, tmp_path):
    served.plan[NAMES[0]] = ["truncate", "ok"]
    got = _fetch(served, tmp_path / "d")
    assert got[0].status == "resumed" and got[0].attempts == 2
    ranges = [r for n, r in served.requests if n == NAMES[0]]
    half = len(served.files[NAMES[0]]) // 2
    assert ranges == [None, f"bytes={half}-"]
    assert (tmp_path / "d" / "mnist" / NAMES[0]).read_bytes() == served.files[NAMES[0]]


def test_server_error_then_retry(served, tmp_path):
    served.plan[NAMES[2]] = ["500", "500", "ok"]
    got = _fetch(served, tmp_path / "d")
    assert got[2].status == "downloaded" and got[2].attempts == 3


def test_retries_are_bounded_and_the_part_file_is_kept_for_later(served, tmp_path):
    served.plan[NAMES[0]] = ["truncate"]  # every request breaks half way
    with pytest.raises(GradvizError, match=r"after 3 attempt\(s\).*kept; fetch again to resume"):
        _fetch(served, tmp_path / "d", retries=2)
    part = tmp_path / "d" / "mnist" / (NAMES[0] + ".part")
    assert part.is_file() and not (tmp_path / "d" / "mnist" / NAMES[0]).exists()
    served.plan[NAMES[0]] = ["ok"]
    got = _fetch(served, tmp_path / "d")
    assert got[0].status == "resumed"
    assert (tmp_path / "d" / "mnist" / NAMES[0]).read_bytes() == served.files[NAMES[0]]


def test_a_server_that_ignores_the_range_restarts_the_file(served, tmp_path):
    directory = tmp_path / "d" / "mnist"
    directory.mkdir(parents=True)
    (directory / (NAMES[1] + ".part")).write_bytes(b"garbage")
    served.plan[NAMES[1]] = ["ignore-range"]
    got = _fetch(served, tmp_path / "d")
    assert got[1].status == "downloaded"
    assert (directory / NAMES[1]).read_bytes() == served.files[NAMES[1]]


def test_missing_file_on_the_server_is_one_line(served, tmp_path):
    catalog = _catalog(served)
    ds = catalog["mnist"]
    catalog["mnist"] = F.RemoteDataset("mnist", "t", ds.urls,
                                       ds.files + (F.RemoteFile("nope.gz", 3, "0" * 64),))
    with pytest.raises(GradvizError, match="could not download nope.gz .*HTTP 404"):
        _fetch(served, tmp_path / "d", catalog=catalog)


def test_data_directory_comes_from_the_environment(monkeypatch, tmp_path):
    assert F.data_root({"GRADVIZ_DATA": str(tmp_path)}) == tmp_path
    assert F.data_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "gradviz" / "data"
    assert F.data_root({"HOME": "/h"}).parts[-3:] == (".cache", "gradviz", "data")


def test_cli_fetch_list_and_train_by_name(served, tmp_path, monkeypatch):
    monkeypatch.setattr(F, "CATALOG", _catalog(served))
    monkeypatch.setenv("GRADVIZ_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("GRADVIZ_DATA_MIRROR", raising=False)
    runner = CliRunner()
    result = runner.invoke(cli, ["data", "list"])
    assert result.exit_code == 0 and "not fetched (run: gradviz data fetch mnist)" in result.output
    result = runner.invoke(cli, ["train", "-m", "logreg", "-d", "mnist", "--epochs", "1",
                                 "--device", "numpy"])
    assert result.exit_code == 2
    assert "run: gradviz data fetch mnist" in result.output
    result = runner.invoke(cli, ["data", "fetch", "mnist", "--retries", "0"])
    assert result.exit_code == 0, result.output
    assert "train-images-idx3-ubyte.gz  downloaded, SHA-256 verified" in result.output
    assert runner.invoke(cli, ["data", "list"]).output.splitlines()[1].startswith(
        "mnist  4 files")
    result = runner.invoke(cli, ["train", "-m", "logreg", "-d", "mnist", "--epochs", "1",
                                 "--device", "numpy", "--json"])
    assert result.exit_code == 0, result.output
    assert '"data": "mnist"' in result.output.splitlines()[-1]


def test_cli_mirror_mismatch_is_exit_2(served, tmp_path, monkeypatch):
    catalog = _catalog(served, **{NAMES[0]: "f" * 64})
    monkeypatch.setattr(F, "CATALOG", catalog)
    monkeypatch.setenv("GRADVIZ_DATA_MIRROR", served.url)
    result = CliRunner().invoke(cli, ["data", "fetch", "mnist", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "checksum mismatch for train-images-idx3-ubyte.gz" in result.output
    assert not any((tmp_path / "mnist").iterdir())
    result = CliRunner().invoke(cli, ["data", "fetch", "mnist", "--mirror", "ftp://x"])
    assert result.exit_code == 2 and "http:// or https://" in result.output


def test_the_catalog_knows_the_canonical_files():
    for name in ("mnist", "fashion-mnist"):
        ds = F.CATALOG[name]
        assert [f.name for f in ds.files] == list(NAMES)
        assert all(len(f.sha256) == 64 and len(f.md5) == 32 and f.size for f in ds.files)
    assert F.CATALOG["mnist"].files[0].size == 9912422
    assert gzip  # the files served above are gzip-compressed IDX, as the real ones
