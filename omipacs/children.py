"""Server child processes: forked with what the parent has loaded, ended with it.

``omipacs serve`` forks its HTTP server (gunicorn's arbiter) and, when asked for more
than one, its DIMSE SCP processes. Forking (not spawning) hands them the listening
sockets and the imported modules as they are; it is done before the parent starts any
thread. Each child asks Linux to send it SIGTERM when the parent dies, even by SIGKILL,
so no orphaned server keeps a port or a database connection.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from multiprocessing.context import ForkProcess
from typing import Any

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def end_with_parent() -> None:
    """Get SIGTERM when the parent process dies (Linux ``PR_SET_PDEATHSIG``)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        log.warning("cannot tie a server process's lifetime to its parent on this system")


_M_ARENA_MAX = -8
MALLOC_ARENAS = 2
"""glibc malloc arenas a server process may use (see :func:`limit_malloc_arenas`)."""


def limit_malloc_arenas(count: int = MALLOC_ARENAS) -> bool:
    """Let glibc's malloc use at most ``count`` arenas in this process and its forks.

    By default glibc gives each thread that allocates concurrently its own arena (up to
    eight per core), and memory freed in an arena mostly stays with the process. A
    worker's 32 threads each rendering or decoding a large frame now and then (Pillow
    allocates images in 16 MiB blocks, below the size glibc maps separately) so keeps
    the peak of every thread at once: measured with four concurrent renders of an
    8192 x 8192 frame repeated, a worker grew to 1.1 GB and stayed at 900 MB, against
    830 MB and 390 MB with two arenas (tests/benchmarks/bench_stress.py). Set before any
    thread starts and before forking, so every server process inherits it. Returns
    False where there is no glibc ``mallopt`` (nothing changes).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, count))
    except (OSError, AttributeError):
        return False


_libc: Any = None


def trim_malloc() -> bool:
    """Give the memory glibc's malloc holds free back to the system (``malloc_trim(0)``).

    After a large decode or render, freed blocks below glibc's mmap threshold stay in
    the process's heap, so a worker keeps its peak resident size between requests;
    trimming returns them. Returns False where there is no glibc (nothing happens).
    """
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(_libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False


def _child(parent: int, target: Callable[..., None], args: tuple[Any, ...]) -> None:
    # The parent's signal handlers (if any) are not the child's.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    end_with_parent()
    if os.getppid() != parent:  # the parent died before the request above took effect
        return
    target(*args)


def fork(target: Callable[..., None], args: tuple[Any, ...], name: str) -> ForkProcess:
    """Start ``target(*args)`` in a forked child process.

    Fork only while this process runs no other thread: a lock another thread holds at
    the fork (a queue's, a connection pool's, the C library's) stays held in the child,
    which then hangs the first time it needs it. Doing so anyway is logged.
    """
    others = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
    if others:
        log.warning("forking %s while threads run: %s", name, ", ".join(sorted(others)))
    context = multiprocessing.get_context("fork")
    process = context.Process(target=_child, args=(os.getpid(), target, args), name=name)
    process.start()
    return process


def stop(process: ForkProcess, timeout: float = 20.0) -> None:
    """SIGTERM (a graceful stop), then SIGKILL if it is still there after ``timeout``."""
    if process.is_alive() and process.pid is not None:
        os.kill(process.pid, signal.SIGTERM)
    process.join(timeout)
    if process.is_alive():
        log.warning("%s did not stop within %.0f s of SIGTERM; killed", process.name, timeout)
        process.kill()
        process.join(5)
