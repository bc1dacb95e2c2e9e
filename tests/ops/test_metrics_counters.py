"""/metrics from write-time counters: no total ever falls (retry, delete, bulk delete, purge), any process agrees,
and neither a scrape nor the dashboard counts read the jobs table."""
from __future__ import annotations

import re
import time
from datetime import timedelta

import requests
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from app.extensions import db
from app.jobs.models import Job, utcnow
from tests.helpers import submit, wait_for, wait_for_state

HTML = {"Accept": "text/html"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
MONOTONIC = ("_total", "_bucket", "_count", "_sum")


def samples(text: str) -> Samples:
    """Every sample of a Prometheus text page, keyed by name and sorted labels."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)
    return samples(response.get_data(as_text=True))


def assert_never_fell(before: Samples, after: Samples, step: str) -> None:
    fell = {key: (v, after.get(key)) for key, v in before.items()
            if key[0].endswith(MONOTONIC) and (key not in after or after[key] < v)}
    assert not fell, f"counters fell across {step}: {fell}"


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def totals_grew(before: Samples, after: Samples) -> dict[str, float]:
    """How much each demo total grew (histograms by their _count)."""
    names = {"created": ("longrun_jobs_created_total", {}), "started": ("longrun_jobs_started_total", {}),
             "attempts": ("longrun_job_attempts_total", {}),
             "succeeded": ("longrun_jobs_finished_total", {"state": "Succeeded"}),
             "failed": ("longrun_jobs_finished_total", {"state": "Failed"}),
             "durations": ("longrun_job_duration_seconds_count", {}),
             "waits": ("longrun_job_queue_wait_seconds_count", {})}
    return {k: grew(before, after, name, report="demo", **labels) for k, (name, labels) in names.items()}


def jobs_gauge(scraped: Samples, state: str) -> float:
    return scraped[("longrun_jobs", (("state", state),))]


def wait_idle(app, timeout: float = 90) -> None:
    """Until no job waits or runs, so that only this test's jobs move the counters."""
    def idle() -> bool:
        with app.app_context():
            busy = db.session.execute(sa.select(sa.func.count()).select_from(Job)
                                      .where(Job.state.in_(["Enqueued", "Processing", "Retrying"]))).scalar_one()
            db.session.remove()
        return busy == 0

    wait_for(idle, timeout, 0.2, "no job waiting or running")


def csrf(client) -> dict[str, str]:
    page = client.get("/", headers=HTML).get_data(as_text=True)
    return {"X-CSRFToken": re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)}


def owner_of(client) -> str:
    with client.session_transaction() as session:
        return session["owner"]


def test_no_total_falls_across_retry_delete_bulk_delete_and_purge(app, client, other_client):
    operator = app.test_client()  # a local request: the operator
    token = csrf(operator)
    wait_idle(app)
    s0 = scrape(operator)

    ok, extra1, extra2 = (submit(client, duration_seconds=0, steps=1)["id"] for _ in range(3))
    bad = submit(client, duration_seconds=0, steps=1, fail_times=5)["id"]
    old = submit(other_client, duration_seconds=0, steps=1)["id"]
    for job_id in (ok, extra1, extra2):
        wait_for_state(client, job_id, "Succeeded")
    wait_for_state(other_client, old, "Succeeded")
    first_failure = wait_for_state(client, bad, "Failed", timeout=30)
    s1 = scrape(operator)
    assert_never_fell(s0, s1, "five jobs running")
    assert totals_grew(s0, s1) == {"created": 5, "started": 5, "attempts": 7, "succeeded": 4, "failed": 1,
                                   "durations": 5, "waits": 5}

    # Retry: Failed becomes Enqueued and attempts restart from 0 (the old scrape lost 1 failure and 3 attempts here).
    assert client.post(f"/jobs/{bad}/retry", json={}).status_code == 202
    s2 = scrape(operator)
    assert_never_fell(s1, s2, "a retry")
    wait_for(lambda: (j := client.get(f"/jobs/{bad}").get_json())["state"] == "Failed"
             and j["finished_at"] != first_failure["finished_at"], 30, what="the retried job to fail again")
    s3 = scrape(operator)
    assert_never_fell(s2, s3, "the retried job failing again")
    assert totals_grew(s1, s3) == {"created": 0, "started": 0, "attempts": 3, "succeeded": 0, "failed": 1,
                                   "durations": 1, "waits": 0}

    # Operator delete, then bulk delete: the jobs leave the state gauge, never a total.
    assert operator.post(f"/dashboard/jobs/{ok}/delete", headers=token).status_code == 303
    s4 = scrape(operator)
    assert_never_fell(s3, s4, "an operator delete")
    assert set(totals_grew(s3, s4).values()) == {0} and jobs_gauge(s4, "Succeeded") == jobs_gauge(s3, "Succeeded") - 1
    bulk = operator.post("/dashboard/bulk", headers=token,
                         data={"action": "delete", "owner": owner_of(client), "state": "Succeeded"})
    assert "Delete: 2 job(s) done." in bulk.get_data(as_text=True)
    s5 = scrape(operator)
    assert_never_fell(s4, s5, "a bulk delete")
    assert set(totals_grew(s4, s5).values()) == {0} and jobs_gauge(s5, "Succeeded") == jobs_gauge(s4, "Succeeded") - 2

    # Purge (retention): the same.
    with app.app_context():
        long_ago = utcnow() - timedelta(days=30)
        db.session.execute(sa.update(Job).where(Job.id == sa.cast(old, sa.Uuid)).values(finished_at=long_ago))
        db.session.commit()
    purged = app.test_cli_runner().invoke(args=["jobs", "purge"])
    assert purged.exit_code == 0 and "purged 1 job(s)" in purged.output, purged.output
    s6 = scrape(operator)
    assert_never_fell(s5, s6, "a purge")
    assert set(totals_grew(s5, s6).values()) == {0} and jobs_gauge(s6, "Succeeded") == jobs_gauge(s5, "Succeeded") - 1


def test_every_process_serves_the_same_counters(app, client, web):
    """The in-process app and the gunicorn server (another process) answer the same job metrics."""
    job_id = submit(client, duration_seconds=0, steps=1)["id"]
    wait_for_state(client, job_id, "Succeeded")
    wait_idle(app)
    jobs_only = lambda s: {k: v for k, v in s.items() if k[0].startswith(("longrun_job", "longrun_jobs"))}  # noqa: E731
    here = jobs_only(scrape(app.test_client()))
    for _ in range(3):
        there = requests.get(web.url + "/metrics", timeout=10)
        assert there.status_code == 200
        assert jobs_only(samples(there.text)) == here
        time.sleep(0.1)


def test_scrape_and_dashboard_counts_never_read_the_jobs_table(app, client):
    """Cost independent of history: a scrape reads only job_counters; the counts read jobs only for stalled ones."""
    job_id = submit(client, duration_seconds=0, steps=1)["id"]
    wait_for_state(client, job_id, "Succeeded")
    operator = app.test_client()
    seen: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        seen.append(" ".join(statement.split()))

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        assert operator.get("/metrics").status_code == 200
        scrape_sql, seen[:] = list(seen), []
        counts = operator.get("/dashboard/counts")
        counts_sql = list(seen)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert any("FROM job_counters" in s for s in scrape_sql), scrape_sql
    assert not [s for s in scrape_sql if re.search(r"\b(jobs|job_events|job_daily_counts)\b", s)], scrape_sql
    on_jobs = [s for s in counts_sql if re.search(r"\bFROM jobs\b", s)]
    assert len(on_jobs) == 1 and "jobs.state = " in on_jobs[0] and "heartbeat_at" in on_jobs[0], counts_sql
    page = counts.get_data(as_text=True)
    with app.app_context():
        succeeded = db.session.execute(sa.select(sa.func.count()).select_from(Job)
                                       .where(Job.state == "Succeeded")).scalar_one()
    assert re.search(rf'data-state="Succeeded">{succeeded}<', page), page
    assert re.search(r'data-report="demo" data-state="Succeeded">\d+<', page), page
