"""/metrics after jobs ran, /readyz naming what is down, purge with roll-up and 410 Gone."""
import re
from datetime import timedelta

import sqlalchemy as sa

from app import create_app
from app.extensions import db
from app.jobs.models import Job, utcnow
from app.retention.models import JobDailyCount
from tests.helpers import submit, wait_for_state


def _metric(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" ([0-9.e+]+)"
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def test_metrics_after_jobs_ran(client):
    before = client.get("/metrics").get_data(as_text=True)
    ids = [submit(client, duration_seconds=0.1, steps=1)["id"] for _ in range(2)]
    failing = submit(client, duration_seconds=0, steps=1, fail_times=5)["id"]
    for job_id in ids:
        wait_for_state(client, job_id, "Succeeded")
    wait_for_state(client, failing, "Failed", timeout=30)
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    ok = _metric(text, "longrun_jobs_finished_total", report="demo", state="Succeeded")
    assert ok - _metric(before, "longrun_jobs_finished_total", report="demo", state="Succeeded") >= 2
    assert _metric(text, "longrun_jobs_finished_total", report="demo", state="Failed") >= 1
    assert _metric(text, "longrun_job_attempts_total", report="demo") >= ok + 3
    assert 'longrun_job_duration_seconds_bucket{le="+Inf",report="demo"}' in text
    assert "longrun_job_queue_wait_seconds_count" in text
    assert 'longrun_jobs{state="Processing"}' in text and "longrun_queue_length" in text
    assert "longrun_notification_sockets" in text and "longrun_redis_up 1.0" in text


def test_metrics_and_health_access(client):
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "198.51.100.4"}).status_code == 401
    assert client.get("/healthz", environ_base={"REMOTE_ADDR": "198.51.100.4"}).get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_names_redis_when_it_is_unreachable(app):
    broken = create_app({"REDIS_URL": "redis://127.0.0.1:1/0"})
    response = broken.test_client().get("/readyz")
    assert response.status_code == 503 and response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["checks"]["database"] == "ok" and body["checks"]["redis"].startswith("unreachable")
    assert "redis" in body["detail"]


def test_purge_rolls_up_then_answers_410(app, client):
    keep = submit(client, duration_seconds=0, steps=1)["id"]
    old = submit(client, duration_seconds=0, steps=1)["id"]
    for job_id in (keep, old):
        wait_for_state(client, job_id, "Succeeded")
    metrics_before = client.get("/metrics").get_data(as_text=True)
    finished_before = _metric(metrics_before, "longrun_jobs_finished_total", report="demo", state="Succeeded")
    with app.app_context():
        old_day = (utcnow() - timedelta(days=3)).replace(hour=12)
        db.session.execute(sa.update(Job).where(Job.id == sa.cast(old, sa.Uuid))
                           .values(finished_at=old_day, started_at=old_day - timedelta(seconds=2),
                                   created_at=old_day - timedelta(seconds=3)))
        db.session.commit()
        rolled_before = db.session.execute(
            sa.select(sa.func.coalesce(sa.func.sum(JobDailyCount.jobs), 0)).where(JobDailyCount.day == old_day.date())
        ).scalar_one()
    # The throughput chart counts each job on the day it finished (today), from buckets kept at write time.
    today = utcnow().strftime("%Y-%m-%d")
    chart_before = _day_on_chart(client, today)
    assert chart_before >= 2
    dry = app.test_cli_runner().invoke(args=["jobs", "purge", "--dry-run"])
    assert dry.exit_code == 0 and "would purge" in dry.output
    assert client.get(f"/jobs/{old}").status_code == 200  # a dry run changes nothing
    result = app.test_cli_runner().invoke(args=["jobs", "purge"])
    assert result.exit_code == 0 and "purged" in result.output, result.output

    gone = client.get(f"/jobs/{old}")
    assert gone.status_code == 410 and gone.mimetype == "application/problem+json"
    assert "retention" in gone.get_json()["detail"]
    assert client.get(f"/jobs/{old}/result").status_code == 410
    assert client.get(f"/jobs/{keep}").status_code == 200  # recent jobs stay
    # Another owner still sees a plain 404: a tombstone reveals nothing either.
    assert app.test_client().get(f"/jobs/{old}").status_code == 404
    with app.app_context():
        rolled_after = db.session.execute(
            sa.select(sa.func.sum(JobDailyCount.jobs)).where(JobDailyCount.day == old_day.date())
        ).scalar_one()
    assert rolled_after == rolled_before + 1
    # Counters stay monotonic across the purge, and the daily chart still counts the purged job.
    metrics_after = client.get("/metrics").get_data(as_text=True)
    assert _metric(metrics_after, "longrun_jobs_finished_total", report="demo", state="Succeeded") >= finished_before
    assert _day_on_chart(client, today) >= chart_before


def _day_on_chart(client, day: str) -> int:
    """Succeeded jobs the dashboard's per-day chart shows for ``day`` (YYYY-MM-DD)."""
    page = client.get("/dashboard/", headers={"Accept": "text/html"}).get_data(as_text=True)
    shown = re.search(re.escape(day) + r": (\d+) succeeded", page)
    assert shown, "the day is not on the chart"
    return int(shown.group(1))
