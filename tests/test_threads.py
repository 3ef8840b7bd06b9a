"""The parallel CPU module (threads > 1) against the serial one: the same bits where the order
of additions is unchanged (elementwise loops, convolutions and their input gradient, pools),
within float rounding where chunks regroup a sum (a convolution's weight gradient, summed over
samples per chunk) or where BLAS may round a block of a product's rows otherwise than the whole
(split matrix products); at a fixed thread count the same bits whichever number of threads runs
the chunks, so the busy-machine guard never changes a result, and resume stays bit-exact.
Thresholds are lowered (`parallel_min`) so that small graphs take the parallel paths."""
import numpy as np
import pytest

import gradviz as gv
from gradviz.compiler.cpu import backend
from gradviz.compiler import default_threads
from gradviz.compiler.cpu.backend import compile_cpu

SMALL = 64   # parallel_min for these tests: every kernel of the graphs below runs in chunks


def _cnn():
    x = gv.var("x", (6, 2, 8, 8), "float32")
    w = gv.param("w", (3, 2, 3, 3), "float32")
    v = gv.param("v", (27, 5), "float32")
    h = gv.tanh(gv.conv2d(x, w, padding=1))
    p = gv.avg_pool2d(h, 2)
    m = gv.max_pool2d(gv.relu(h), 2)
    flat = gv.reshape(p + m, (6, 48))
    loss = gv.mean(gv.tanh(gv.matmul(flat,
                                     gv.param("u", (48, 27), "float32")) @ v) ** 2)
    return loss, [x, w, v]


def _feeds(nodes, seed=0):
    rng = np.random.default_rng(seed)
    return {n: rng.normal(size=n.shape).astype(np.float32) for n in nodes}


def _graph():
    loss, _ = _cnn()
    leaves = sorted({n for n in gv.Graph([loss]).nodes if n.op in ("var", "param")},
                    key=lambda n: n.name)
    grads = gv.grad(loss, leaves)
    return [loss, *grads], leaves


def test_parallel_module_matches_serial(monkeypatch):
    monkeypatch.setattr(backend, "GEMM_PARALLEL_WORK", 1 << 21)   # these small products too
    outputs, leaves = _graph()
    serial = compile_cpu(outputs, threads=1)
    parallel = compile_cpu(outputs, threads=2, parallel_min=SMALL, guard=False)
    assert not serial.parallel and parallel.parallel
    src = parallel.source
    # convolutions/pools and a split GEMM, in blocks the worker pool runs
    assert "max(0, me * (nt) // workers)" in src and "max(0, me * (nc) // workers)" in src
    assert "prange(" not in src.split("def part", 1)[1]
    feeds = _feeds(leaves)
    want, got = serial(feeds), parallel(feeds)
    parallel.threads = 1     # the same chunks, all on one thread (as ThreadGuard may choose)
    alone = parallel(feeds)
    names = ["loss"] + [f"d/d{leaf.name}" for leaf in leaves]
    for name, a, b, c in zip(names, want, got, alone):
        assert np.array_equal(b, c), name
        # BLAS may round a block of a product's rows otherwise than all of them (OpenBLAS's
        # Haswell kernels do: kernels._matmul_parallel), and weight gradients are regrouped sums
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=name)


def test_with_no_product_split_the_parallel_module_keeps_the_serial_bits():
    outputs, leaves = _graph()
    serial = compile_cpu(outputs, threads=1)
    parallel = compile_cpu(outputs, threads=2, parallel_min=SMALL, guard=False)
    src = parallel.source
    assert "max(0, me * (nt) // workers)" in src and "max(0, me * (nc) // workers)" not in src
    feeds = _feeds(leaves)
    names = ["loss"] + [f"d/d{leaf.name}" for leaf in leaves]
    for name, a, b in zip(names, serial(feeds), parallel(feeds)):
        if name == "d/dw":   # a convolution's weight gradient: summed over samples per chunk
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=name)
        else:
            assert np.array_equal(a, b), name


def test_one_chunk_is_the_serial_order_and_the_guard_changes_nothing():
    outputs, leaves = _graph()
    serial = compile_cpu(outputs, threads=1)
    feeds = _feeds(leaves, 1)
    want = serial(feeds)
    fixed = compile_cpu(outputs, threads=2, parallel_min=SMALL, guard=False)
    guarded = compile_cpu(outputs, threads=2, parallel_min=SMALL)
    reference = fixed(feeds)
    for _ in range(2 * backend.ThreadGuard.PROBE + 3):   # through a whole probe
        for a, b in zip(reference, guarded(feeds)):
            assert np.array_equal(a, b)
    if guarded.guard.most > 1:
        assert guarded.guard.history and guarded.guard.active in (1, guarded.guard.most)
    # nt = 1 (threads=1 passed to the parallel code) adds in the serial order everywhere
    one = compile_cpu(outputs, threads=2, parallel_min=SMALL, guard=False)
    one._chunks = 1
    for a, b in zip(want, one(feeds)):
        assert np.array_equal(a, b)


def test_a_split_product_gives_the_same_bits_on_one_thread_or_two(monkeypatch):
    # chunks of the real size (GEMM_SPLIT_MIN); only the choice to split is lowered
    monkeypatch.setattr(backend, "GEMM_PARALLEL_WORK", 1 << 21)
    monkeypatch.setattr(backend, "GEMM_ROWS_PER_THREAD", 64)
    x = gv.var("x", (256, 300), "float32")
    w = gv.param("w", (300, 64), "float32")
    loss = gv.sum(gv.tanh(x @ w))
    outputs = [loss, *gv.grad(loss, [x, w])]
    feeds = _feeds([x, w], 2)
    serial = compile_cpu(outputs, threads=1)(feeds)
    f = compile_cpu(outputs, threads=2, guard=False)
    assert "max(0, me * (nc) // workers)" in f.source
    two = f(feeds)
    f.threads = 1
    one = f(feeds)
    for got in (two, one):
        for a, b in zip(serial, got):   # rounding: see kernels._matmul_parallel
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-4)
    for a, b in zip(two, one):
        assert np.array_equal(a, b)
    # the weight gradient x^T @ dy: split along the batch at run time (256 >= 4 x 64 columns),
    # its sum regrouped by chunk and joined
    assert "if 256 >= 4 * 64:" in f.source and "its chunks summed" in f.source


def test_a_short_batch_splits_a_weight_gradient_by_rows(monkeypatch):
    """With a batch short against the product's columns, x^T @ dy is split by its rows instead
    of along the batch (kernels.splits_shared_axis, tested at run time); one thread runs the
    same chunks, with the same bits."""
    monkeypatch.setattr(backend, "GEMM_PARALLEL_WORK", 1 << 21)
    monkeypatch.setattr(backend, "GEMM_ROWS_PER_THREAD", 64)
    x = gv.var("x", (128, 600), "float32")
    w = gv.param("w", (600, 64), "float32")
    loss = gv.sum(gv.tanh(x @ w))
    outputs = [loss, *gv.grad(loss, [w])]
    feeds = _feeds([x, w], 3)
    serial = compile_cpu(outputs, threads=1)(feeds)
    f = compile_cpu(outputs, threads=2, guard=False)
    assert "if 128 >= 4 * 64:" in f.source   # (the batch split's test, false here)
    two = f(feeds)
    f.threads = 1
    one = f(feeds)
    for a, b, c in zip(serial, two, one):
        assert np.array_equal(b, c)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-4)


def test_default_threads_is_the_affinity_capped_by_numba(monkeypatch):
    import os

    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    assert default_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")
    assert default_threads() == 1


def test_small_graphs_get_the_serial_text():
    x = gv.var("x", (4, 3))
    outputs = [gv.sum(gv.tanh(x))]
    from gradviz.compiler import source

    assert source(outputs, threads=2) == source(outputs, threads=1)


def test_resume_is_bit_exact_with_two_threads(tmp_path, monkeypatch):
    from gradviz.nn import checkpoints as ckpt  # noqa: F401
    from gradviz.nn.training import TrainConfig, Trainer
    from test_train import DropoutMLP, _digits

    monkeypatch.setattr(backend, "PARALLEL_MIN", SMALL)
    monkeypatch.setattr(backend, "PARALLEL_WORK", SMALL)
    monkeypatch.setattr(backend, "GEMM_SPLIT_MIN", SMALL)
    ds = _digits(n=300)

    def config(epochs):
        return TrainConfig(model="tiny", data="digits", epochs=epochs, batch=50, seed=0,
                           optimizer="adam")

    def trainer(epochs, where, resume=False, threads=2, reporter=None):
        return Trainer(config(epochs), model=DropoutMLP(64, 16, 10, "float32"), dataset=ds,
                       checkpoint=tmp_path / where, resume=resume, device="cpu",
                       threads=threads, reporter=reporter)

    straight = trainer(3, "a").run()
    assert trainer(1, "b").run().epochs_run == 1
    assert ckpt.load(tmp_path / "b").meta["threads"] == 2
    # no thread count given: the checkpoint's (this process's default is 1: NUMBA_NUM_THREADS)
    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")
    resumed = trainer(3, "b", resume=True, threads=None)
    assert resumed.threads == 2
    resumed = resumed.run()
    assert resumed.resumed_from_epoch == 1
    for name, value in straight.params.items():
        assert np.array_equal(value, resumed.params[name]), name
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in straight.history]


def test_resume_with_another_thread_count_says_so(tmp_path, monkeypatch):
    from gradviz.nn.training import TrainConfig, Trainer
    from test_train import DropoutMLP, _digits

    class Notes:
        def __init__(self):
            self.notes = []

        def note(self, text):
            self.notes.append(text)

        def __getattr__(self, name):   # every other event: ignored
            return lambda *args: None

    ds = _digits(n=120)
    config = TrainConfig(model="tiny", data="digits", epochs=2, batch=40, seed=0)
    Trainer(TrainConfig(**{**config.to_dict(), "epochs": 1}), dataset=ds,
            model=DropoutMLP(64, 8, 10, "float32"), checkpoint=tmp_path, device="cpu",
            threads=2).run()
    reporter = Notes()
    Trainer(config, model=DropoutMLP(64, 8, 10, "float32"), dataset=ds, checkpoint=tmp_path,
            resume=True, device="cpu", threads=1, reporter=reporter).run()
    assert any("trained with 2 thread(s), this run uses 1" in n for n in reporter.notes), \
        reporter.notes


def test_the_step_gives_the_same_bits_on_one_thread_or_two():
    outputs, leaves = _graph()
    f = compile_cpu(outputs, threads=2, parallel_min=SMALL, guard=False)
    feeds = _feeds(leaves, 3)
    two = [a.copy() for a in f(feeds)]
    f.threads = 1      # the same blocks, all run by the calling thread
    for a, b in zip(two, f(feeds)):
        assert np.array_equal(a, b)


def test_worker_pool_runs_every_block_and_passes_errors_on():
    import threading

    from gradviz.compiler.cpu.workers import Workers

    pool = Workers()
    seen = []

    def block(me, workers, started, tag):
        started[me] = 1
        seen.append((me, workers, tag, threading.current_thread() is threading.main_thread()))

    pool.each(3, block, "a")
    assert sorted(s[:3] for s in seen) == [(0, 3, "a"), (1, 3, "a"), (2, 3, "a")]
    assert [s[3] for s in seen if s[0] == 0] == [True]    # block 0 on the calling thread

    def failing(me, workers, started):      # (fails before it says it started)
        if me == 1:
            raise ValueError("block 1 failed")

    with pytest.raises(ValueError, match="block 1 failed"):
        pool.each(2, failing)
    seen.clear()
    pool.each(2, block, "b")          # the pool still works after an error
    assert sorted(s[:3] for s in seen) == [(0, 2, "b"), (1, 2, "b")]


def test_folded_reductions_run_in_chunks():
    x = gv.var("x", (40, 12), "float32")
    b = gv.var("b", (12,), "float32")
    h = gv.tanh(x + b)
    outputs = [gv.sum(h, axis=0), gv.sum(h * 2.0, axis=1), gv.amax(h, axis=1),
               gv.amax(h, axis=0), gv.sum(h * h)]
    feeds = _feeds([x, b], 4)
    serial = compile_cpu(outputs, threads=1)(feeds)
    f = compile_cpu(outputs, threads=3, parallel_min=SMALL, guard=False)
    assert f.source.count("its chunks combined") >= 1 and "q" in f.source
    got = f(feeds)
    # a row's sum or maximum lies in one chunk: the serial bits; maxima are exact in any order
    for i in (1, 2, 3):
        assert np.array_equal(serial[i], got[i]), i
    # sums over the outer axis add chunk by chunk: float rounding
    for i in (0, 4):
        np.testing.assert_allclose(got[i], serial[i], rtol=1e-5, atol=1e-5)
    f.threads = 1      # the same chunks run by one thread: the same bits
    for a, c in zip(got, f(feeds)):
        assert np.array_equal(a, c)


def test_reductions_along_rows_need_no_chunks():
    """Softmax's row maximum and row sum keep the outer axis: each block reduces its own rows
    straight into the output (no scratch, no join), in the serial order."""
    x = gv.var("x", (64, 10), "float32")
    shifted = x - gv.amax(x, axis=1, keepdims=True)
    outputs = [gv.exp(shifted) / gv.sum(gv.exp(shifted), axis=1, keepdims=True)]
    feeds = _feeds([x], 5)
    serial = compile_cpu(outputs, threads=1)(feeds)
    f = compile_cpu(outputs, threads=2, parallel_min=8, guard=False)
    assert f.parallel and "scratch" not in f.source and "its chunks" not in f.source
    assert "max(0, me * (64) // workers)" in f.source     # rows in blocks
    two = f(feeds)
    f.threads = 1
    for a, b, c in zip(serial, two, f(feeds)):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_a_forked_child_gets_workers_of_its_own():
    import os
    import time

    from gradviz.compiler.cpu.workers import pool

    def block(me, workers, started, out):
        started[me] = 1
        out[me] = me + 1

    out = np.zeros(2)
    pool().each(2, block, out)          # the parent's worker thread exists now
    pid = os.fork()
    if pid == 0:                        # the child: the parent's thread is not here
        try:
            mine = np.zeros(2)
            pool().each(2, block, mine)
            os._exit(0 if list(mine) == [1.0, 2.0] else 1)
        except BaseException:
            os._exit(2)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung waiting for its parent's worker threads")


def test_an_interrupted_call_returns_only_when_every_block_is_done():
    import time

    from gradviz.compiler.cpu.workers import Workers

    pool = Workers()

    def block(me, workers, started, out):
        started[me] = 1
        if me == 0:
            raise KeyboardInterrupt     # Ctrl-C while the caller runs its own block
        time.sleep(0.2)
        out[me] = 1.0

    out = np.zeros(2)
    with pytest.raises(KeyboardInterrupt):
        pool.each(2, block, out)
    assert out[1] == 1.0      # the other block finished before the interrupt went on


def test_more_threads_than_the_pool_can_hold_is_one_clear_error():
    from gradviz.compiler.cpu.workers import MOST_THREADS
    from gradviz.errors import GradvizError

    x = gv.var("x", (4, 3))
    with pytest.raises(GradvizError, match=f"threads must be at most {MOST_THREADS}"):
        gv.compile([gv.sum(gv.tanh(x))], threads=MOST_THREADS + 1)


def test_a_job_whose_caller_never_waited_still_runs():
    """A worker takes the GIL once the caller waits without it (workers.py); a caller stopped
    between posting a job and waiting (Ctrl-C) must not leave the worker spinning for ever."""
    import time

    from gradviz.compiler.cpu.workers import Workers

    pool = Workers()
    pool.warm(2)
    ran = []

    def block(me, workers, started, tag):
        started[me] = 1
        ran.append((me, tag))

    job = int(pool._go[0]) + 1          # what `each` does, up to the wait
    pool._go[0] = job
    pool._jobs[1] = (block, 2, ("posted",))
    pool._go[1] = job
    if pool._asleep[1]:
        pool._bell[1].release()
    deadline = time.monotonic() + 30
    while (1, "posted") not in ran and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (1, "posted") in ran
    pool.each(2, block, "next")         # and the pool goes on
    assert (0, "next") in ran and (1, "next") in ran


def test_the_kernels_of_a_part_meet_at_barriers():
    """A part of several kernels runs on every block; between two kernels each block waits for
    all (`_barrier`), so a kernel reads what another block wrote in the one before."""
    from numba import njit

    from gradviz.compiler.cpu.workers import Workers, _barrier

    @njit(nogil=True)
    def part(me, workers, started, out, seen):
        started[me] = 1
        for step in range(1, 200):
            out[me] = step
            _barrier(started, me, workers, 2 * step - 1)
            seen[me] += out[(me + 1) % workers] == step   # the other block's write of this step
            _barrier(started, me, workers, 2 * step)

    pool = Workers()
    out, seen = np.zeros(3, np.int64), np.zeros(3, np.int64)
    pool.each(3, part, out, seen)
    assert list(seen) == [199, 199, 199]
    # and a module's parallel parts hold several kernels each, with barriers between them
    f = compile_cpu(_graph()[0], threads=2, parallel_min=SMALL, guard=False)
    assert "_barrier(started, me, workers, 1)" in f.source
    assert f.source.count("each(part") < f.source.count("# kernel")


def test_a_failed_block_does_not_leave_the_others_at_a_barrier():
    import threading

    from numba import njit

    from gradviz.compiler.cpu.workers import Workers, _barrier

    @njit(nogil=True)
    def part(me, workers, started, out):
        started[me] = 1
        if me == 1:
            raise ValueError("block 1 failed")
        _barrier(started, me, workers, 1)
        out[me] = 1.0

    pool = Workers()
    raised = []

    def call():
        try:
            pool.each(2, part, np.zeros(2))
        except ValueError as exc:
            raised.append(str(exc))

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(60)
    assert not caller.is_alive(), "block 0 waited for ever for the block that failed"
    assert raised == ["block 1 failed"]

    @njit(nogil=True)
    def fine(me, workers, started, out):
        started[me] = 1
        _barrier(started, me, workers, 1)
        out[me] = 1.0

    out = np.zeros(2)
    pool.each(2, fine, out)   # the pool goes on: each call starts its barriers afresh
    assert list(out) == [1.0, 1.0]
