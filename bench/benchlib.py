"""Helpers shared by the benchmark scripts: subprocess groups, environment, database, ports, statistics."""
from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
PG_HOST_URL = "postgresql://postgres@127.0.0.1:5432"
NOFILE = 65536


# --------------------------------------------------------------------------- statistics / formatting
def percentile(values: list[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    xs = sorted(values)
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def fmt(x: float | None, digits: int = 1) -> str:
    """A number for the tables; '—' when missing."""
    if x is None or x != x:  # NaN
        return "—"
    return f"{x:.{digits}f}"


def loadavg() -> str:
    """The 1/5/15-minute load averages as text."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------- processes
def raise_nofile() -> None:
    """1,000 sockets on each side need more than the usual 1,024 descriptors (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def free_port(ports: range, taken: set[int] | None = None) -> int:
    """A free port in ``ports`` on 127.0.0.1, not in ``taken`` (which it is added to)."""
    for port in ports:
        if taken is not None and port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if taken is not None:
            taken.add(port)
        return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


class Proc:
    """A subprocess in its own session (process group), logging to a file."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path, logdir: Path,
                 stop_signal: int = signal.SIGTERM, stop_timeout: float = 10.0,
                 preexec_fn: Callable[[], Any] | None = None) -> None:
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "w")
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=preexec_fn)
        self.pgid = self.proc.pid  # start_new_session: the child leads its own group

    def alive(self) -> bool:
        """Whether the leader is still running."""
        return self.proc.poll() is None

    def log_text(self) -> str:
        """The whole log so far ('' if unreadable)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 3000) -> str:
        """The last ``chars`` characters of the log."""
        return self.log_text()[-chars:]

    def wait_log(self, needle: str, timeout: float) -> None:
        """Wait for ``needle`` in the log (e.g. celery's ' ready.')."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            if needle in self.log_text():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def wait_http(self, url: str, timeout: float = 30, request_timeout: float = 1, poll: float = 0.1) -> None:
        """Wait until ``url`` answers at all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                requests.get(url, timeout=request_timeout)
                return
            except requests.RequestException:
                time.sleep(poll)
        raise RuntimeError(f"{self.name} did not answer {url} within {timeout:.0f} s")

    def tree(self) -> list[psutil.Process]:
        """The process and its live descendants."""
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def cpu_seconds(self) -> float:
        """user+system CPU of the whole tree so far."""
        total = 0.0
        for p in self.tree():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def stop(self, timeout: float | None = None) -> None:
        """Polite signal to the leader, then SIGKILL the whole group (catches orphans too)."""
        if self.alive():
            try:
                os.kill(self.proc.pid, self.stop_signal)
                self.proc.wait(self.stop_timeout if timeout is None else timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def worker_shapes(web: Proc, port: int, ws_ports: set[int] | None = None) -> list[dict[str, Any]]:
    """Per gunicorn worker of ``web``: established connections on ``port``, OS threads, RSS (MB); with
    ``ws_ports``, also how many of those connections are our open WebSockets (by the client's port)."""
    out = []
    for p in web.tree()[1:]:
        try:
            conns = [c for c in p.net_connections(kind="tcp")
                     if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port]
            shape = {"pid": p.pid, "sockets": len(conns), "threads": p.num_threads(),
                     "rss_mb": p.memory_info().rss / 2 ** 20}
            if ws_ports is not None:
                shape["ws"] = sum(1 for c in conns if c.raddr and c.raddr.port in ws_ports)
            out.append(shape)
        except psutil.Error:
            pass
    return out


class ProcSet:
    """Every process the benchmark started; ``stop_all`` is safe to call twice."""

    def __init__(self, logdir: Path, cwd: Path = ROOT, **proc_defaults: Any) -> None:
        self.logdir = logdir
        self.cwd = cwd
        self.proc_defaults = proc_defaults
        self.procs: list[Proc] = []

    def start(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path | None = None,
              **kwargs: Any) -> Proc:
        """Start ``cmd`` as ``name`` (logging to ``<logdir>/<name>.log``) and track it."""
        p = Proc(name, cmd, env, cwd or self.cwd, self.logdir, **{**self.proc_defaults, **kwargs})
        self.procs.append(p)
        return p

    def stop(self, p: Proc) -> None:
        """Stop one process and forget it."""
        p.stop()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self) -> None:
        """Stop every tracked process, newest first."""
        for p in reversed(list(self.procs)):
            try:
                p.stop()
            except Exception as exc:
                print(f"warning: could not stop {p.name}: {exc}", file=sys.stderr)
        self.procs.clear()


# --------------------------------------------------------------------------- environment
def testing_env(db_url: str, redis_url: str) -> dict[str, str]:
    """The inherited environment plus a testing Longrun on ``db_url`` / ``redis_url``, no access log."""
    env = {**os.environ, "LONGRUN_ENV": "testing", "SECRET_KEY": "x", "DATABASE_URL": db_url, "REDIS_URL": redis_url}
    env.pop("GUNICORN_ACCESS_LOG", None)
    return env


def recreate_database(db_name: str) -> None:
    """DROP (WITH (FORCE)) and CREATE ``db_name``."""
    conn = psycopg2.connect(f"{PG_HOST_URL}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{db_name}"')
    conn.close()


def setup_database_and_redis(db_name: str, env: dict[str, str]) -> None:
    """Drop/create our own database, migrate it, flush our Redis DB."""
    recreate_database(db_name)
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi:app", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
