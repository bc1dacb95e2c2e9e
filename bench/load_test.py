#!/usr/bin/env python3
"""Bounded load test: many owners submit jobs under backpressure while sockets watch every job.

    .venv/bin/python bench/load_test.py                          # 50 owners x 10 jobs, 2 sockets per job; ~3-6 min
    .venv/bin/python bench/load_test.py --owners 10 --jobs-per-owner 3     # quick look
    .venv/bin/python bench/load_test.py --max-waiting 0 --max-per-minute 0  # server limits off (env of the run)
    .venv/bin/python bench/load_test.py --help

The issue's scenario: "500 job submissions from 50 owners and 1,000 watching sockets: every job reaches a
final state, every watcher receives its job's final event, no 5xx, no job visible to a wrong owner."

It owns everything it touches: PostgreSQL database ``longrun_load`` (dropped and re-created WITH (FORCE)),
Redis DB 11 (flushed), one port in 5300-5399 on 127.0.0.1, and the gunicorn / celery processes it starts
(each in its own session, killed as a group on exit, failure or Ctrl-C). The socket clients live in one
asyncio child process built on bench/ws_clients.py. See bench/README.md for what the figures mean.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import requests

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import ws_clients  # noqa: E402 - after the path fix
from benchlib import (  # noqa: E402
    PG_HOST_URL,
    Proc,
    ProcSet,
    fmt,
    free_port,
    loadavg,
    percentile,
    raise_nofile,
    setup_database_and_redis,
    testing_env,
    worker_shapes,
)

DB_NAME = "longrun_load"
REDIS_DB = 11
PORTS = range(5300, 5400)
HTTP_TIMEOUT = 30.0


def log_problems(proc: Proc) -> list[str]:
    return [line for line in proc.log_text().splitlines()
            if "Traceback" in line or "[ERROR]" in line or "CRITICAL" in line or "WORKER TIMEOUT" in line]


# --------------------------------------------------------------------------- socket pool (child process)
@dataclass
class LoadWatcher(ws_clients.Watcher):
    """ws_clients.Watcher plus what this test needs: role, when it was asked for, the state it ended in."""

    role: str = "early"          # early: right after the 202 | late: when the job is seen Processing | foreign
    asked_at: float = 0.0        # the parent's time.time() when it asked for this socket
    connect_at: float | None = None
    snapshot_state: str | None = None
    final_state: str | None = None
    wrong_job: int = 0           # events or snapshots about a job this socket did not ask for
    hook: Any = None

    def record(self, raw: str | bytes, now: float) -> None:
        super().record(raw, now)
        msg = json.loads(raw)
        if (msg.get("type") == "event" and msg.get("job_id") != self.job) or \
                (msg.get("type") == "snapshot" and msg.get("job", {}).get("id") != self.job):
            self.wrong_job += 1
        if msg.get("type") == "snapshot":
            job = msg.get("job", {})
            if self.snapshot_state is None:
                self.snapshot_state = job.get("state")
            if job.get("final") and self.final_state is None:
                self.final_state = job.get("state")
        elif msg.get("type") == "event" and msg.get("kind") == "state" and msg.get("state") in ws_clients.FINAL_STATES:
            self.final_state = msg["state"]
        if self.hook is not None:
            self.hook(self, msg)

    def result(self) -> dict[str, Any]:
        out = super().result()
        out.update(role=self.role, asked_at=self.asked_at, connect_at=self.connect_at,
                   snapshot_state=self.snapshot_state, final_state=self.final_state, others=self.others[:5],
                   wrong_job=self.wrong_job)
        return out


async def _watch(w: LoadWatcher, gate: asyncio.Semaphore, opts: dict[str, Any]) -> None:
    w.connect_at = time.time()
    await ws_clients._watch(w, gate, opts)


async def _probe_foreign(w: LoadWatcher, gate: asyncio.Semaphore, opts: dict[str, Any]) -> None:
    """Another owner's socket: it must get one job-not-found error and nothing about the job."""
    w.connect_at = time.time()
    async with gate:
        try:
            ws = await ws_clients.connect(w.url, additional_headers=w.headers, open_timeout=opts["connect_timeout"],
                                          ping_interval=None, close_timeout=2,
                                          compression="deflate" if opts["compression"] else None)
        except Exception as exc:
            w.error = f"{type(exc).__name__}: {exc}"[:200]
            return
    try:
        w.record(await asyncio.wait_for(ws.recv(), timeout=opts["connect_timeout"]), time.time())
        try:  # anything more (a snapshot or event would be a leak)?
            while True:
                w.record(await asyncio.wait_for(ws.recv(), timeout=opts["foreign_linger"]), time.time())
        except (asyncio.TimeoutError, TimeoutError):
            pass
    except Exception as exc:
        w.closed_early = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        w.closing = True
        try:
            await ws.close()
        except Exception:
            pass


async def _pool_main(pipe, opts: dict[str, Any]) -> None:  # noqa: C901
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(opts["connect_concurrency"])
    watchers: list[LoadWatcher] = []
    foreign: list[LoadWatcher] = []
    tasks: list[asyncio.Task] = []
    late: dict[str, list[dict[str, Any]]] = defaultdict(list)  # job -> specs waiting for Processing/final
    notify_processing: set[str] = set()
    told_final: set[str] = set()

    def open_socket(spec: dict[str, Any]) -> None:
        w = LoadWatcher(spec["url"], spec["headers"], spec["job"], role=spec["role"], asked_at=spec["asked_at"],
                        hook=on_message)
        if spec["role"] == "foreign":
            foreign.append(w)
            tasks.append(asyncio.create_task(_probe_foreign(w, gate, opts)))
        else:
            watchers.append(w)
            tasks.append(asyncio.create_task(_watch_then(w)))

    async def _watch_then(w: LoadWatcher) -> None:
        await _watch(w, gate, opts)
        release_late(w.job)  # the first socket failed or closed: do not leave the late one waiting forever

    def release_late(job: str) -> None:
        for spec in late.pop(job, []):
            open_socket(spec)

    def on_message(w: LoadWatcher, msg: dict[str, Any]) -> None:
        if w.role == "foreign":
            return
        state = msg.get("state") if msg.get("type") == "event" else msg.get("job", {}).get("state")
        if state == "Processing" or w.final_at:
            if w.job in late:
                release_late(w.job)
            if state == "Processing" and w.job in notify_processing:
                notify_processing.discard(w.job)
                pipe.send(("processing", w.job))
        if w.final_at and w.job not in told_final:
            told_final.add(w.job)
            pipe.send(("final", w.job, w.final_at, w.final_state))

    def settled() -> bool:
        return not late and all(w.final_at or w.error or w.closed_early for w in watchers)

    while True:
        cmd = await loop.run_in_executor(None, pipe.recv)
        if cmd[0] == "add":
            for spec in cmd[1]:
                if spec.get("notify_processing"):
                    notify_processing.add(spec["job"])
                if spec["role"] == "late":
                    late[spec["job"]].append(spec)
                else:
                    open_socket(spec)
        elif cmd[0] == "wait_final":
            deadline = time.monotonic() + cmd[1]
            while not settled() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            open_ws = [w.ws for w in watchers if w.ws is not None and w.ready_at and not w.closed_early]
            ports = []
            for ws in open_ws:
                try:
                    ports.append(ws.local_address[1])
                except Exception:
                    pass
            pipe.send(("reply", {"settled": settled(), "final": sum(1 for w in watchers if w.final_at),
                                 "watchers": len(watchers), "late_pending": sum(map(len, late.values())),
                                 "open": len(open_ws), "ports": ports, "t": time.time()}))
        elif cmd[0] == "close":
            release_late_all = list(late)
            for job in release_late_all:
                late.pop(job, None)
            for w in watchers + foreign:
                w.closing = True
            await asyncio.gather(*(w.ws.close() for w in watchers if w.ws is not None), return_exceptions=True)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            pipe.send(("reply", {"watchers": [w.result() for w in watchers],
                                 "foreign": [w.result() for w in foreign]}))
            return


def pool_run(pipe, opts: dict[str, Any]) -> None:
    """Process entry point (``multiprocessing`` spawn target)."""
    raise_nofile()
    try:
        asyncio.run(_pool_main(pipe, opts))
    except KeyboardInterrupt:
        pass


class Pool(ws_clients.ClientProcess):
    """Parent side of the socket pool: thread-safe ``add``, notifications dispatched by a reader thread."""

    def __init__(self, opts: dict[str, Any], on_processing, on_final) -> None:
        super().__init__(pool_run, (opts,), "ws-pool")
        self._send_lock = threading.Lock()
        self.replies: queue.Queue = queue.Queue()
        self.on_processing, self.on_final = on_processing, on_final
        self.reader = threading.Thread(target=self._read, name="pool-reader", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                msg = self.pipe.recv()
            except (EOFError, OSError):
                return
            if msg[0] == "processing":
                self.on_processing(msg[1])
            elif msg[0] == "final":
                self.on_final(msg[1], msg[2], msg[3])
            else:
                self.replies.put(msg[1])
                if "watchers" in msg[1] and isinstance(msg[1]["watchers"], list):
                    return

    def send(self, cmd: tuple) -> None:
        with self._send_lock:
            self.pipe.send(cmd)

    def ask(self, cmd: tuple, timeout: float) -> dict[str, Any]:
        self.send(cmd)
        try:
            return self.replies.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"socket pool did not answer {cmd[0]} within {timeout:.0f} s") from None



# --------------------------------------------------------------------------- HTTP bookkeeping
class Stats:
    """Every HTTP call: latency per kind, status counts, transport errors; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: Counter = Counter()
        self.status_by_kind: dict[str, Counter] = defaultdict(Counter)
        self.transport: Counter = Counter()
        self.transport_samples: list[str] = []
        self.samples_5xx: list[str] = []
        self.notes: list[str] = []

    def call(self, session: requests.Session, method: str, url: str, kind: str, **kw: Any) -> requests.Response | None:
        t0 = time.perf_counter()
        context = kw.pop("_context", "")
        kw.setdefault("timeout", HTTP_TIMEOUT)
        try:
            r = session.request(method, url, **kw)
        except requests.RequestException as exc:
            with self.lock:
                self.transport[f"{kind}: {type(exc).__name__}"] += 1
                if len(self.transport_samples) < 3:
                    self.transport_samples.append(f"{kind} after {time.perf_counter() - t0:.3f} s "
                                                  f"({context}): {exc}"[:300])
            return None
        dt = (time.perf_counter() - t0) * 1000
        label = f"{kind} → {r.status_code}"
        with self.lock:
            self.latency[label].append(dt)
            self.status[r.status_code] += 1
            self.status_by_kind[kind][r.status_code] += 1
            if r.status_code >= 500 and len(self.samples_5xx) < 5:
                self.samples_5xx.append(f"{method} {urlsplit(url).path[:60]} → {r.status_code}: {r.text[:200]}")
        return r

    def note(self, text: str) -> None:
        with self.lock:
            if len(self.notes) < 30:
                self.notes.append(text)


@dataclass
class JobRec:
    id: str
    owner: int
    plan: str
    params: dict[str, Any]
    t_post: float        # time.time() when the accepted POST was sent
    t_accepted: float
    first_final: float | None = None
    first_final_state: str | None = None
    cancel_status: int | None = None


@dataclass
class Owner:
    idx: int
    session: requests.Session = field(default_factory=requests.Session)
    cookie: str = ""
    jobs: list[JobRec] = field(default_factory=list)
    finals: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)
    throttled: int = 0
    throttle_wait_s: float = 0.0
    gave_up: int = 0


def cookie_header(session: requests.Session) -> str:
    return "; ".join(f"{k}={v}" for k, v in session.cookies.items())


# --------------------------------------------------------------------------- the run
class LoadTest:
    def __init__(self, args: argparse.Namespace, base: str) -> None:
        self.args = args
        self.base = base
        self.ws_base = base.replace("http://", "ws://")
        self.stats = Stats()
        self.owners = [Owner(i) for i in range(args.owners)]
        self.jobs: dict[str, JobRec] = {}
        self.jobs_lock = threading.Lock()
        self.cancel_q: queue.Queue = queue.Queue()
        self.rng = random.Random(args.seed)
        self.plans = self._plan()
        self.foreign_socket_jobs = 0
        self.foreign_get = Counter()       # status of foreign GET /jobs/<id> right after creation
        self.pool: Pool | None = None
        self.t_first_post: float | None = None
        self.t_last_accept: float | None = None

    def _plan(self) -> list[list[tuple[str, dict[str, Any], bool]]]:
        """Per owner, the jobs it will submit: (kind, params, whether its last socket connects late)."""
        a = self.args
        total = a.owners * a.jobs_per_owner
        kinds = (["retry_once"] * a.retrying + ["fail"] * a.failing + ["cancel_queued"] * a.cancel_queued
                 + ["cancel_running"] * a.cancel_running)
        kinds = kinds[:total] + ["ok"] * max(0, total - len(kinds))
        self.rng.shuffle(kinds)
        plans: list[list[tuple[str, dict[str, Any], bool]]] = [[] for _ in range(a.owners)]
        for k, kind in enumerate(kinds):
            params: dict[str, Any] = {"duration_seconds": round(self.rng.uniform(a.min_duration, a.max_duration), 2),
                                      "steps": self.rng.randint(a.min_steps, a.max_steps)}
            if kind == "retry_once":
                params["fail_times"] = 1
            elif kind == "fail":
                params["fail_times"] = 10  # above max_attempts (3): Failed for good
            elif kind == "cancel_running":
                params = {"duration_seconds": a.cancel_duration, "steps": max(2, int(a.cancel_duration * 2))}
            plans[k % a.owners].append((kind, params, self.rng.random() < a.late_fraction))
        return plans

    # -- pool notifications (reader thread) ---------------------------------------------
    def on_processing(self, job_id: str) -> None:
        self.cancel_q.put(job_id)

    def on_final(self, job_id: str, t: float, state: str | None) -> None:
        rec = self.jobs.get(job_id)
        if rec is None:
            return
        rec.first_final, rec.first_final_state = t, state
        owner = self.owners[rec.owner]
        with owner.cond:
            owner.finals += 1
            owner.cond.notify_all()

    # -- owners ----------------------------------------------------------------------------
    def specs_for(self, owner: Owner, rec: JobRec, late_one: bool) -> list[dict[str, Any]]:
        a = self.args
        url = f"{self.ws_base}/notifications?job={rec.id}&after_seq=0&format=json"
        specs = []
        for i in range(a.watchers_per_job):
            role = "late" if (late_one and i == a.watchers_per_job - 1 and i > 0) else "early"
            specs.append({"url": url, "headers": {"Cookie": owner.cookie}, "job": rec.id, "role": role,
                          "asked_at": time.time(), "notify_processing": rec.plan == "cancel_running"})
        return specs

    def open_session(self, owner: Owner) -> None:
        """The owner's identity: a fresh cookie session from GET /jobs (which must be empty)."""
        r = self.stats.call(owner.session, "GET", f"{self.base}/jobs", "GET /jobs (new session)")
        if r is None or r.status_code != 200:
            self.stats.note(f"owner {owner.idx}: first GET /jobs failed")
            return
        if r.json().get("total") != 0:
            self.stats.note(f"owner {owner.idx}: a new session already lists {r.json().get('total')} jobs")
        owner.cookie = cookie_header(owner.session)

    def spy_for(self, owner: Owner) -> requests.Session:
        """A session of another real owner (the next one), to ask for ``owner``'s jobs."""
        spy = requests.Session()
        spy.cookies.update(self.owners[(owner.idx + 1) % len(self.owners)].session.cookies)
        return spy

    def foreign_of(self, owner: Owner) -> Owner:
        return self.owners[(owner.idx + 1 + self.rng.randrange(len(self.owners) - 1)) % len(self.owners)] \
            if len(self.owners) > 1 else owner

    def run_owner(self, owner: Owner, spy: requests.Session) -> None:
        a = self.args
        time.sleep(owner.idx * a.ramp / max(1, len(self.owners)))
        if not owner.cookie:
            return
        for n, (kind, params, late_one) in enumerate(self.plans[owner.idx]):
            attempts = 0
            key = f"load-{a.seed}-{owner.idx}-{n}-{owner.cookie[-12:]}"
            context = "first request"
            while True:
                seen_finals = owner.finals
                t_post = time.time()
                self.t_first_post = self.t_first_post or t_post
                r = self.stats.call(owner.session, "POST", f"{self.base}/reports/v2", "POST /reports/v2",
                                    json={"report": "demo", "params": params}, _context=context,
                                    headers={"Idempotency-Key": key} if not a.no_idempotency_key else None)
                context = "next job"
                if r is not None and r.status_code == 202 and r.headers.get("Idempotent-Replayed"):
                    self.stats.note(f"owner {owner.idx}: a re-sent POST was answered by the job the lost one created")
                if r is not None and r.status_code == 202:
                    rec = JobRec(r.json()["id"], owner.idx, kind, params, t_post, time.time())
                    with self.jobs_lock:
                        self.jobs[rec.id] = rec
                        owner.jobs.append(rec)
                        self.t_last_accept = rec.t_accepted
                    self.pool.send(("add", self.specs_for(owner, rec, late_one)))
                    if kind == "cancel_queued":
                        c = self.stats.call(owner.session, "DELETE", f"{self.base}/jobs/{rec.id}", "DELETE /jobs/<id>")
                        rec.cancel_status = c.status_code if c is not None else -1
                    # Isolation, right away: another owner asks for this job.
                    f = self.stats.call(spy, "GET", f"{self.base}/jobs/{rec.id}", "GET /jobs/<id> (other owner)")
                    with self.jobs_lock:
                        self.foreign_get[f.status_code if f is not None else -1] += 1
                    with self.jobs_lock:
                        probe = self.foreign_socket_jobs < a.foreign_sockets
                        self.foreign_socket_jobs += probe
                    if probe:
                        other = self.foreign_of(owner)
                        self.pool.send(("add", [{"url": f"{self.ws_base}/notifications?job={rec.id}&after_seq=0"
                                                        "&format=json", "headers": {"Cookie": other.cookie},
                                                 "job": rec.id, "role": "foreign", "asked_at": time.time()}]))
                    break
                if r is not None and r.status_code == 429:
                    owner.throttled += 1
                    retry_after = float(r.headers.get("Retry-After", "5"))
                    t0 = time.monotonic()
                    if a.retry_after_only:
                        time.sleep(retry_after)
                    else:  # Retry-After, or sooner if one of our own jobs finished meanwhile
                        with owner.cond:
                            owner.cond.wait_for(lambda o=owner, s=seen_finals: o.finals > s, timeout=retry_after)
                    owner.throttle_wait_s += time.monotonic() - t0
                    context = f"after a 429, waited {time.monotonic() - t0:.2f} s on a kept-alive connection"
                    continue
                attempts += 1
                context = "re-sent after an error"
                if r is not None:  # transport errors are summarised by Stats
                    self.stats.note(f"owner {owner.idx}: POST → {r.status_code} {r.text[:150]}")
                if attempts >= 3:
                    owner.gave_up += 1
                    break
                time.sleep(1)

    def run_canceller(self, stop: threading.Event) -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                job_id = self.cancel_q.get(timeout=0.2)
            except queue.Empty:
                continue
            rec = self.jobs.get(job_id)
            if rec is None:
                continue
            owner = self.owners[rec.owner]
            c = self.stats.call(session, "DELETE", f"{self.base}/jobs/{job_id}", "DELETE /jobs/<id>",
                                headers={"Cookie": owner.cookie})
            rec.cancel_status = c.status_code if c is not None else -1

    # -- isolation after the run ------------------------------------------------------------
    def final_checks(self) -> dict[str, Any]:
        """Each owner's list is exactly its jobs; its own GET shows the final state; another owner gets 404
        on the job and its events; done by one thread per owner."""
        out = {"list_exact": 0, "list_bad": [], "list_unchecked": 0, "own_get_final": 0, "own_get_bad": [],
               "foreign_events": Counter(), "foreign_result": Counter(), "skipped": 0}
        lock = threading.Lock()
        deadline = time.monotonic() + self.args.check_budget
        timeout = self.args.check_timeout

        def check(owner: Owner) -> None:
            mine = {j.id for j in owner.jobs}
            r = self.stats.call(owner.session, "GET", f"{self.base}/jobs?per_page=100", "GET /jobs (list check)",
                                timeout=timeout)
            listed = {item["id"] for item in r.json()["items"]} if r is not None and r.status_code == 200 else None
            total = r.json().get("total") if r is not None and r.status_code == 200 else None
            spy = self.spy_for(owner)
            with lock:
                if listed is None:
                    out["list_unchecked"] += 1
                elif listed == mine and total == len(mine):
                    out["list_exact"] += 1
                else:
                    out["list_bad"].append(f"owner {owner.idx}: listed {len(listed or ())} (total {total}), "
                                           f"own {len(mine)}, foreign ids {len((listed or set()) - mine)}")
            for rec in owner.jobs:
                if time.monotonic() > deadline:  # bounded: a wedged server must not stretch the run
                    with lock:
                        out["skipped"] += 1
                    continue
                g = self.stats.call(owner.session, "GET", f"{self.base}/jobs/{rec.id}", "GET /jobs/<id> (own)",
                                    timeout=timeout)
                ok = g is not None and g.status_code == 200 and g.json().get("final")
                e = self.stats.call(spy, "GET", f"{self.base}/jobs/{rec.id}/events",
                                    "GET /jobs/<id>/events (other owner)", timeout=timeout)
                res = self.stats.call(spy, "GET", f"{self.base}/jobs/{rec.id}/result",
                                      "GET /jobs/<id>/result (other owner)", timeout=timeout)
                with lock:
                    if ok:
                        out["own_get_final"] += 1
                    else:
                        out["own_get_bad"].append(rec.id)
                    out["foreign_events"][e.status_code if e is not None else -1] += 1
                    out["foreign_result"][res.status_code if res is not None else -1] += 1

        threads = [threading.Thread(target=check, args=(o,)) for o in self.owners if o.cookie]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()) + 3 * timeout + 5)
        return out


def db_rows(job_ids: list[str]) -> dict[str, dict[str, Any]]:
    conn = psycopg2.connect(f"{PG_HOST_URL}/{DB_NAME}")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id::text, state, last_seq, attempts, owner, "
                        "extract(epoch from created_at), extract(epoch from started_at), "
                        "extract(epoch from finished_at) FROM jobs")
            rows = {r[0]: {"state": r[1], "last_seq": r[2], "attempts": r[3], "owner": r[4],
                           "created": float(r[5]) if r[5] is not None else None,
                           "started": float(r[6]) if r[6] is not None else None,
                           "finished": float(r[7]) if r[7] is not None else None} for r in cur.fetchall()}
    finally:
        conn.close()
    missing = [j for j in job_ids if j not in rows]
    if missing:
        rows.update({j: {"state": "MISSING", "last_seq": None} for j in missing})
    return rows


def _check_sequence(out: dict[str, Any], w: dict[str, Any], row: dict[str, Any]) -> list[int]:
    """Count one watcher's replays, duplicates, disorder, gaps and short ranges into ``out``; its seqs."""
    seqs = [e[0] for e in w["events"]]
    out["events"] += len(seqs)
    out["replayed"] += sum(1 for e in w["events"] if e[3])
    out["dupes"] += len(seqs) - len(set(seqs))
    out["out_of_order"] += sum(1 for x, y in pairwise(seqs) if y < x)
    uniq = sorted(set(seqs))
    if uniq and uniq != list(range(uniq[0], uniq[-1] + 1)):
        out["gaps"] += 1
        if len(out["examples"]) < 5:
            out["examples"].append(f"gap: job {w['job'][:8]} seqs {seqs[:40]}")
    # after_seq=0: the socket must end holding every event up to the job's last seq in PostgreSQL
    if row.get("last_seq") is not None and (not uniq or uniq[0] != 1 or uniq[-1] != row["last_seq"]):
        out["not_to_last"] += 1
        if len(out["examples"]) < 5:
            out["examples"].append(f"range: job {w['job'][:8]} seqs {seqs[:40]} db last_seq {row['last_seq']}")
    return seqs


def analyse_watchers(watchers: list[dict[str, Any]], rows: dict[str, dict[str, Any]], jobs: dict[str, JobRec]) -> dict[str, Any]:
    out = {"n": len(watchers), "connect_failed": 0, "closed_early": 0, "missing_final": 0, "wrong_final": 0,
           "wrong_job": 0, "gaps": 0, "dupes": 0, "out_of_order": 0, "not_to_last": 0, "replayed": 0, "events": 0,
           "errors": Counter(), "roles": Counter(), "late_snapshot": Counter(), "examples": []}
    ready_ms: list[float] = []
    post_to_final_ms: list[float] = []
    for w in watchers:
        out["roles"][w["role"]] += 1
        row = rows.get(w["job"], {})
        if w["error"] or not w["ready_at"]:
            out["connect_failed"] += 1
            out["errors"][(w["error"] or w["closed_early"] or "no snapshot")[:120]] += 1
            continue
        ready_ms.append((w["ready_at"] - w["connect_at"]) * 1000)
        if w["role"] == "late":
            out["late_snapshot"][w["snapshot_state"]] += 1
        if w["closed_early"]:
            out["closed_early"] += 1
            out["errors"][w["closed_early"][:120]] += 1
        out["wrong_job"] += w["wrong_job"]
        seqs = _check_sequence(out, w, row)
        if not w["final_at"]:
            out["missing_final"] += 1
            if len(out["examples"]) < 5:
                out["examples"].append(f"no final: job {w['job'][:8]} ({w['role']}) db {row.get('state')} "
                                       f"seqs {seqs[-5:]} others {w['others'][:2]}")
        elif w["final_state"] != row.get("state"):
            out["wrong_final"] += 1
        rec = jobs.get(w["job"])
        if w["final_at"] and rec is not None and w["role"] == "early":
            post_to_final_ms.append((w["final_at"] - rec.t_post) * 1000)
    out["ready_ms"] = ready_ms
    out["post_to_final_ms"] = post_to_final_ms
    return out


def analyse_foreign(foreign: list[dict[str, Any]]) -> dict[str, Any]:
    ok, leaks, other = 0, [], []
    for w in foreign:
        errs = [m.get("error") for m in w["others"] if m.get("type") == "error"]
        if w["ready_at"] or w["events"]:
            leaks.append(w["job"])
        elif errs == ["job-not-found"]:
            ok += 1
        else:
            other.append(f"{w['job'][:8]}: {w['error'] or w['closed_early'] or w['others'][:2]}")
    return {"n": len(foreign), "ok": ok, "leaks": leaks, "other": other[:5], "n_other": len(other)}


# --------------------------------------------------------------------------- report
def lat_row(name: str, ms: list[float]) -> str:
    return (f"| {name} | {len(ms)} | {fmt(percentile(ms, 50))} | {fmt(percentile(ms, 99))} "
            f"| {fmt(max(ms) if ms else None)} |")


def report(a: argparse.Namespace, t: LoadTest, ctx: dict[str, Any]) -> tuple[str, bool]:
    st, wa, fo, fc, rows = t.stats, ctx["watchers"], ctx["foreign"], ctx["final_checks"], ctx["rows"]
    jobs = t.jobs
    states = Counter(rows[j]["state"] for j in jobs)
    all_states = Counter(r["state"] for r in rows.values())
    n_jobs = len(jobs)
    planned = a.owners * a.jobs_per_owner
    n5xx = sum(v for k, v in st.status.items() if k >= 500)
    throttled = sum(o.throttled for o in t.owners)
    non_final = sum(1 for j in jobs if rows[j]["state"] not in ws_clients.FINAL_STATES)
    # -1 = the request itself failed (a transport error, counted above), not an answer about the job
    foreign_get_bad = sum(v for k, v in t.foreign_get.items() if k not in (404, -1))
    foreign_ev_bad = sum(v for k, v in fc["foreign_events"].items() if k not in (404, -1))
    foreign_res_bad = sum(v for k, v in fc["foreign_result"].items() if k not in (404, -1))
    unchecked = (sum(v for k, v in t.foreign_get.items() if k == -1) + fc["foreign_events"][-1]
                 + fc["foreign_result"][-1] + fc["list_unchecked"] + 3 * fc["skipped"])
    extra_rows = len(rows) - n_jobs
    isolation = (foreign_get_bad + foreign_ev_bad + foreign_res_bad + len(fo["leaks"]) + len(fc["list_bad"])
                 + wa["wrong_job"])
    last_final = max((r.first_final for r in jobs.values() if r.first_final), default=None)
    span = (last_final - t.t_first_post) if last_final and t.t_first_post else float("nan")
    expected = Counter()
    for plan in t.plans:
        for kind, *_ in plan:
            expected[{"fail": "Failed", "cancel_queued": "Cancelled", "cancel_running": "Cancelled"}.get(kind, "Succeeded")] += 1
    queue_wait = [(r["started"] - r["created"]) * 1000 for j in jobs if (r := rows[j]).get("started") and r.get("created")]
    run_time = [(r["finished"] - r["started"]) * 1000 for j in jobs if (r := rows[j]).get("finished") and r.get("started")]
    first_final = [(r.first_final - r.t_post) * 1000 for r in jobs.values() if r.first_final]
    checks = [
        ("jobs accepted (202)", f"{n_jobs}/{planned}", n_jobs == planned),
        ("jobs in a final state (PostgreSQL)", f"{n_jobs - non_final}/{n_jobs}", non_final == 0 and n_jobs > 0),
        ("5xx responses", str(n5xx), n5xx == 0),
        ("transport errors (timeouts, resets; POSTs re-sent with their Idempotency-Key)",
         str(sum(st.transport.values())), not st.transport),
        ("socket connect failures", str(wa["connect_failed"]), wa["connect_failed"] == 0),
        ("sockets closed by the server", str(wa["closed_early"]), wa["closed_early"] == 0),
        ("watchers missing the final state", f"{wa['missing_final']}/{wa['n']}", wa["missing_final"] == 0),
        ("watchers whose final state ≠ PostgreSQL", str(wa["wrong_final"]), wa["wrong_final"] == 0),
        ("watchers with seq gaps / dupes / out of order", f"{wa['gaps']} / {wa['dupes']} / {wa['out_of_order']}",
         not (wa["gaps"] or wa["dupes"] or wa["out_of_order"])),
        ("watchers not holding seqs 1..last_seq", str(wa["not_to_last"]), wa["not_to_last"] == 0),
        ("isolation violations (checks not done: request failed or budget spent)", f"{isolation} ({unchecked})",
         isolation == 0 and unchecked == 0),
        ("gunicorn worker with every thread held by a socket", ctx["saturated"] or "none", not ctx["saturated"]),
        ("rows in the DB that nobody was told about", str(extra_rows), extra_rows == 0),
        ("web / worker log error lines", f"{len(ctx['web_errors'])} / {len(ctx['worker_errors'])}",
         not ctx["web_errors"] and not ctx["worker_errors"]),
    ]
    passed = all(ok for *_, ok in checks)
    lim = ctx["limits"]
    lines = [
        f"## load_test.py — {ctx['started']}",
        "",
        f"host: {os.cpu_count()} CPUs, load average {ctx['load_start']} at start, {ctx['load_end']} at end; "
        f"gunicorn -w {a.workers} --threads {a.threads} --worker-connections {a.worker_connections} "
        f"--keep-alive {a.keepalive if a.keepalive is not None else 'from gunicorn.conf.py (15)'}; "
        f"celery prefork -c {a.concurrency}; per-owner limits: {lim}",
        f"workload: {a.owners} owners × {a.jobs_per_owner} jobs = {planned} `POST /reports/v2` demo jobs "
        f"({a.min_duration:g}–{a.max_duration:g} s, {a.min_steps}–{a.max_steps} steps; {a.retrying} fail once then "
        f"retry, {a.failing} fail for good, {a.cancel_queued} cancelled right after the 202, {a.cancel_running} "
        f"({a.cancel_duration:g} s) cancelled once seen Processing); {a.watchers_per_job} sockets per job "
        f"(`after_seq=0`; for {a.late_fraction:.0%} of jobs the last one connects when the job is seen "
        f"Processing); {a.foreign_sockets} other-owner sockets; seed {a.seed}",
        "",
        f"**{'PASS' if passed else 'FAIL'}**",
        "",
        "| check | result | ok |",
        "|---|---|---|",
        *[f"| {name} | {value} | {'✓' if ok else '✗'} |" for name, value, ok in checks],
        "",
        "| figure | value |",
        "|---|---|",
        f"| total wall time (setup → report) | {fmt(ctx['wall'], 0)} s |",
        f"| first POST → last job's final event | {fmt(span)} s |",
        f"| jobs/s (created → all final) | {fmt(n_jobs / span if span == span and span else None, 2)} |",
        f"| first POST → last 202 (submission, throttled) | "
        f"{fmt((t.t_last_accept - t.t_first_post) if t.t_last_accept and t.t_first_post else None)} s |",
        f"| 429 answers (expected backpressure, retried) | {throttled} (owners waited "
        f"{fmt(sum(o.throttle_wait_s for o in t.owners), 0)} s in all; "
        f"max per owner {max((o.throttled for o in t.owners), default=0)}) |",
        f"| watchers / sockets open at the end | {wa['n']} / {ctx['pool_final'].get('open', '—')} |",
        f"| per gunicorn worker at the end | {ctx['shape_text']} |",
        f"| late sockets' first snapshot state | {dict(wa['late_snapshot'])} |",
        f"| events received by watchers (replayed from PostgreSQL) | {wa['events']} ({wa['replayed']}) |",
        f"| CPU s: web / worker / socket client / load client | {ctx['cpu']} |",
        "",
        f"Final states in PostgreSQL: {dict(states)} (planned {dict(expected)}; all rows {dict(all_states)}); "
        f"attempts > 1: {sum(1 for j in jobs if (rows[j].get('attempts') or 0) > 1)}; "
        f"cancel answers: {dict(Counter(r.cancel_status for r in jobs.values() if r.cancel_status is not None))}",
        "",
        "| latency (ms) | n | p50 | p99 | max |",
        "|---|---|---|---|---|",
        *[lat_row(k, v) for k, v in sorted(st.latency.items())],
        lat_row("POST sent → final event, per watcher (early sockets)", wa["post_to_final_ms"]),
        lat_row("POST sent → final event, per job (first socket)", first_final),
        lat_row("queue wait: created_at → started_at (DB)", queue_wait),
        lat_row("run: started_at → finished_at (DB, last attempt)", run_time),
        lat_row("socket opened → snapshot received", wa["ready_ms"]),
        "",
        f"HTTP status counts: {dict(sorted(st.status.items()))}; by kind: "
        + "; ".join(f"{k} {dict(sorted(v.items()))}" for k, v in sorted(st.status_by_kind.items())),
        f"Isolation: other owner's GET /jobs/<id> right after creation {dict(t.foreign_get)} (want all 404); "
        f"its /events {dict(fc['foreign_events'])}, /result {dict(fc['foreign_result'])} after the run; "
        f"other owner's socket: {fo['ok']}/{fo['n']} job-not-found, {len(fo['leaks'])} leaked a snapshot/event, "
        f"{fo['n_other']} other {fo['other']}; own GET /jobs lists exact: {fc['list_exact']}/{len(t.owners)}; "
        f"own GET /jobs/<id> final: {fc['own_get_final']}/{n_jobs} ({fc['skipped']} jobs not checked: budget); "
        f"messages about another job on a watcher: "
        f"{wa['wrong_job']}",
    ]
    notes = list(st.notes) + [f"5xx: {s}" for s in st.samples_5xx] + [f"transport: {k} ×{v}" for k, v in st.transport.items()]
    notes += [f"transport error: {x}" for x in st.transport_samples]
    notes += [f"list: {x}" for x in fc["list_bad"][:5]] + [f"watcher: {x}" for x in wa["examples"]]
    notes += [f"socket error ×{v}: {k}" for k, v in wa["errors"].most_common(5)]
    notes += [f"web log: {x[:200]}" for x in ctx["web_errors"][:3]] + [f"worker log: {x[:200]}" for x in ctx["worker_errors"][:3]]
    notes += [f"owner {o.idx} gave up on {o.gave_up} jobs" for o in t.owners if o.gave_up]
    notes += ctx.get("notes", [])
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    return "\n".join(lines), passed


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("workload")
    g.add_argument("--owners", type=int, default=50, help="owners, each a cookie session (default 50)")
    g.add_argument("--jobs-per-owner", type=int, default=10, help="jobs each owner submits (default 10)")
    g.add_argument("--min-duration", type=float, default=0.2, help="demo duration_seconds, low end (default 0.2)")
    g.add_argument("--max-duration", type=float, default=0.6, help="demo duration_seconds, high end (default 0.6)")
    g.add_argument("--min-steps", type=int, default=2)
    g.add_argument("--max-steps", type=int, default=4)
    g.add_argument("--retrying", type=int, default=20, help="jobs with fail_times=1: retried once (default 20)")
    g.add_argument("--failing", type=int, default=5, help="jobs that fail every attempt: end Failed (default 5)")
    g.add_argument("--cancel-queued", type=int, default=5, help="jobs cancelled right after the 202 (default 5)")
    g.add_argument("--cancel-running", type=int, default=5,
                   help="jobs cancelled once a socket sees them Processing (default 5)")
    g.add_argument("--cancel-duration", type=float, default=3.0, help="duration of the cancel-running jobs (s)")
    g.add_argument("--ramp", type=float, default=5.0, help="owners start spread over this many seconds")
    g.add_argument("--retry-after-only", action="store_true",
                   help="after a 429 wait the full Retry-After (default: Retry-After, or less if one of the "
                        "owner's own jobs reached a final state meanwhile)")
    g.add_argument("--no-idempotency-key", action="store_true",
                   help="POST without Idempotency-Key (then a POST lost to a transport error is still re-sent)")
    g.add_argument("--seed", type=int, default=1)
    g = p.add_argument_group("sockets")
    g.add_argument("--watchers-per-job", type=int, default=2, help="sockets per job (default 2)")
    g.add_argument("--late-fraction", type=float, default=0.5,
                   help="share of jobs whose last socket connects when the job is seen Processing (default 0.5)")
    g.add_argument("--foreign-sockets", type=int, default=50,
                   help="jobs probed by another owner's socket (must get job-not-found; default 50)")
    g.add_argument("--foreign-linger", type=float, default=0.5, help="s a foreign socket waits for more messages")
    g.add_argument("--connect-concurrency", type=int, default=50, help="handshakes in flight at once")
    g.add_argument("--connect-timeout", type=float, default=20.0)
    g.add_argument("--no-compression", action="store_true", help="do not offer permessage-deflate")
    g = p.add_argument_group("server")
    g.add_argument("--workers", type=int, default=2)
    # The production settings from gunicorn.conf.py (chosen by bench_notifications.py).
    g.add_argument("--threads", type=int, default=1100)
    g.add_argument("--worker-connections", type=int, default=1300)
    g.add_argument("--concurrency", type=int, default=2, help="celery prefork -c (default 2)")
    g.add_argument("--keepalive", type=int,
                   help="EXPERIMENT: gunicorn --keep-alive for the run (default: gunicorn.conf.py's, 15 s)")
    g.add_argument("--clock", action="store_true", help="run the clock process (the sweep) beside the worker")
    g.add_argument("--max-waiting", type=int, help="LONGRUN_MAX_WAITING_PER_OWNER for the run (default: unset, 1000)")
    g.add_argument("--max-per-minute", type=int, help="LONGRUN_MAX_JOBS_PER_MINUTE for the run (default: unset, 30)")
    g.add_argument("--port", type=int, help="port (default: first free in 5300-5399)")
    g = p.add_argument_group("bounds and output")
    g.add_argument("--final-timeout", type=float, default=120.0,
                   help="s to wait, after the last 202, for every socket's final state (default 120)")
    g.add_argument("--submit-timeout", type=float, default=200.0, help="s the submission phase may take (200)")
    g.add_argument("--check-budget", type=float, default=60.0,
                   help="s for the isolation checks after the run; checks left are reported as not done (60)")
    g.add_argument("--check-timeout", type=float, default=10.0, help="HTTP timeout of those checks (s)")
    g.add_argument("--out", help="also write the report (markdown) to this file")
    g.add_argument("--json", help="write raw figures as JSON to this file")
    g.add_argument("--keep-logs", action="store_true", help="keep the process logs directory")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:  # noqa: C901
    a = parse_args(argv)
    if a.port is not None and a.port not in PORTS:
        raise SystemExit("--port must be in 5300-5399")
    raise_nofile()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t_begin = time.monotonic()
    started = datetime.now().isoformat(timespec="seconds")
    load_start = loadavg()
    logdir = Path(tempfile.mkdtemp(prefix="load-test-"))
    procs = ProcSet(logdir, ROOT, preexec_fn=raise_nofile)
    port = a.port or free_port(PORTS)
    base = f"http://127.0.0.1:{port}"
    env = testing_env(f"{PG_HOST_URL}/{DB_NAME}", f"redis://127.0.0.1:6379/{REDIS_DB}")
    for name in ("LONGRUN_MAX_WAITING_PER_OWNER", "LONGRUN_MAX_JOBS_PER_MINUTE"):
        env.pop(name, None)
    if a.max_waiting is not None:
        env["LONGRUN_MAX_WAITING_PER_OWNER"] = str(a.max_waiting)
    if a.max_per_minute is not None:
        env["LONGRUN_MAX_JOBS_PER_MINUTE"] = str(a.max_per_minute)
    limits = (f"max unfinished {env.get('LONGRUN_MAX_WAITING_PER_OWNER', '1000 (default)')}, "
              f"per minute {env.get('LONGRUN_MAX_JOBS_PER_MINUTE', '30 (default)')}")
    print(f"load_test: {a.owners}×{a.jobs_per_owner} jobs, {a.watchers_per_job} sockets/job, port {port}, "
          f"logs {logdir}, load {load_start}", flush=True)
    test = LoadTest(a, base)
    pool = None
    stop_cancel = threading.Event()
    ok = False
    text = ""
    try:
        # ---- environment
        setup_database_and_redis(DB_NAME, env)
        worker_cmd = [sys.executable, "-m", "celery", "-A", "celery_worker", "worker", "-P", "prefork",
                      "-c", str(a.concurrency), "-n", "load-test@%h", "-l", "INFO", "--without-mingle",
                      "--without-gossip"]
        worker = procs.start("worker", worker_cmd, env)
        if a.clock:
            procs.start("clock", [sys.executable, "-m", "flask", "--app", "wsgi:app", "clock"], env)
        web = procs.start("web", [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "--bind",
                                 f"127.0.0.1:{port}", "--workers", str(a.workers), "--threads", str(a.threads),
                                 "--worker-connections", str(a.worker_connections),
                                 *(["--keep-alive", str(a.keepalive)] if a.keepalive is not None else []), "wsgi:app"],
                                 env)
        worker.wait_log(" ready.", 90)
        web.wait_http(f"{base}/reports", timeout=60, request_timeout=2, poll=0.2)
        print(f"  servers up [{time.monotonic() - t_begin:.0f} s]", flush=True)

        # ---- run
        pool = Pool({"connect_concurrency": a.connect_concurrency, "connect_timeout": a.connect_timeout,
                     "compression": not a.no_compression, "foreign_linger": a.foreign_linger},
                    test.on_processing, test.on_final)
        test.pool = pool
        cpu0 = {"web": web.cpu_seconds(), "worker": worker.cpu_seconds(), "pool": pool.cpu_seconds(),
                "self": time.process_time()}
        canceller = threading.Thread(target=test.run_canceller, args=(stop_cancel,), daemon=True)
        canceller.start()
        openers = [threading.Thread(target=test.open_session, args=(o,)) for o in test.owners]
        for th in openers:
            th.start()
        for th in openers:
            th.join()
        # Each owner's "spy" is the next owner's session: a real other owner asks for its jobs.
        threads = [threading.Thread(target=test.run_owner, args=(o, test.spy_for(o)), daemon=True)
                   for o in test.owners]
        for th in threads:
            th.start()
        deadline = time.monotonic() + a.submit_timeout
        for th in threads:
            th.join(max(0.0, deadline - time.monotonic()))
        alive = sum(th.is_alive() for th in threads)
        print(f"  submission done: {len(test.jobs)} jobs, {sum(o.throttled for o in test.owners)} × 429"
              f"{f', {alive} owners still submitting (timeout)' if alive else ''} "
              f"[{time.monotonic() - t_begin:.0f} s]", flush=True)
        pool_final = pool.ask(("wait_final", a.final_timeout), a.final_timeout + 60)
        print(f"  sockets settled={pool_final['settled']}: {pool_final['final']}/{pool_final['watchers']} saw the "
              f"final state, {pool_final['open']} open [{time.monotonic() - t_begin:.0f} s]", flush=True)
        shape = worker_shapes(web, port, set(pool_final.get("ports", [])))
        shape_text = " + ".join(f"{w['ws']} WebSockets ({w['sockets']} connections)/{w['threads']} threads/"
                                f"{w['rss_mb']:.0f} MB" for w in shape)
        # Each /notifications socket holds one of the worker's --threads for its lifetime (plus a reader thread):
        # a worker with --threads sockets has no thread left for anything it accepts next.
        saturated = ", ".join(f"pid {w['pid']}: {w['ws']} WebSockets = --threads {a.threads}"
                              for w in shape if w["ws"] >= a.threads)
        stop_cancel.set()
        final_checks = test.final_checks()
        cpu = (f"{web.cpu_seconds() - cpu0['web']:.0f} / {worker.cpu_seconds() - cpu0['worker']:.0f} / "
               f"{pool.cpu_seconds() - cpu0['pool']:.0f} / {time.process_time() - cpu0['self']:.0f}")
        res = pool.ask(("close",), 120)
        rows = db_rows(list(test.jobs))
        ctx = {
            "started": started, "load_start": load_start, "load_end": loadavg(), "limits": limits,
            "watchers": analyse_watchers(res["watchers"], rows, test.jobs), "foreign": analyse_foreign(res["foreign"]),
            "final_checks": final_checks, "rows": rows, "pool_final": pool_final, "shape_text": shape_text,
            "saturated": saturated,
            "cpu": cpu, "web_errors": log_problems(web), "worker_errors": log_problems(worker),
            "wall": time.monotonic() - t_begin,
            "notes": [f"{alive} owners did not finish submitting within --submit-timeout"] if alive else [],
        }
        text, passed = report(a, test, ctx)
        print(text, flush=True)
        if a.out:
            Path(a.out).write_text(text + "\n")
        if a.json:
            Path(a.json).write_text(json.dumps({
                "args": vars(a), "status": {str(k): v for k, v in test.stats.status.items()},
                "latency_ms": test.stats.latency, "watchers": {k: v for k, v in ctx["watchers"].items()
                                                               if not isinstance(v, Counter)},
                "jobs": {j: {"post": r.t_post, "accepted": r.t_accepted, "final": r.first_final, "plan": r.plan,
                             **rows.get(j, {})} for j, r in test.jobs.items()}}, default=str))
        ok = passed
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        stop_cancel.set()
        if pool is not None:
            pool.kill()
        procs.stop_all()
        if ok and not a.keep_logs:
            shutil.rmtree(logdir, ignore_errors=True)
        elif not ok:
            print(f"process logs kept in {logdir}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
