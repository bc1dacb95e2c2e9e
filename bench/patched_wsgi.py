"""EXPERIMENT ONLY (bench_notifications.py --patch): Longrun with its notification loop changed at run time.

Not a fix to ship: it monkeypatches ``app.realtime.session`` to measure what a change would buy.
``LONGRUN_BENCH_PATCH`` selects:

  slow   the session waits 1 s (not 0.2 s) on its inbox per loop turn
  event  no polling: simple-websocket's reader thread, which sets ``ws.event`` on every client message and on
         close, also drops a wake-up marker in the socket's inbox; the handler then blocks on the inbox for up
         to QUIET_RESYNC_SECONDS. Each event is also serialised once per process instead of once per socket.

    gunicorn -c gunicorn.conf.py --pythonpath bench patched_wsgi:app
"""
from __future__ import annotations

import json
import os
import queue
from dataclasses import asdict

from app.realtime import session as s
from wsgi import app  # noqa: F401 - what gunicorn serves

MODE = os.environ.get("LONGRUN_BENCH_PATCH", "")
WAKE = object()


class _WakeEvent:
    """Stands in for simple-websocket's ``threading.Event``: set() also wakes the handler's inbox."""

    def __init__(self, event, inbox: queue.Queue) -> None:  # noqa: ANN001
        self._event, self._inbox = event, inbox

    def set(self) -> None:
        self._event.set()
        try:
            self._inbox.put_nowait(WAKE)
        except queue.Full:
            pass

    def __getattr__(self, name: str):  # noqa: ANN204 - wait, clear, is_set
        return getattr(self._event, name)


def _pump_with(timeout: float):  # noqa: ANN202
    def _pump_inbox(self) -> None:  # noqa: ANN001
        try:
            item = self.subscriber.inbox.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            if item is s.RESYNC:
                self.resync()
            elif item is not WAKE:
                self.deliver(item)
            try:
                item = self.subscriber.inbox.get_nowait()
            except queue.Empty:
                return
    return _pump_inbox


if MODE == "slow":
    s.NotificationSession._pump_inbox = _pump_with(1.0)

elif MODE == "event":
    _run, _send_event = s.NotificationSession.run, s.NotificationSession.send_event

    def run(self, job_ids, after_seq, all_jobs) -> None:  # noqa: ANN001
        self.ws.event = _WakeEvent(self.ws.event, self.subscriber.inbox)
        return _run(self, job_ids, after_seq, all_jobs)

    def send_event(self, message, replay: bool = False) -> None:  # noqa: ANN001
        if self.fmt != "json" or replay:
            return _send_event(self, message, replay)
        wire = message.__dict__.get("_bench_wire")
        if wire is None:  # two threads may both build it: harmless
            body = asdict(message)
            body.pop("owner", None)
            body.update(type="event", replay=False)
            wire = json.dumps(body)
            object.__setattr__(message, "_bench_wire", wire)
        self._send(wire)

    from app.realtime import hub as _hub_module

    _begin_shutdown = _hub_module.begin_shutdown

    def begin_shutdown() -> None:
        """The handlers no longer poll ``hub.closing``: wake each one so it closes with 1012 at once."""
        _begin_shutdown()
        hub = _hub_module._hub if _hub_module._hub_pid == os.getpid() else None
        if hub is not None:
            with hub._lock:
                subscribers = list(hub._subscribers)
            for subscriber in subscribers:
                subscriber.offer(WAKE)

    s.NotificationSession.run = run
    s.NotificationSession.send_event = send_event
    s.NotificationSession._pump_inbox = _pump_with(s.QUIET_RESYNC_SECONDS)
    _hub_module.begin_shutdown = begin_shutdown

elif MODE:
    raise SystemExit(f"unknown LONGRUN_BENCH_PATCH {MODE!r}")
