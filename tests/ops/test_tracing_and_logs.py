"""One trace from the HTTP request to the task's SQL; JSON log lines carry trace and job ids."""
import json

import pytest
import requests

from tests.conftest import ARTIFACTS, WebServer, WorkerProcess, isolated_database
from tests.helpers import wait_for

pytestmark = pytest.mark.slow  # starts its own worker and web processes


def _spans(directory) -> list[dict]:
    out = []
    for path in directory.glob("spans-*.jsonl"):
        out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def _has_slots(database_url: str) -> bool:
    import psycopg2

    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM worker_slots")
        return cur.fetchone()[0] > 0


def test_one_trace_covers_request_publish_task_and_sql(app, tmp_path):
    spans_dir = tmp_path / "spans"
    # A deployment of its own: any of its processes may hand the job to a worker (fair dispatch), and each
    # of them must continue the request's trace.
    env = {"LONGRUN_OTEL_FILE": str(spans_dir), "LONGRUN_LOG_FORMAT": "json",
           "DATABASE_URL": isolated_database("traced")}
    web = WebServer("traced", env)
    worker = WorkerProcess("traced", env, concurrency=1)
    try:
        # Once the worker's slots are known the request itself hands the job out (an idle deployment).
        wait_for(lambda: _has_slots(env["DATABASE_URL"]), timeout=10, what="the worker's slots")
        http = requests.Session()
        created = http.post(web.url + "/reports/v2", json={"params": {"duration_seconds": 0.2, "steps": 2}}, timeout=10)
        assert created.status_code == 202
        job = created.json()
        trace_id = job["trace_id"]
        assert trace_id and len(trace_id) == 32
        wait_for(lambda: http.get(f"{web.url}/jobs/{job['id']}", timeout=5).json()["final"], what="job to finish")

        def complete():
            mine = [s for s in _spans(spans_dir) if s["trace_id"] == trace_id]
            names = {s["name"] for s in mine}
            has_sql = any(s["attributes"].get("db.system") == "postgresql" for s in mine if s["service"] == "longrun-worker")
            ok = (any(s["kind"] == "SERVER" and s["service"] == "longrun-web" for s in mine)
                  and any(n.startswith("apply_async/") for n in names)
                  and any(n.startswith("run/") for n in names) and has_sql)
            return mine if ok else None

        mine = wait_for(complete, timeout=20, what="the job's spans")
        http_span = next(s for s in mine if s["kind"] == "SERVER")
        publish = next(s for s in mine if s["name"].startswith("apply_async/"))
        run = next(s for s in mine if s["name"].startswith("run/"))
        assert http_span["attributes"].get("http.route") == "/reports/v2"
        # Usually the request hands the job out itself; if the clock's tick won the race, it continued the trace.
        assert publish["service"] in {"longrun-web", "longrun-clock"} and run["service"] == "longrun-worker"
        assert publish["parent_id"] is not None and run["parent_id"] == publish["span_id"]
        sql = [s for s in mine if s["service"] == "longrun-worker" and s["attributes"].get("db.system") == "postgresql"]
        assert any(s["parent_id"] == run["span_id"] for s in sql), "no SQL span directly under the task run"
        assert any("jobs" in json.dumps(s["attributes"]) for s in sql)
        # The socket route is never traced.
        assert not [s for s in _spans(spans_dir) if "/notifications" in json.dumps(s["attributes"])]
        # The job page shows the trace id too.
        page = http.get(f"{web.url}/jobs/{job['id']}", headers={"Accept": "text/html"}, timeout=5).text
        assert trace_id in page
    finally:
        worker.stop()
        web.stop()
    lines = [json.loads(line) for line in (ARTIFACTS / "worker-traced.log").read_text().splitlines()
             if line.startswith("{")]
    stamped = [line for line in lines if line.get("job_id") == job["id"]]
    assert stamped, "no JSON log line carried the job id"
    assert all(line["trace_id"] == trace_id for line in stamped)
