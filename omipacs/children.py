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


def _child(parent: int, target: Callable[..., None], args: tuple[Any, ...]) -> None:
    # The parent's signal handlers (if any) are not the child's.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    end_with_parent()
    if os.getppid() != parent:  # the parent died before the request above took effect
        return
    target(*args)


def fork(target: Callable[..., None], args: tuple[Any, ...], name: str) -> ForkProcess:
    """Start ``target(*args)`` in a forked child process."""
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
        process.kill()
        process.join(5)
