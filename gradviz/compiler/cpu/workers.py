"""The threads that run the chunks of the parallel module's kernels.

A parallel kernel is a compiled function `kernel(me, workers, ...)` that does block `me` of
`workers` of its loop (kernels.py, backend.py); `each(workers, kernel, ...)` calls it once per
block, block 0 on the calling thread and the others on persistent worker threads, and returns
when all are done. The kernels are compiled with `nogil=True`, so the blocks run at the same
time. This pool is the one owner of the cores: the BLAS that compiled code calls runs one thread
per call (compiler.set_threads), and Numba's own thread pool (`parallel=True`) is not used (its
per-loop compile cost tripled a step's cold compile, and its OpenMP threads spin after each loop).
"""
from __future__ import annotations

import os
import queue
import threading


class Workers:
    """Persistent daemon threads, started on first need; one `each` call runs at a time."""

    def __init__(self):
        self._lock = threading.Lock()
        self._inboxes: list[queue.SimpleQueue] = []
        self._done: queue.SimpleQueue = queue.SimpleQueue()

    def _grow(self, count: int) -> None:
        while len(self._inboxes) < count:
            inbox: queue.SimpleQueue = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(inbox,), daemon=True,
                             name=f"gradviz-worker-{len(self._inboxes) + 1}").start()
            self._inboxes.append(inbox)

    def _serve(self, inbox: queue.SimpleQueue) -> None:
        while True:
            kernel, me, workers, args = inbox.get()
            try:
                kernel(me, workers, *args)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller of `each`
                self._done.put(exc)
            else:
                self._done.put(None)

    def each(self, workers: int, kernel, *args) -> None:
        """Run `kernel(me, workers, *args)` for me = 0 .. workers-1, all at once; re-raise the
        first error any block raised."""
        if workers <= 1:
            kernel(0, 1, *args)
            return
        with self._lock:
            self._grow(workers - 1)
            for me in range(1, workers):
                self._inboxes[me - 1].put((kernel, me, workers, args))
            error = None
            try:
                kernel(0, workers, *args)
            except BaseException as exc:  # noqa: BLE001 - after the other blocks are done
                error = exc
            for _ in range(workers - 1):
                failure = self._done.get()
                if error is None and failure is not None:
                    error = failure
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
