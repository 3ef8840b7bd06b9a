"""Compiling a module's parts in forked processes (gradviz/compiler/cpu/compile_pool.py): the
children's work lands in Numba's cache and is loaded here; a child that dies or hangs costs
time, never the result; nothing half-written is left behind."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from gradviz.compiler import cache
from gradviz.compiler.cpu import compile_pool

pytestmark = pytest.mark.skipif(not compile_pool.can_fork(), reason="forks on Linux only")

SOURCE = '''
from numba import njit

@njit(cache=True)
def part0(a, n):
    s = 0.0
    for i in range(n):
        s += a[i] * {k}
    return s

@njit(cache=True)
def part1(a, n):
    s = 1.0
    for i in range(n):
        s *= a[i] + {k}
    return s

@njit(cache=True)
def part2(a, n):
    for i in range(n):
        a[i] = a[i] * a[i] - {k}
    return a[0]
'''


def jobs_of(module):
    from numba import typeof

    signature = (typeof(np.ones(2)), typeof(1))
    return [(getattr(module, f"part{i}"), signature) for i in range(3)]


def misses(module):
    return sum(sum(getattr(module, f"part{i}").stats.cache_misses.values()) for i in range(3))


def check_results(module, k):
    a = np.array([1.5, 2.0])
    assert module.part0(a, 2) == pytest.approx(3.5 * k)
    assert module.part1(a, 2) == pytest.approx((1.5 + k) * (2.0 + k))


def test_children_compile_and_this_process_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADVIZ_CACHE", str(tmp_path))
    module = cache.load(SOURCE.format(k=3))
    assert compile_pool.compile_all(jobs_of(module), 3) == 3
    check_results(module, 3)
    assert misses(module) < 3            # at least one part came from a child, via the cache
    assert not list(tmp_path.rglob("*.tmp.*"))


def test_one_process_or_one_job_does_not_fork(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADVIZ_CACHE", str(tmp_path))
    forks = []
    monkeypatch.setattr(compile_pool.os, "fork", lambda: forks.append(1) or os.getpid())
    module = cache.load(SOURCE.format(k=4))
    assert compile_pool.compile_all(jobs_of(module), 1) == 1
    assert compile_pool.compile_all(jobs_of(module)[:1], 8) == 1
    assert forks == [] and misses(module) == 3
    check_results(module, 4)


def test_a_child_that_dies_costs_time_not_the_result(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADVIZ_CACHE", str(tmp_path))

    def dying_child(me, jobs, queue_r, queue_w, reports_r, reports_w):
        job = compile_pool._next_job(queue_r)      # takes a job, says so, and dies
        os.write(reports_w, compile_pool._REPORT.pack(compile_pool.TAKEN, me, job))
        os._exit(1)

    monkeypatch.setattr(compile_pool, "_child", dying_child)
    module = cache.load(SOURCE.format(k=5))
    compile_pool.compile_all(jobs_of(module), 3)
    check_results(module, 5)
    assert misses(module) == 3              # all compiled here


def test_a_child_that_hangs_is_stopped(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADVIZ_CACHE", str(tmp_path))
    monkeypatch.setattr(compile_pool, "STALLED", 0.3)
    children = []

    def hanging_child(me, jobs, queue_r, queue_w, reports_r, reports_w):
        job = compile_pool._next_job(queue_r)
        os.write(reports_w, compile_pool._REPORT.pack(compile_pool.TAKEN, me, job))
        while True:
            time.sleep(1)

    real_fork = os.fork

    def fork():
        pid = real_fork()
        if pid:
            children.append(pid)
        return pid

    monkeypatch.setattr(compile_pool, "_child", hanging_child)
    monkeypatch.setattr(compile_pool.os, "fork", fork)
    module = cache.load(SOURCE.format(k=6))
    compile_pool.compile_all(jobs_of(module), 2)
    check_results(module, 6)
    for pid in children:                     # stopped and reaped: no zombie, no live child
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


PROGRAM = '''
import json, sys
import numpy as np
import gradviz as gv
from gradviz.compiler.bench import step_feeds
from gradviz.nn.models import build_model
from gradviz.nn.optim import SGD
from gradviz.nn.step import build_train_step

threads = int(sys.argv[1])
net = build_model("mlp", (16,), 4, hidden="12,8")
step = build_train_step(net, 8, net.input_shape, optimizer=SGD())
runner = gv.compile(step, threads=threads)
out = runner(step_feeds(step, net))
print(json.dumps({"processes": runner.compile_processes, **runner.cache_stats(),
                  "values": [np.asarray(v, np.float64).ravel().tolist() for v in out]}))
'''


def run_program(threads, cache_dir):
    env = dict(os.environ, GRADVIZ_CACHE=str(cache_dir))
    done = subprocess.run([sys.executable, "-c", PROGRAM, str(threads)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_a_training_step_compiled_by_two_processes_is_the_same_and_complete(tmp_path):
    """Fresh processes: two processes compile the step (empty cache); the next process loads
    every part (no miss) and the results equal those of a step compiled by one process."""
    first = run_program(2, tmp_path / "two")
    assert first["processes"] == 2 and first["hits"] >= 1
    again = run_program(2, tmp_path / "two")
    assert again["processes"] == 1 and again["misses"] == 0
    alone = run_program(1, tmp_path / "one")
    assert alone["processes"] == 1 and alone["hits"] == 0
    assert first["values"] == alone["values"] == again["values"]


def test_a_child_told_to_stop_leaves_no_half_written_file(tmp_path, monkeypatch):
    """The stop (SIGTERM) reaches a child inside Numba's cache write: Numba removes its
    temporary file, and the child ends without a traceback."""
    monkeypatch.setenv("GRADVIZ_CACHE", str(tmp_path))
    module = cache.load(SOURCE.format(k=7))
    dispatcher, signature = jobs_of(module)[0]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            import numba.core.caching as caching

            real = caching.IndexDataCacheFile._open_for_write
            from contextlib import contextmanager

            @contextmanager
            def slow_write(self, filepath):
                with real(self, filepath) as f:
                    os.write(write, b"x")        # the temporary file exists now
                    time.sleep(60)
                    yield f
            caching.IndexDataCacheFile._open_for_write = slow_write
            reports_r, reports_w = os.pipe()   # (the child closes its read end: a copy stays)
            compile_pool._child(0, [(dispatcher, signature)], *_queue_with_job(),
                                os.dup(reports_r), reports_w)
        finally:
            os._exit(code)
    import select

    assert select.select([read], [], [], 120)[0], "the child never began writing"
    assert list(tmp_path.rglob("*.tmp.*"))
    compile_pool._stop([pid])
    assert not list(tmp_path.rglob("*.tmp.*"))


def _queue_with_job():
    queue_r, queue_w = os.pipe()
    os.write(queue_w, compile_pool._JOB.pack(0))
    os.set_blocking(queue_r, False)
    return queue_r, queue_w


def test_no_fork_to_be_had_means_compiling_here(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADVIZ_CACHE", str(tmp_path))

    def refuse():
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(compile_pool.os, "fork", refuse)
    module = cache.load(SOURCE.format(k=10))
    assert compile_pool.compile_all(jobs_of(module), 4) == 1
    assert misses(module) == 3
    check_results(module, 10)
