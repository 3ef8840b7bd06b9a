"""The threads that run the chunks of the parallel module's kernels.

A parallel kernel is a compiled function `kernel(me, workers, started, ...)` that does block
`me` of `workers` of its loop (kernels.py, backend.py) and, first of all, sets `started[me] = 1`
(the backend's parts run several kernels this way, the blocks meeting at a `_barrier` between
two); `each(workers, kernel, ...)` calls it once per block, block 0 on the calling thread and the
others on persistent worker threads, and returns when all are done. The kernels are compiled with
`nogil=True`, so the blocks run at the same time. This pool is the one owner of the cores: the
BLAS that compiled code calls runs one thread per call (compiler.set_threads), and Numba's own
thread pool (`parallel=True`) is not used (its per-loop compile cost tripled a step's cold
compile).

Handing a block over costs what the GIL costs: a worker needs it to call the kernel, and a
thread that waits for the GIL while another holds it is woken by the OS (tens of microseconds
here). So nobody waits for it: the caller writes the job, bumps the worker's `go` counter and
then waits, without the GIL, in compiled code, until the worker's kernel says `started`; only
then does the caller run block 0. The worker, which after each job watches its counter for a
while, also without the GIL, takes the GIL only once the caller has said (`waiting`, from that
compiled wait) that it no longer holds it, so it finds the GIL free; it calls the kernel and
gives the GIL back. A worker reports `done` from compiled code too, after it has given the GIL
back. A worker that saw nothing for `SPINS` polls (about a millisecond) sleeps on a semaphore,
which the caller releases. Measured per kernel inside a step on the development machine: 80-95
us with threads sleeping on a queue between kernels, 30-40 us with watching workers; a worker
that took the GIL as soon as it saw its counter move often found the caller still holding it
and slept until the OS woke it: waiting for `waiting` made LeNet-5's two-thread step 1.09x
faster at batch 64 (1.01x at 256, MLP batch 1024 1.02-1.04x; A/B in fresh processes). The same
at the end: a worker's block returns (and takes the GIL back) only once the caller, back from
its own block, waits without the GIL (`_after_block`, the last statement of every parallel
kernel the backend writes); 1.02-1.05x at LeNet-5 batch 64, 1.01x at 256 and at MLP batch
1024, within the noise of those runs. So a part is handed over only for kernels that repay it
(backend.PARALLEL_MIN and the thresholds beside it); inside a part, smaller kernels are split too
(backend.IN_PART), as the blocks then meet at a `_barrier`, which costs a few microseconds.
"""
from __future__ import annotations

import functools
import hashlib
import os
import platform
import threading
from pathlib import Path

import numpy as np
from numba import carray, cfunc, njit
from numba.core import cgutils, types
from numba.extending import intrinsic
from llvmlite import binding as llvm, ir

from gradviz.compiler import MOST_THREADS   # (the pool's counters are arrays of this size)

SPINS = 100_000   # polls of a counter before a worker sleeps (~1 ms)
PASSED = 1 << 62  # a failed block's progress: past every `_barrier`
# Generated parallel parts call `_after_block` and `_barrier` (and through them `_watch` and
# `_publish`), compiled into them; Numba's cache of a generated module does not notice when these
# change, so the module's text names this file's hash and a changed file makes new modules
# (backend.py)
SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@intrinsic
def _watch(typingctx, cells, at):
    """cells[at], read from memory on every call: an atomic acquire load (a plain load of a
    value nothing in the loop writes would be hoisted out of the loop), then a spin-wait hint."""
    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
        value = builder.load_atomic(ptr, "acquire", 8)
        if _X86:
            pause = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(pause, [])
        return value
    return types.int64(cells, at), codegen


@intrinsic
def _publish(typingctx, cells, at, value):
    """cells[at] = value as an atomic release store: every write this thread made before (the
    block's results) is visible to a thread that then reads `value` there with `_watch`. (A
    plain store could become visible first on a weakly ordered CPU, such as ARM.)"""
    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
        builder.store_atomic(args[2], ptr, "release", 8)
        return context.get_dummy_value()
    return types.void(cells, at, types.int64), codegen


@njit(nogil=True, cache=True)
def _until_called(go, at, seen, waiting, spins):
    """Whether, within `spins` polls (no GIL held), go[at] moves past `seen` and the caller
    that moved it is waiting without the GIL (waiting[0] has reached go[at]): a worker that
    took the GIL while the caller still held it would sleep until the OS woke it (tens of
    microseconds); this way it finds the GIL free. After `spins` polls a moved counter is
    enough."""
    for _ in range(spins):
        job = _watch(go, at)
        if job != seen and _watch(waiting, 0) >= job:
            return True
    return _watch(go, at) != seen   # (a job whose caller never waited: Ctrl-C in between)


@njit(nogil=True, cache=True)
def _until_all(done, started, count, value, spins):
    """Whether done[1:count] all equal `value` within `spins` polls (no GIL held). First says,
    in started[0] = 3, that the caller now waits without the GIL (`_after_block`)."""
    _publish(started, 0, 3)
    for _ in range(spins):
        ready = True
        for at in range(1, count):
            if _watch(done, at) != value:
                ready = False
                break
        if ready:
            return True
    return False


@njit(nogil=True, cache=True)
def _after_block(started, me):
    """The last statement of a parallel kernel: a worker's block (me > 0) returns only once the
    caller waits without the GIL for the blocks to end (started[0] == 3, from `_until_all`), so
    that taking the GIL back here does not collide with the caller taking it back after its own
    block (the loser would sleep until the OS woke it)."""
    if me > 0:
        for _ in range(SPINS):
            if _watch(started, 0) == 3:
                return


# The symbol the generated code calls `_barrier` by (named by this file's hash, like the modules).
BARRIER_SYMBOL = f"gradviz_barrier_{SOURCE_HASH}"


def _barrier_body(cells, length, me, workers, step):
    """Block `me` has done step `step - 1` of a part of several kernels; returns once every
    block of this call has (cells[half + k] >= step for k < workers, where half = length // 2
    is the second half of `started`: each block's progress; `each` resets it). A part's later
    kernel may read what any block of an earlier one wrote: the release store and the acquire
    loads make those writes visible. A block that failed is marked done with every step
    (`_passed`), so nobody waits for it forever."""
    if workers <= 1:
        return
    started = carray(cells, (length,))
    half = length // 2
    _publish(started, half + me, step)
    for k in range(workers):
        while _watch(started, half + k) < step:
            pass   # (a spin-wait: each `_watch` ends with the CPU's pause hint)


@functools.cache
def link_barrier():
    """Compile (or load from Numba's cache) the barrier and make it callable from compiled
    code: generated parallel modules call this when they are imported, before their parts are
    compiled or loaded. Returns the compiled function, which the cache keeps alive (its machine
    code must outlive every module that calls it)."""
    signature = types.void(types.CPointer(types.int64), types.int64, types.int64, types.int64,
                           types.int64)
    compiled = cfunc(signature, cache=True)(_barrier_body)
    llvm.add_symbol(BARRIER_SYMBOL, compiled.address)
    return compiled


@intrinsic
def _barrier(typingctx, started, me, workers, step):
    """`_barrier_body(started, ...)` as a call to one compiled C function. Trap: a compiled
    `_barrier` was inlined at every one of a part's barriers, and LLVM's time on the spin loops
    was a third of a LeNet-5 part's compile (5.0 s against 3.2 s); an external function is one
    call instruction to it."""
    link_barrier()

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        i64 = ir.IntType(64)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i64.as_pointer(), i64, i64, i64, i64]),
            BARRIER_SYMBOL)
        numbers = [context.cast(builder, value, kind, types.int64)
                   for value, kind in zip(args[1:], signature.args[1:])]
        builder.call(function, [ary.data, ary.nitems, *numbers])
        return context.get_dummy_value()
    return types.void(started, me, workers, step), codegen


@njit(nogil=True, cache=True)
def _until_started(started, done, count, job, spins, waiting):
    """Whether every worker 1..count-1 has started its block (or already finished it, as one
    that failed before its kernel ran) within `spins` polls (no GIL held). First says, in
    waiting[0], that the caller of job `job` now waits without the GIL."""
    _publish(waiting, 0, job)
    for _ in range(spins):
        ready = True
        for at in range(1, count):
            if _watch(started, at) != 1 and _watch(done, at) != job:
                ready = False
                break
        if ready:
            return True
    return False


@njit(nogil=True, cache=True)
def _finish_and_watch(done, at, job, go, waiting, spins):
    """done[at] = job, written once the GIL is given back; then whether the next job comes
    within `spins` polls (as `_until_called`)."""
    _publish(done, at, job)
    return _until_called(go, at, job, waiting, spins)


@njit(nogil=True, cache=True)
def _nothing(me, workers, started):
    started[me] = 1


class Workers:
    """Persistent daemon threads, started on first need; one `each` call runs at a time."""

    def __init__(self, most: int = MOST_THREADS + 1):
        self._lock = threading.Lock()
        self._go = np.zeros(most, np.int64)       # job counter per worker (slot 0: the caller)
        self._done = np.zeros(most, np.int64)     # the last job each worker finished
        # set by a kernel when its block begins; the second half: each block's progress through
        # the kernels of a part (`_barrier`)
        self._started = np.zeros(2 * most, np.int64)
        self._waiting = np.zeros(1, np.int64)     # the job whose caller waits without the GIL
        self._jobs: list = [None] * most
        self._errors: list = [None] * most
        self._asleep = [False] * most
        self._bell = [threading.Semaphore(0) for _ in range(most)]
        self._threads: list[threading.Thread] = []

    def _grow(self, count: int) -> None:
        if count >= len(self._go):
            raise ValueError(f"at most {len(self._go) - 1} worker threads")
        while len(self._threads) < count:
            me = len(self._threads) + 1
            thread = threading.Thread(target=self._serve, args=(me,), daemon=True,
                                      name=f"gradviz-worker-{me}")
            thread.start()
            self._threads.append(thread)

    def _serve(self, me: int) -> None:
        seen = 0
        changed = False
        while True:
            if not changed and not _until_called(self._go, me, seen, self._waiting, SPINS):
                self._asleep[me] = True
                if int(self._go[me]) == seen:   # (a job posted before it said so is not lost)
                    self._bell[me].acquire()
                self._asleep[me] = False
                continue
            seen = int(self._go[me])
            kernel, workers, args = self._jobs[me]
            self._jobs[me] = None
            try:
                kernel(me, workers, self._started, *args)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller of `each`
                self._errors[me] = exc
                self._passed(me)
            changed = _finish_and_watch(self._done, me, seen, self._go, self._waiting, SPINS)

    def _passed(self, me: int) -> None:
        """Block `me` failed: the others must not wait for it at a `_barrier`."""
        self._started[len(self._started) // 2 + me] = PASSED

    def warm(self, workers: int) -> None:
        """Start the threads `workers` blocks need and load the compiled waiting code."""
        self.each(workers, _nothing)

    def _check_alive(self, workers: int) -> None:
        for thread in self._threads[:workers - 1]:
            if not thread.is_alive():
                raise RuntimeError(f"gradviz worker thread {thread.name} has died")

    def each(self, workers: int, kernel, *args) -> None:
        """Run `kernel(me, workers, started, *args)` for me = 0 .. workers-1, all at once;
        re-raise the first error any block raised."""
        if workers <= 1:
            kernel(0, 1, self._started, *args)
            return
        with self._lock:
            self._grow(workers - 1)
            job = int(self._go[0]) + 1
            self._go[0] = job
            self._started[:workers] = 0
            half = len(self._started) // 2
            self._started[half:half + workers] = 0
            for me in range(1, workers):
                self._jobs[me] = (kernel, workers, args)
                self._go[me] = job
                if self._asleep[me]:
                    self._bell[me].release()
            error = None
            try:
                while not _until_started(self._started, self._done, workers, job, SPINS,
                                         self._waiting):
                    self._check_alive(workers)
                kernel(0, workers, self._started, *args)
            except BaseException as exc:  # noqa: BLE001 - after the other blocks are done
                error = exc
                self._passed(0)
            self._done[0] = job
            # No block may still be writing when `each` returns, not even after Ctrl-C (a
            # notebook that interrupts a step and runs the next would race with it).
            while True:
                try:
                    while not _until_all(self._done, self._started, workers, job, SPINS):
                        self._check_alive(workers)
                    break
                except KeyboardInterrupt as exc:
                    error = error or exc
            for me in range(1, workers):
                failure, self._errors[me] = self._errors[me], None
                error = error or failure
            if error is not None:
                raise error


_pool = Workers()


def _forget_threads() -> None:
    # a forked child has none of its parent's threads: a pool that thought it had some would
    # wait forever for them
    global _pool
    _pool = Workers()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads)


def pool() -> Workers:
    """The process's worker pool."""
    return _pool
