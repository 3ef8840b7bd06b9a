"""Hostile and careless input (issue 13): bounded time and memory, exit code 2 with one line on
stderr everywhere, safe writes, checkpoints that cannot be turned against the user."""
import gzip
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from gradviz.errors import GradvizError

FAST = ["--device", "numpy"]


def _cli(*args, env=None):
    """Run the CLI in a child process: (exit code, stdout, stderr)."""
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "NUMBA_NUM_THREADS": "1", **(env or {})}
    done = subprocess.run([sys.executable, "-m", "gradviz", *map(str, args)],
                          capture_output=True, text=True, timeout=240, env=environ)
    return done.returncode, done.stdout, done.stderr


def _in_process(*args):
    from click.testing import CliRunner

    from gradviz.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_error(result, *fragments):
    """Exit code 2, exactly one stderr line starting `gradviz: error:`, no traceback."""
    code, _, err = result
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("gradviz: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# -- outputs -------------------------------------------------------------------------------------
def _bad_outputs(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return {"directory": tmp_path, "empty": "", "proc": "/proc/gradviz-x.svg",
            "missing dir": tmp_path / "nodir" / "x.svg", "device": "/dev/full", "fifo": fifo,
            "dev null": "/dev/null"}


@pytest.mark.skipif(os.name != "posix", reason="POSIX special files")
def test_draw_refuses_every_bad_output_and_leaves_it_alone(tmp_path):
    for name, path in _bad_outputs(tmp_path).items():
        assert_one_error(_cli("draw", "x*y", "-o", path))
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    assert stat.S_ISFIFO(os.stat(tmp_path / "fifo").st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_an_unwritable_directory_is_refused(tmp_path, monkeypatch):
    from gradviz import files

    real = os.access
    monkeypatch.setattr(files.os, "access", lambda p, m: False if str(p) == str(tmp_path)
                        else real(p, m))
    with pytest.raises(GradvizError, match="not writable"):
        files.check_output_file(tmp_path / "x.svg")
    with pytest.raises(GradvizError, match="not writable"):
        files.check_output_dir(tmp_path / "frames")
    result = _in_process("draw", "x*y", "-o", tmp_path / "x.svg")
    assert result.exit_code == 2 and "not writable" in result.output


def test_a_symlink_is_followed_and_stays_a_link(tmp_path):
    target = tmp_path / "target.svg"
    link = tmp_path / "link.svg"
    link.symlink_to(target.name)
    code, out, err = _cli("draw", "x*y", "-o", link)
    assert code == 0, err
    assert link.is_symlink() and target.read_bytes().startswith(b"<")


def test_every_output_option_is_checked_before_the_work(tmp_path):
    slow = ["train", "-m", "mlp", "-d", "xor", "--hidden", "2", "--epochs", "100000", *FAST]
    for option in ("--plot", "--plot-regions"):
        started = time.perf_counter()
        assert_one_error(_cli(*slow, option, tmp_path / "nodir" / "p.png"), option)
        assert time.perf_counter() - started < 30  # not after 100,000 epochs
    (tmp_path / "file").write_text("x")
    for option in ("--frames", "--checkpoint"):
        assert_one_error(_cli(*slow, option, tmp_path / "file"), option, "not a directory")
        assert_one_error(_cli(*slow, option, "/proc/gradviz-run"), option)
    assert_one_error(_cli("steps", "x*y", "--at", "x=1,y=2", "-o", tmp_path / "file"))
    assert_one_error(_cli("descend", "w**2", "--from", "w=1", "--plot", "/dev/full"))
    assert_one_error(_cli("fit", "heights", "--plot", tmp_path / "nodir" / "f.png"))


def test_write_atomic_refuses_special_files(tmp_path):
    from gradviz.files import write_atomic

    with pytest.raises(GradvizError, match="not a regular file"):
        write_atomic(tmp_path, b"x")
    if os.path.exists("/dev/full"):
        with pytest.raises(GradvizError):
            write_atomic("/dev/full", b"x")
    with pytest.raises(GradvizError, match="empty"):
        write_atomic("", b"x")


# -- memory from small inputs --------------------------------------------------------------------
def _idx_header(code: int, shape) -> bytes:
    return bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", s) for s in shape)


def _mnist_dir(tmp_path, name: str, images: bytes, gz: bool = False):
    directory = tmp_path / name
    directory.mkdir()
    target = directory / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    if gz:
        with gzip.open(target, "wb", compresslevel=1) as handle:
            handle.write(images)
    else:
        target.write_bytes(images)
    (directory / "train-labels-idx1-ubyte").write_bytes(_idx_header(8, (10,)) + bytes(10))
    return directory


def test_idx_headers_are_checked_before_the_body(tmp_path):
    cases = {
        "zero": (_idx_header(8, (0, 28, 28)), "holds no data"),
        "overflow": (_idx_header(0x0E, (0xFFFFFFFF,) * 4), "more than the limit"),
        "huge": (_idx_header(8, (2_000_000, 28, 28)), "more than the limit"),
        "short": (_idx_header(8, (10, 28, 28)) + bytes(100), "truncated"),
        "long": (_idx_header(8, (10, 2, 2)) + bytes(41), "has 41 bytes"),
    }
    for name, (data, message) in cases.items():
        directory = _mnist_dir(tmp_path, name, data)
        assert_one_error(_cli("train", "-m", "mlp", "-d", f"mnist:{directory}", *FAST), message)


def test_a_gzip_bomb_is_refused_without_expanding_it(tmp_path):
    directory = tmp_path / "bomb"
    directory.mkdir()
    with gzip.open(directory / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as handle:
        handle.write(_idx_header(8, (10, 28, 28)))
        chunk = bytes(1 << 22)
        for _ in range(64):  # 256 MiB of zeros, 250 KB compressed
            handle.write(chunk)
    (directory / "train-labels-idx1-ubyte").write_bytes(_idx_header(8, (10,)) + bytes(10))
    started = time.perf_counter()
    assert_one_error(_cli("train", "-m", "mlp", "-d", f"mnist:{directory}", *FAST),
                     "gzip file says it holds")
    assert time.perf_counter() - started < 20


def test_the_idx_limit_can_be_changed(tmp_path, monkeypatch):
    from gradviz.data import read_idx

    directory = _mnist_dir(tmp_path, "ok", _idx_header(8, (10, 4, 4)) + bytes(160))
    monkeypatch.setenv("GRADVIZ_MAX_IDX_BYTES", "100")
    with pytest.raises(GradvizError, match="limit of 100 bytes"):
        read_idx(directory / "train-images-idx3-ubyte")
    monkeypatch.setenv("GRADVIZ_MAX_IDX_BYTES", "lots")
    with pytest.raises(GradvizError, match="GRADVIZ_MAX_IDX_BYTES"):
        read_idx(directory / "train-images-idx3-ubyte")
    monkeypatch.delenv("GRADVIZ_MAX_IDX_BYTES")
    assert read_idx(directory / "train-images-idx3-ubyte").shape == (10, 4, 4)


@pytest.mark.parametrize("args, message", [
    (["train", "-m", "mlp", "-d", "xor", "--hidden", "1000000000", *FAST], "parameters"),
    (["train", "-m", "mlp", "-d", "xor", "--epochs", "1000000000", *FAST], "--epochs"),
    (["perceptron", "--data", "or", "--epochs", "1000000000"], "presentations"),
    (["descend", "w**2", "--from", "w=1", "--max-iter", "1000000000"], "--max-iter"),
    (["fit", "heights", "--max-iter", "1000000000"], "--max-iter"),
])
def test_huge_sizes_are_refused_up_front(args, message):
    started = time.perf_counter()
    assert_one_error(_cli(*args), message)
    assert time.perf_counter() - started < 30


def test_the_parameter_limit_can_be_changed():
    assert_one_error(_cli("train", "-m", "mlp", "-d", "xor", "--hidden", "8", "--epochs", "1",
                          *FAST, env={"GRADVIZ_MAX_PARAMS": "10"}), "limit of 10")


# -- exit 3 where 2 is promised -------------------------------------------------------------------
def test_model_files_of_binary_bytes_or_deep_nesting(tmp_path):
    binary = tmp_path / "bin.json"
    binary.write_bytes(bytes(range(256)) * 10)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"layers": ["flatten"], "description": "x" * (2 << 20)}))
    for path, message in ((binary, "not a text file"), (deep, "nested too deeply"),
                          (big, "at most")):
        assert_one_error(_cli("train", "-m", path, "-d", "xor", *FAST), message)
        assert_one_error(_cli("summary", "-m", path), message)


# -- checkpoints ---------------------------------------------------------------------------------
def _trained(tmp_path, data="xor", *extra):
    run = tmp_path / "run"
    code, out, err = _cli("train", "-m", "mlp", "-d", data, "--hidden", "2", "--epochs", "1",
                          "--checkpoint", run, *FAST, *extra)
    assert code == 0, err
    return run


def _rewrite(run, change, rehash=True):
    from gradviz.nn import checkpoints as ckpt

    path = run / "checkpoint.json"
    meta = json.loads(path.read_text())
    change(meta)
    if rehash:  # as a careful attacker would: the checksum alone is no defence
        meta.pop("meta_sha256", None)
        meta["meta_sha256"] = ckpt.meta_digest(meta)
    path.write_text(json.dumps(meta))


def test_edited_checkpoints_are_refused(tmp_path):
    run = _trained(tmp_path)
    _rewrite(run, lambda m: m["config"].update(hidden=[3]), rehash=False)
    assert_one_error(_cli("evaluate", "--checkpoint", run), "checksum")
    cases = [
        (lambda m: m["config"].update(hidden="abc"), "--hidden"),
        (lambda m: m["config"].update(hidden=[2], epochs="many"), "--epochs"),
        (lambda m: m["config"].update(epochs=1, lr=[1]), "--lr"),
        (lambda m: m["config"].update(lr=None, model=7), "--model"),
        (lambda m: m["config"].update(model="mlp", device="x"), "not one gradviz wrote"),
        (lambda m: (m["config"].pop("device"), m.update(device="gpu0")), "unknown device"),
        (lambda m: m.update(device="numpy", optimizer={"name": "evil"}), "optimizer"),
        (lambda m: m.update(version=1), "older gradviz"),
    ]
    for change, message in cases:
        _rewrite(run, change)
        assert_one_error(_cli("train", "--checkpoint", run, "--resume", "--epochs", "2"),
                         message)
        if message not in ("unknown device", "optimizer"):  # evaluate does not use those
            assert_one_error(_cli("evaluate", "--checkpoint", run), message)


def test_a_checkpoint_cannot_make_evaluate_read_another_file(tmp_path):
    table = tmp_path / "t.csv"
    rng = np.random.default_rng(0)
    table.write_text("a,b,y\n" + "".join(f"{x:.3f},{z:.3f},{int(x > z)}\n"
                                          for x, z in rng.normal(size=(40, 2))))
    run = _trained(tmp_path, table, "--target", "y")
    code, out, err = _cli("evaluate", "--checkpoint", run)
    assert code == 0, err
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:secret line\n")
    _rewrite(run, lambda m: m["config"].update(data=str(secret)))
    result = _cli("evaluate", "--checkpoint", run)
    assert_one_error(result, "--data")
    assert "secret line" not in result[1] + result[2]
    _rewrite(run, lambda m: m["sources"].update(data={"spec": str(secret), "sha256": "0" * 64}))
    result = _cli("evaluate", "--checkpoint", run)
    assert_one_error(result, "missing or has changed")
    assert "secret line" not in result[1] + result[2]
    result = _cli("train", "--checkpoint", run, "--resume", "--epochs", "2")
    assert_one_error(result, "missing or has changed")
    # the user naming the file is what it takes
    _rewrite(run, lambda m: (m["config"].update(data=str(table)),
                             m["sources"].update(data={"spec": str(table), "sha256": "0" * 64})))
    code, out, err = _cli("evaluate", "--checkpoint", run, "--data", table, "--target", "y")
    assert code == 0, err


def test_a_changed_data_file_is_not_used_silently(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    run = _trained(tmp_path, table, "--target", "y")
    table.write_text("a,y\n" + "".join(f"{i},{(i + 1) % 2}\n" for i in range(20)))
    assert_one_error(_cli("evaluate", "--checkpoint", run), "has changed")


def test_checkpoint_lock(tmp_path):
    from gradviz.nn import checkpoints as ckpt

    run = tmp_path / "run"
    with ckpt.lock(run):
        with pytest.raises(GradvizError, match="in use by process"):
            with ckpt.lock(run):
                pass
        assert_one_error(_cli("train", "-m", "mlp", "-d", "xor", "--hidden", "2",
                              "--epochs", "1", "--checkpoint", run, *FAST), "in use")
    assert not (run / ckpt.LOCK_FILE).exists()
    # a lock whose process is gone is stale: taken over
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    (run / ckpt.LOCK_FILE).write_text(f"{dead.pid} {socket.gethostname()}\n")
    code, out, err = _cli("train", "-m", "mlp", "-d", "xor", "--hidden", "2", "--epochs", "1",
                          "--checkpoint", run, *FAST)
    assert code == 0, err
    assert not (run / ckpt.LOCK_FILE).exists()


# -- kernel cache --------------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners")
def test_kernel_cache_locations_that_cannot_be_used(tmp_path, monkeypatch):
    from gradviz.compiler import cache

    a_file = tmp_path / "file"
    a_file.write_text("x")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    for place, message in ((a_file, "not a directory"), (a_file / "sub", "cannot use"),
                           ("/proc/gradviz-nope/x", "cannot use"), (shared, "chmod go-w")):
        monkeypatch.setenv("GRADVIZ_CACHE", str(place))
        with pytest.raises(GradvizError, match=message):
            cache.kernels_dir()
        assert_one_error(_cli("train", "-m", "logreg", "-d", "and", "--epochs", "1", "--device",
                              "cpu", env={"GRADVIZ_CACHE": str(place)}), message)
    mine = tmp_path / "mine"
    monkeypatch.setenv("GRADVIZ_CACHE", str(mine))
    assert stat.S_IMODE(cache.kernels_dir().stat().st_mode) == 0o700
    uid = os.getuid()
    monkeypatch.setattr(cache.os, "getuid", lambda: uid + 1)
    with pytest.raises(GradvizError, match="another user"):
        cache.kernels_dir()
    monkeypatch.undo()
    real = os.access
    monkeypatch.setattr(cache.os, "access", lambda p, m: False if str(p) == str(mine)
                        else real(p, m))
    monkeypatch.setenv("GRADVIZ_CACHE", str(mine))
    with pytest.raises(GradvizError, match="not writable"):
        cache.kernels_dir()


def test_unlisted_numba_files_are_deleted_before_import(tmp_path, monkeypatch):
    from gradviz.compiler import cache

    monkeypatch.setenv("GRADVIZ_CACHE", str(tmp_path / "c"))
    source = "VALUE = 42\n"
    path = cache.source_path(source)
    pycache = path.parent / "__pycache__"
    pycache.mkdir(mode=0o700)
    name = cache.module_name(source)
    planted = pycache / f"{name}.run-1.py311.nbi"
    planted.write_bytes(b"\x80\x04planted pickle")
    listed = pycache / f"{name}.run-2.py311.nbi"
    listed.write_bytes(b"kept")
    (path.parent / f"{name}.manifest.json").write_text(
        json.dumps({listed.name: cache._sha256(listed)}))
    module = cache.load(source)
    assert module.VALUE == 42
    assert not planted.exists() and listed.exists()
    cache._record_manifests()
    manifest = json.loads((path.parent / f"{name}.manifest.json").read_text())
    assert manifest == {listed.name: cache._sha256(listed)}


# -- Ctrl-C ---------------------------------------------------------------------------------------
@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("args", [
    ["train", "-m", "mlp", "-d", "digits", "--hidden", "16", "--epochs", "100000", *FAST],
    ["descend", "(1-x)**2 + 100*(y-x**2)**2", "--from", "x=-1.5,y=2", "--eps", "1e-300",
     "--max-iter", "100000", "--compare", "sgd:1e-7,momentum:1e-7,rmsprop:1e-7,adam:1e-7,"
     "adamax:1e-7,adadelta:1e-7,sgd:2e-7,momentum:2e-7"],
])
def test_ctrl_c_ends_a_long_command_within_a_second(args):
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "NUMBA_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-m", "gradviz", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=environ)
    try:
        time.sleep(5)  # imports done, the work under way
        assert child.poll() is None, child.stderr.read()
        sent = time.perf_counter()
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=10)
        took = time.perf_counter() - sent
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130
    assert err.decode().strip().splitlines() == ["gradviz: interrupted"]
    assert took < 1.5


# -- noise and late failures ----------------------------------------------------------------------
def test_numpy_warnings_never_reach_stderr(tmp_path):
    code, out, err = _cli("train", "-m", "mlp", "-d", "xor", "--hidden", "2", "--lr", "1e300",
                          *FAST)
    assert_one_error((code, out, err), "loss is nan")
    big = tmp_path / "big.csv"
    big.write_text("a,b,y\n" + "".join(f"{1.7e308 * (-1) ** i},{i},{i % 2}\n"
                                        for i in range(20)))
    assert_one_error(_cli("train", "-m", "mlp", "-d", big, "--target", "y", *FAST),
                     "too large")


def test_a_one_class_csv_is_refused(tmp_path):
    one = tmp_path / "one.csv"
    one.write_text("a,b,y\n" + "".join(f"{i},{i * 2},1\n" for i in range(10)))
    assert_one_error(_cli("train", "-m", "mlp", "-d", one, "--target", "y", *FAST),
                     "only one class")
    assert_one_error(_cli("perceptron", "--data", one, "--target", "y"), "only one class")


# -- quadratic time ------------------------------------------------------------------------------
def test_check_nodes_is_linear():
    import gradviz as gv
    from gradviz.verify.node_checks import check_nodes

    x = gv.var("x")
    f = x
    for i in range(3000):
        f = gv.sin(f) if i % 2 else f * 1.0001
    started = time.perf_counter()
    report = check_nodes(f, {"x": 0.5}, symbolic=False)
    assert len(report.rows) == 3000 and report.ok
    assert time.perf_counter() - started < 20  # was 115 s


def test_steps_refuses_too_many_frames_at_once(tmp_path):
    terms = 150
    expression = "+".join(f"x{i}" for i in range(terms))
    point = ",".join(f"x{i}=1" for i in range(terms))
    started = time.perf_counter()
    assert_one_error(_cli("steps", expression, "--at", point, "-o", tmp_path / "f"),
                     "152 frames", "--max-frames")
    assert time.perf_counter() - started < 20
    assert not (tmp_path / "f").exists()
