"""Helpers shared by ``bench_jobs.py`` and its phases: statistics, CPU sampling, the pub/sub listener, clients."""
from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import redis
import requests
from benchlib import percentile


# --------------------------------------------------------------------------- statistics
def summary(values_s: list[float]) -> dict:
    """p50 / p99 / mean / min / max in milliseconds."""
    ms = [v * 1000.0 for v in values_s]
    if not ms:
        return {"n": 0, "p50": float("nan"), "p99": float("nan"), "mean": float("nan"),
                "min": float("nan"), "max": float("nan")}
    return {"n": len(ms), "p50": percentile(ms, 50), "p99": percentile(ms, 99), "mean": statistics.fmean(ms),
            "min": min(ms), "max": max(ms)}


# --------------------------------------------------------------------------- processes
class BackendCpu(threading.Thread):
    """CPU of the PostgreSQL backends serving the bench's own databases, sampled every ``interval`` seconds.

    The machine-wide sum of postgres processes is useless while others run tests: a backend that exits takes its
    CPU out of the sum (negative deltas). Here a backend's CPU stays counted after it exits (up to its last
    sample), and one started during the run counts from zero. Server-wide work (WAL writer, checkpointer) is left out.
    """

    def __init__(self, dsn: str, databases: list[str], interval: float = 0.2) -> None:
        super().__init__(name="backend-cpu", daemon=True)
        import psycopg2

        self.conn = psycopg2.connect(dsn)
        self.conn.autocommit = True
        self.databases, self.interval = databases, interval
        with self.conn.cursor() as cur:
            cur.execute("SELECT now()")
            self.since = cur.fetchone()[0]
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def sample(self) -> None:
        """Read every current backend of our databases once."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT pid, backend_start >= %s FROM pg_stat_activity WHERE datname = ANY(%s)",
                        (self.since, self.databases))
            rows = cur.fetchall()
        for pid, new in rows:
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            with self.lock:
                self.first.setdefault(pid, 0.0 if new else t.user + t.system)
                self.last[pid] = t.user + t.system

    def run(self) -> None:
        """Sample until ``close``."""
        while not self.stopping.wait(self.interval):
            try:
                self.sample()
            except Exception:
                pass

    def total(self) -> float:
        """CPU seconds our backends used since the sampler started (sampling now first)."""
        try:
            self.sample()
        except Exception:
            pass
        with self.lock:
            return sum(self.last[pid] - self.first[pid] for pid in self.last)

    def close(self) -> None:
        """Stop sampling."""
        self.stopping.set()
        self.join(2)
        self.conn.close()


_backend_cpu: BackendCpu | None = None


def sample_backends(dsn: str, databases: list[str]) -> BackendCpu:
    """Start sampling our databases' backends; ``service_cpu_seconds`` reports them as ``postgres`` from now on."""
    global _backend_cpu
    _backend_cpu = BackendCpu(dsn, databases)
    _backend_cpu.start()
    return _backend_cpu


def service_cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of PostgreSQL (our backends, when sampled; else every postgres process), Redis and this
    (client) process."""
    out = {"postgres": 0.0, "redis": 0.0}
    for p in psutil.process_iter(["name"]):
        name = (p.info.get("name") or "")
        key = "postgres" if name.startswith("postgres") else "redis" if name.startswith("redis-server") else None
        if key is None:
            continue
        try:
            t = p.cpu_times()
            out[key] += t.user + t.system
        except psutil.Error:
            pass
    if _backend_cpu is not None:
        out["postgres"] = _backend_cpu.total()
    t = psutil.Process().cpu_times()
    out["client"] = t.user + t.system
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds spent between two ``service_cpu_seconds`` samples, per key."""
    return {k: after[k] - before.get(k, 0.0) for k in after}


def port_free(port: int) -> bool:
    """Whether ``port`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


# --------------------------------------------------------------------------- pub/sub listener
class Listener(threading.Thread):
    """Subscribes to one channel and records when each keyed message first arrived."""

    def __init__(self, redis_url: str, channel: str, keys_of: Callable[[dict], Iterable[Hashable]]) -> None:
        super().__init__(name=f"listen-{channel}", daemon=True)
        self.keys_of = keys_of
        self.client = redis.Redis.from_url(redis_url)
        self.pubsub = self.client.pubsub()
        self.pubsub.subscribe(channel)
        # Wait for the confirmation, so nothing published after this returns can be missed.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            msg = self.pubsub.get_message(timeout=0.5)
            if msg and msg["type"] == "subscribe":
                break
        else:
            raise RuntimeError(f"no subscribe confirmation for {channel}")
        self.cond = threading.Condition()
        self.seen: dict = {}  # key -> (perf_counter, wall time)
        self.messages = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        """Record the first arrival of every key until ``close``."""
        while not self.stopping.is_set():
            msg = self.pubsub.get_message(timeout=0.2)
            if not msg or msg["type"] != "message":
                continue
            stamp = (time.perf_counter(), time.time())
            try:
                keys = self.keys_of(json.loads(msg["data"]))
            except (ValueError, KeyError, TypeError):
                continue
            with self.cond:
                self.messages += 1
                for key in keys:
                    self.seen.setdefault(key, stamp)
                self.cond.notify_all()

    def wait(self, key: Hashable, timeout: float) -> tuple[float, float] | None:
        """(perf_counter, wall time) of ``key``'s arrival, waiting up to ``timeout``; None if it never came."""
        with self.cond:
            self.cond.wait_for(lambda: key in self.seen, timeout)
            return self.seen.get(key)

    def wait_all(self, keys: list, timeout: float) -> list:
        """Wait until every key was seen (or timeout); return the keys still missing."""
        pending = set(keys)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                pending = {k for k in pending if k not in self.seen}
                left = deadline - time.monotonic()
                if not pending or left <= 0:
                    return list(pending)
                self.cond.wait(min(left, 0.5))

    def completion(self, keys: list, timeout: float) -> tuple[list, int, float]:
        """Wait for every key (or timeout): (keys still missing, how many arrived, when the last one did)."""
        missing = self.wait_all(keys, timeout)
        with self.cond:
            arrived = [self.seen[k][0] for k in keys if k in self.seen]
        return missing, len(arrived), max(arrived) if arrived else time.perf_counter()

    def first_arrival(self, keys: Iterable[Hashable]) -> float | None:
        """perf_counter of the earliest arrival among ``keys`` (None if none came yet)."""
        with self.cond:
            times = [self.seen[k][0] for k in keys if k in self.seen]
        return min(times) if times else None

    def get(self, key: Hashable) -> tuple[float, float] | None:
        """``key``'s arrival if it came already."""
        with self.cond:
            return self.seen.get(key)

    def close(self) -> None:
        """Stop listening and close the connection."""
        self.stopping.set()
        self.join(2)
        try:
            self.pubsub.close()
            self.client.close()
        except Exception:
            pass


# --------------------------------------------------------------------------- environment
def base_env(extra: dict[str, str]) -> dict[str, str]:
    """The inherited environment minus any Longrun/DB/Redis settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LONGRUN_") and k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "PORT",
                                                         "WEB_CONCURRENCY", "GUNICORN_THREADS"}}
    env.update(extra)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def venv_bin(name: str) -> str:
    """The virtualenv's executable ``name`` (the bare name when this Python has none)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def celery_worker_cmd(app: str, node: str, concurrency: int, queue: str | None = None) -> list[str]:
    """``celery worker`` as every phase runs it: prefork, ``concurrency`` processes, no mingle/gossip."""
    cmd = [venv_bin("celery"), "-A", app, "worker", "-P", "prefork", "-c", str(concurrency), "-n", f"{node}@%h",
           "-l", "INFO", "--without-mingle", "--without-gossip"]
    return cmd + (["-Q", queue] if queue else [])


# --------------------------------------------------------------------------- HTTP clients
def post_many(url: str, body: dict, m: int, threads: int) -> tuple[list[str], list[str]]:
    """POST ``body`` to ``url`` ``m`` times from ``threads`` threads (one session each): (202 ids, errors)."""
    per_thread = [m // threads + (1 if i < m % threads else 0) for i in range(threads)]
    errors: list[str] = []
    errors_lock = threading.Lock()

    def submitter(count: int) -> list[str]:
        s = requests.Session()
        ids = []
        for _ in range(count):
            try:
                r = s.post(url, json=body, timeout=30)
                if r.status_code == 202:
                    ids.append(r.json()["id"])
                else:
                    with errors_lock:
                        errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
            except requests.RequestException as exc:
                with errors_lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
        s.close()
        return ids

    with ThreadPoolExecutor(threads) as pool:
        ids = [jid for chunk in pool.map(submitter, per_thread) for jid in chunk]
    return ids, errors
