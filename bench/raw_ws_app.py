"""The raw baseline for bench_notifications.py: Redis pub/sub -> ONE listener -> N flask-sock sockets.

Same stack as Longrun's /notifications (gunicorn gthread, flask-sock, simple-websocket, redis-py), none of
its logic: no database, no owner, no snapshot, no per-socket re-serialisation. A socket opens
``/ws?job=<key>``, gets ``{"type": "hello"}`` once its queue is registered, then every payload published on
``RAW_CHANNEL`` whose ``job_id`` is that key, forwarded byte for byte.

    gunicorn -c ../gunicorn.conf.py --workers 1 --threads 1100 raw_ws_app:app    (cwd: bench/)
"""
from __future__ import annotations

import json
import os
import queue
import threading

import redis
from flask import Flask, request
from flask_sock import Sock

RAW_CHANNEL = "bench:raw-job-events"
QUEUE_SIZE = 1000

app = Flask(__name__)
app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": 25}  # as Longrun
sock = Sock(app)

_lock = threading.Lock()
_by_job: dict[str, set[queue.Queue]] = {}
_listener_pid: int | None = None
dropped = 0


def _listen() -> None:
    """The process's one subscriber: route each payload to the queues of its job."""
    global dropped
    client = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(RAW_CHANNEL)
    while True:
        raw = pubsub.get_message(timeout=1.0)
        if raw is None or raw.get("type") != "message":
            continue
        data = raw["data"].decode()
        job = json.loads(data)["job_id"]
        with _lock:
            targets = list(_by_job.get(job, ()))
        for q in targets:
            try:
                q.put_nowait(data)
            except queue.Full:
                dropped += 1


def _ensure_listener() -> None:
    global _listener_pid
    with _lock:
        if _listener_pid != os.getpid():  # started lazily after gunicorn's fork
            threading.Thread(target=_listen, name="raw-listener", daemon=True).start()
            _listener_pid = os.getpid()


@app.get("/health")
def health() -> str:
    """Readiness probe for the benchmark."""
    return "ok"


@sock.route("/ws")
def ws_route(ws) -> None:
    """Forward this job's payloads until the client leaves."""
    _ensure_listener()
    job = request.args.get("job", "")
    inbox: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
    with _lock:
        _by_job.setdefault(job, set()).add(inbox)
    try:
        ws.send(json.dumps({"type": "hello", "job": job}))
        while ws.connected:
            try:
                ws.send(inbox.get(timeout=1.0))
            except queue.Empty:
                continue
    finally:
        with _lock:
            _by_job.get(job, set()).discard(inbox)
