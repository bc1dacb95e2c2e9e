"""Many processes and a Redis restart: every subscriber still ends with every job's final state."""
import json
import threading
import time

import pytest

from tests.conftest import RedisServer, WebServer, WorkerProcess, isolated_database
from tests.helpers import wait_for
from tests.realtime.wsclient import Owner, is_final_event, live_events

pytestmark = pytest.mark.slow  # starts web processes


class Collector(threading.Thread):
    """Reads one socket in the background until told to stop."""

    def __init__(self, ws) -> None:
        super().__init__(daemon=True)
        self.ws = ws
        self.messages: list[dict] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        self.ws.settimeout(0.5)
        while not self.stopped.is_set():
            try:
                self.messages.append(json.loads(self.ws.recv()))
            except Exception as exc:
                if "timed out" not in str(exc):
                    return

    def finished(self, job_id: str) -> bool:
        return any(is_final_event(job_id)(m) for m in list(self.messages))

    def close(self) -> None:
        self.stopped.set()
        self.join(5)
        self.ws.close()


@pytest.mark.slow
def test_two_web_and_two_worker_processes_deliver_every_event(app, worker):
    webs = [WebServer("scale-a"), WebServer("scale-b")]
    second = WorkerProcess("second", {}, concurrency=1, clock=False)
    collectors: list[tuple[Owner, Collector]] = []
    try:
        owners = [Owner(webs[i % 2].url) for i in range(3)]
        for owner in owners:
            for web in webs:  # each owner watches from both web processes
                collectors.append((owner, Collector(owner.connect("all=1", base=web.url))))
        for _, collector in collectors:
            collector.start()
        time.sleep(0.3)
        jobs = {id(owner): [owner.submit(duration_seconds=0.4, steps=4)["id"] for _ in range(2)] for owner in owners}
        for owner, collector in collectors:
            for job_id in jobs[id(owner)]:
                wait_for(lambda c=collector, j=job_id: c.finished(j), timeout=40, what=f"final event of {job_id}")
        for owner, collector in collectors:
            mine = set(jobs[id(owner)])
            for job_id in mine:
                seqs = [e["seq"] for e in live_events(collector.messages, job_id)]
                assert seqs == list(range(1, seqs[-1] + 1)), (job_id, seqs)
            foreign = {m.get("job_id") or m.get("job", {}).get("id") for m in collector.messages} - mine
            assert not foreign & {j for js in jobs.values() for j in js}
    finally:
        for _, collector in collectors:
            collector.close()
        second.stop()
        for web in webs:
            web.stop()


@pytest.mark.slow
def test_redis_restart_mid_job_recovers_listener_and_delivers_final_state(app):
    redis_server = RedisServer()
    env = {"REDIS_URL": redis_server.url, "DATABASE_URL": isolated_database("redis_restart")}
    web = WebServer("redis-restart", env)
    worker = WorkerProcess("redis-restart", env, concurrency=2, clock=True)
    try:
        owner = Owner(web.url)
        collector = Collector(owner.connect("all=1"))
        collector.start()
        ids = [owner.submit(duration_seconds=3, steps=6)["id"] for _ in range(3)]
        wait_for(lambda: sum(owner.job(j)["state"] == "Processing" for j in ids) == 2, what="two jobs running")
        redis_server.stop()
        time.sleep(1.0)
        redis_server.start()

        wait_for(lambda: all(collector.finished(j) for j in ids), timeout=90, interval=0.5,
                 what="final state of every job on the socket")
        assert worker.proc.poll() is None  # the same worker served on: nothing restarted it
        states = {j: owner.job(j)["state"] for j in ids}
        assert set(states.values()) == {"Succeeded"}, states
        collector.close()
    finally:
        worker.stop()
        web.stop()
        redis_server.stop()


def test_a_full_process_refuses_more_sockets_but_keeps_serving_pages(app):
    import websocket

    web = WebServer("socket-cap", {"LONGRUN_MAX_SOCKETS_PER_PROCESS": "2"}, threads=8)
    try:
        owner = Owner(web.url)
        held = [owner.connect() for _ in range(2)]
        time.sleep(0.3)
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            owner.connect()
        assert refused.value.status_code == 503
        assert owner.http.get(web.url + "/jobs", timeout=5).status_code == 200
        for ws in held:
            ws.close()
        wait_for(lambda: _connects(owner), timeout=10, what="a slot to free up")
    finally:
        web.stop()


def _connects(owner: Owner) -> bool:
    try:
        owner.connect().close()
        return True
    except Exception:
        return False
