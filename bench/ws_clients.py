"""N WebSocket clients in one asyncio process (``websockets``), driven by bench_notifications.py over a pipe.

One process and one event loop hold every socket, so the client costs one core at most and never
competes with the page prober's thread in the parent. Each socket records, per event, its ``seq``, the
``ts`` it carries and the local receive time; the parent computes latency and loss afterwards.

Commands (parent -> child, over a ``multiprocessing`` pipe) and replies:
  start: the child connects all sockets, then replies ``connected`` (ready/failed counts, times)
  ``("wait_final", timeout)`` -> ``final``: every ready socket saw its job's final event, or the timeout hit
  ``("close",)`` -> ``results``: one record per socket
"""
from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil
from websockets.asyncio.client import connect

FINAL_STATES = {"Succeeded", "Failed", "Cancelled"}


@dataclass
class Watcher:
    """One socket and what it saw."""

    url: str
    headers: dict[str, str]
    job: str
    ready_at: float | None = None  # snapshot (Longrun) or hello (raw) received
    snapshot_seq: int | None = None
    final_at: float | None = None
    error: str | None = None
    closed_early: str | None = None
    # (seq, ts, received_at, replay, kind, state)
    events: list[tuple[int, str, float, bool, str, str]] = field(default_factory=list)
    others: list[dict[str, Any]] = field(default_factory=list)  # error messages and the like
    ws: Any = None
    closing: bool = False  # we are closing it: the end is not the server's doing

    def record(self, raw: str | bytes, now: float) -> None:
        """Note one message."""
        msg = json.loads(raw)
        kind = msg.get("type")
        if kind == "event":
            self.events.append((msg["seq"], msg["ts"], now, bool(msg.get("replay")), msg["kind"], msg["state"]))
            if msg["kind"] == "state" and msg["state"] in FINAL_STATES and self.final_at is None:
                self.final_at = now
        elif kind == "snapshot":
            job = msg["job"]
            if self.ready_at is None:
                self.ready_at = now
                self.snapshot_seq = job["last_seq"]
            if job.get("final") and self.final_at is None:
                self.final_at = now
        elif kind == "hello":
            self.ready_at = now
        else:
            self.others.append(msg)

    def result(self) -> dict[str, Any]:
        """What the parent needs (picklable)."""
        return {"job": self.job, "ready_at": self.ready_at, "snapshot_seq": self.snapshot_seq,
                "final_at": self.final_at, "error": self.error, "closed_early": self.closed_early,
                "events": self.events, "others": self.others[:5]}


async def _watch(w: Watcher, gate: asyncio.Semaphore, opts: dict[str, Any]) -> None:
    async with gate:  # bounded concurrent handshakes, like users arriving, not a SYN flood
        try:
            w.ws = await connect(w.url, additional_headers=w.headers, open_timeout=opts["connect_timeout"],
                                 ping_interval=None, close_timeout=2, max_size=2 ** 22,
                                 compression="deflate" if opts["compression"] else None)
        except Exception as exc:
            w.error = f"{type(exc).__name__}: {exc}"[:200]
            return
    try:
        async for raw in w.ws:
            w.record(raw, time.time())
    except Exception as exc:
        if not w.closing:
            w.closed_early = f"{type(exc).__name__}: {exc}"[:200]
    else:
        if not w.closing:
            w.closed_early = "closed by server"


async def _until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _main(pipe, specs: list[dict[str, Any]], opts: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    watchers = [Watcher(s["url"], s["headers"], s["job"]) for s in specs]
    gate = asyncio.Semaphore(opts["connect_concurrency"])
    t_start = time.time()
    tasks = [asyncio.create_task(_watch(w, gate, opts)) for w in watchers]
    done_or_failed = lambda: all(w.ready_at or w.error or w.closed_early for w in watchers)  # noqa: E731
    await _until(done_or_failed, opts["connect_budget"])
    ready = [w for w in watchers if w.ready_at]  # late ones keep trying, but count as failed
    pipe.send({"phase": "connected", "ready": len(ready), "failed": len(watchers) - len(ready),
               "t_start": t_start, "t_all": max((w.ready_at for w in ready), default=time.time()),
               "errors": sorted({w.error or w.closed_early or "not ready" for w in watchers if not w.ready_at})[:5]})
    while True:
        cmd = await loop.run_in_executor(None, pipe.recv)
        if cmd[0] == "wait_final":
            await _until(lambda: all(w.final_at or w.closed_early for w in ready), cmd[1])
            pipe.send({"phase": "final", "final": sum(1 for w in ready if w.final_at), "t": time.time()})
        elif cmd[0] == "close":
            for w in watchers:
                w.closing = True
            await asyncio.gather(*(w.ws.close() for w in watchers if w.ws is not None), return_exceptions=True)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            pipe.send({"phase": "results", "sockets": [w.result() for w in watchers]})
            return


def run(pipe, specs: list[dict[str, Any]], opts: dict[str, Any]) -> None:
    """Process entry point (``multiprocessing`` spawn target)."""
    try:
        asyncio.run(_main(pipe, specs, opts))
    except KeyboardInterrupt:
        pass


class ClientProcess:
    """Parent side of a socket-client child process (spawned, so it shares nothing with the parent)."""

    def __init__(self, target: Callable[..., None], args: tuple, name: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child, *args), name=name, daemon=True)
        self.proc.start()
        self.pid = self.proc.pid

    def cpu_seconds(self) -> float:
        """CPU seconds the child has used so far (0 once it is gone)."""
        try:
            t = psutil.Process(self.pid).cpu_times()
            return t.user + t.system
        except psutil.Error:
            return 0.0

    def kill(self) -> None:
        """Stop the child at once."""
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
