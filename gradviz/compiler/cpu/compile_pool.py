"""Compiling a generated module's functions in several processes at once.

Numba compiles one function at a time and holds the GIL throughout, so the dozen functions of a
training step took seconds on one core while the others idled. With Numba's on-disk cache
(cache.py) a forked copy of this process can compile some of them: it leaves the machine code in
the cache, from which this process then loads it in milliseconds.

`compile_all(jobs, processes)` forks `processes - 1` children. Every process, this one included,
takes the next job from a queue (a pipe, largest function first: the bytecode's length stands in
for its compile time) until none is left. A child reports each job it takes and each it
finishes on a second pipe. When the queue is empty this process waits for the jobs children
took; it compiles itself those of a child that died, and all that are left when no child has
reported anything for `STALLED` seconds (so a child that dies or hangs costs time, never the
result). Then it stops the children still running (busy with a job it already has; a stopped
child's Numba removes the file it was writing) and compiles, or loads from the cache, every job
in order, so the functions are ready here.

Before forking, Numba's one-time set-up (about 0.35 s, paid by the first compile in a process)
is done here once, so the children start with it done. Forking is used on Linux only; elsewhere,
or with one process, the jobs are compiled here, one after another.
"""
from __future__ import annotations

import os
import select
import signal
import struct
import sys
import time
import warnings
from typing import Sequence

_JOB = struct.Struct("<I")          # a job's index in the queue pipe
_REPORT = struct.Struct("<BHI")     # (TAKEN or DONE, child, job) from a child
TAKEN, DONE = 1, 2
MOST_JOBS = 1024   # the queue is written whole before anyone reads it: 4 KiB, which a pipe holds
GRACE = 10.0      # seconds a stopped child has to end before it is killed
STALLED = 120.0   # seconds without a report from any child: compile the rest here
_warmed = False


def can_fork() -> bool:
    """Whether compiling in forked children is possible here (Linux)."""
    return hasattr(os, "fork") and sys.platform.startswith("linux")


def compile_all(jobs: Sequence[tuple], processes: int) -> int:
    """Compile every `(dispatcher, signature)` of `jobs`, using up to `processes` processes;
    returns how many processes compiled. The dispatchers must use Numba's disk cache, or the
    children's work is lost (and done again here)."""
    jobs = list(jobs)
    used = min(processes, len(jobs))
    if used > 1 and can_fork() and len(jobs) <= MOST_JOBS:
        used = _in_children(jobs, used)
    else:
        used = 1
    for dispatcher, signature in jobs:   # compiled by a child: loaded from the cache
        dispatcher.compile(signature)
    return used


def _warm_up() -> None:
    """Numba's one-time set-up in this process (its first compile of anything)."""
    global _warmed
    if not _warmed:
        from numba import njit

        njit(lambda: 0).compile(())
        _warmed = True


def _cost(job: tuple) -> int:
    return len(job[0].py_func.__code__.co_code)


def _in_children(jobs: list[tuple], processes: int) -> int:
    """Compile `jobs` here and in up to `processes - 1` forked children; returns how many
    processes compiled."""
    _warm_up()
    order = sorted(range(len(jobs)), key=lambda i: -_cost(jobs[i]))
    queue_r, queue_w = os.pipe()
    reports_r, reports_w = os.pipe()
    os.write(queue_w, b"".join(_JOB.pack(i) for i in order))
    os.set_blocking(queue_r, False)   # every job is in: an empty queue means done
    children = []
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a process that has threads (the worker pool's, a
        # notebook's): the child only compiles, and takes no lock another thread may hold.
        warnings.simplefilter("ignore", DeprecationWarning)
        for me in range(processes - 1):
            try:
                pid = os.fork()
            except OSError:   # (out of processes: fewer helpers)
                break
            if pid == 0:
                _child(me, jobs, queue_r, queue_w, reports_r, reports_w)   # never returns
            children.append(pid)
    os.close(queue_w)
    os.close(reports_w)
    taken: dict[int, int] = {}   # job -> the child that took it
    finished: set[int] = set()
    try:
        while True:   # this process's share of the queue
            job = _next_job(queue_r)
            if job is None:
                break
            jobs[job][0].compile(jobs[job][1])
            finished.add(job)
        _await_children(jobs, order, children, reports_r, taken, finished)
    finally:
        os.close(queue_r)
        os.close(reports_r)
        _stop(children)
    return 1 + len(children)


def _await_children(jobs, order, children, reports_r, taken, finished) -> None:
    """Wait for the jobs children took; compile here those of a child that died, and all that
    are left if no child has reported anything for `STALLED` seconds."""
    alive = set(range(len(children)))
    heard_at = time.monotonic()
    while True:
        if _read_reports(reports_r, taken, finished, wait=0.02):
            heard_at = time.monotonic()
        stalled = time.monotonic() - heard_at > STALLED
        for child in list(alive):
            try:
                if os.waitpid(children[child], os.WNOHANG)[0]:
                    alive.discard(child)
            except ChildProcessError:
                alive.discard(child)
        if not alive or stalled:
            _read_reports(reports_r, taken, finished, wait=0)
            for job in order:
                if job in taken and job not in finished and (
                        stalled or taken[job] not in alive):
                    jobs[job][0].compile(jobs[job][1])
                    finished.add(job)
        if all(job in finished for job in taken):
            return


def _next_job(queue_r: int) -> int | None:
    try:
        data = os.read(queue_r, _JOB.size)
    except BlockingIOError:
        return None
    return _JOB.unpack(data)[0] if len(data) == _JOB.size else None


def _read_reports(reports_r: int, taken: dict, finished: set, wait: float) -> bool:
    """Take in what the children reported so far (waiting up to `wait` seconds for the first);
    whether there was anything."""
    heard = False
    while select.select([reports_r], [], [], wait)[0]:
        data = os.read(reports_r, 64 * _REPORT.size)   # (reports are never split: PIPE_BUF)
        if not data:
            break   # every child has exited
        heard = True
        for offset in range(0, len(data), _REPORT.size):
            kind, child, job = _REPORT.unpack_from(data, offset)
            if kind == TAKEN:
                taken[job] = child
            else:
                finished.add(job)
        wait = 0
    return heard


def _child(me, jobs, queue_r, queue_w, reports_r, reports_w) -> None:
    """A forked child: compile jobs from the queue until it is empty, then exit."""
    code = 1
    try:
        os.close(queue_w)
        os.close(reports_r)
        # Ctrl-C, or this process's stop, raises inside the compile: Numba then removes the
        # file it was writing (it writes a temporary file and renames it), and `os._exit`
        # below ends the child without a traceback. (A forked child's one thread is its main
        # thread, so it may set signal handlers even when a notebook's thread forked it.)
        signal.signal(signal.SIGINT, _stopped)
        signal.signal(signal.SIGTERM, _stopped)
        # Nothing a child would print is wanted, and the parent's stderr may have been locked
        # by another of its threads (a progress line) at the fork: fresh streams to nowhere
        warnings.simplefilter("ignore")
        sys.stdout = sys.stderr = open(os.devnull, "w")
        while True:
            job = _next_job(queue_r)
            if job is None:
                break
            os.write(reports_w, _REPORT.pack(TAKEN, me, job))
            jobs[job][0].compile(jobs[job][1])
            os.write(reports_w, _REPORT.pack(DONE, me, job))
        code = 0
    finally:
        os._exit(code)   # no atexit handlers, no flushing of the parent's buffers


class _Stopped(Exception):
    """Raised in a child when it is told to stop (an Exception: Numba removes the temporary
    file it was writing on an Exception, not on other BaseExceptions)."""


def _stopped(signum, frame):
    raise _Stopped


def _stop(children: list[int]) -> None:
    """End the children still running (busy with a job this process already has): SIGTERM, so
    that Numba removes what it was writing, then SIGKILL if one is still there after `GRACE`
    seconds (compiled code does not see a signal until it returns to Python)."""
    running = []
    for pid in children:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                os.kill(pid, signal.SIGTERM)
                running.append(pid)
        except (ChildProcessError, ProcessLookupError):
            pass
    deadline = time.monotonic() + GRACE
    for pid in running:
        try:
            while os.waitpid(pid, os.WNOHANG)[0] == 0:
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.01)
        except (ChildProcessError, ProcessLookupError):
            pass
