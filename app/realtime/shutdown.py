"""Closing a stopping web process's sockets with 1012, asked for from a signal handler without taking a lock."""
from __future__ import annotations

import os
import threading

_write_fd: int | None = None
_armed_pid: int | None = None


def arm() -> None:
    """Start this process's shutdown watcher (call once per process, after fork: gunicorn ``post_worker_init``).

    A signal handler runs in the main thread between two bytecodes, so a second signal arriving while the
    first handler holds a lock (Ctrl-C's SIGINT and the master's SIGQUIT come together) deadlocks the worker
    if the handler takes that lock again; and gunicorn's quick shutdown raises ``SystemExit`` in the nested
    handler, cutting the outer one short. So handlers only write a byte to a pipe, and this thread does the work.
    """
    global _write_fd, _armed_pid
    if _armed_pid == os.getpid():
        return
    read_fd, _write_fd = os.pipe()
    _armed_pid = os.getpid()
    threading.Thread(target=_watch, args=(read_fd,), name="longrun-shutdown", daemon=True).start()


def request() -> None:
    """Ask for every socket of this process to close with 1012; safe in a signal handler (no lock, no wait)."""
    if _write_fd is not None and _armed_pid == os.getpid():
        try:
            os.write(_write_fd, b"!")
        except OSError:
            pass  # the pipe is full: shutdown is requested already


def _watch(read_fd: int) -> None:
    from app.realtime.hub import begin_shutdown

    os.read(read_fd, 1)
    begin_shutdown()
