"""Schedules fired by the real clock process, their jobs run by the real worker: on time, linked to their slot,
and after downtime as the misfire policy says (skip, or one catch-up run — never a burst)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg2

from tests.conftest import TEST_DATABASE_URL
from tests.helpers import wait_for, wait_for_state

DEMO = {"report": "demo", "params": {"duration_seconds": 0.1, "steps": 1}}


def sql(statement: str, *args) -> list[tuple]:
    with psycopg2.connect(TEST_DATABASE_URL) as conn, conn.cursor() as cur:
        cur.execute(statement, args)
        return cur.fetchall() if cur.description else []


def runs(client, schedule_id: str) -> list[dict]:
    return client.get(f"/schedules/{schedule_id}").get_json()["runs"]


def test_a_due_slot_fires_within_a_second_and_its_job_runs(client):
    body = client.post("/schedules", json={**DEMO, "cron": "* * * * *", "timezone": "UTC"}).get_json()
    # Bring its next slot close instead of waiting for the next minute (the slot need not be a cron slot here).
    slot = (datetime.now(timezone.utc) + timedelta(seconds=1.5)).replace(microsecond=0)
    sql("UPDATE schedules SET next_fire_at = %s WHERE id = %s", slot, body["id"])
    fired = wait_for(lambda: runs(client, body["id"]), timeout=20, what="the schedule's first run")
    assert len(fired) == 1 and datetime.fromisoformat(fired[0]["scheduled_for"]) == slot
    job = wait_for_state(client, fired[0]["job_id"], {"Succeeded", "Failed"}, timeout=30)
    assert job["state"] == "Succeeded" and job["schedule_id"] == body["id"] and job["priority"] == 3
    lag = (datetime.fromisoformat(job["created_at"]) - slot).total_seconds()
    assert 0 <= lag < 1.0, lag
    after = client.get(f"/schedules/{body['id']}").get_json()
    following = datetime.fromisoformat(after["next_fire_at"])
    assert following > slot and following.second == 0  # back on the cron: the next whole minute
    assert after["last_run"]["state"] == "Succeeded" and after["last_error"] is None


def test_a_real_minute_slot_fires_on_time(client):
    body = client.post("/schedules", json={**DEMO, "cron": "* * * * *", "timezone": "Asia/Kolkata"}).get_json()
    slot = datetime.fromisoformat(body["next_fire_at"])
    fired = wait_for(lambda: runs(client, body["id"]), timeout=90, interval=0.2, what="the minute's run")
    assert datetime.fromisoformat(fired[0]["scheduled_for"]) == slot
    lag = (datetime.fromisoformat(fired[0]["created_at"]) - slot).total_seconds()
    assert 0 <= lag < 1.0, lag
    client.post(f"/schedules/{body['id']}/pause", json={})


def _after_downtime(client, misfire: str) -> tuple[dict, datetime]:
    """An hourly schedule whose clock 'was down' for 3 h: its next slot is 3 h old when it is enabled again."""
    body = client.post("/schedules", json={**DEMO, "cron": "0 * * * *", "timezone": "UTC", "misfire": misfire,
                                           "enabled": False}).get_json()
    now = datetime.now(timezone.utc)
    if now.minute == 0 and now.second < 90:  # the latest slot would still be on time (grace 60 s): wait it out
        import time

        time.sleep(90 - now.second)
        now = datetime.now(timezone.utc)
    first_missed = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    sql("UPDATE schedules SET next_fire_at = %s, enabled = true WHERE id = %s", first_missed, body["id"])
    moved = wait_for(lambda: (s := client.get(f"/schedules/{body['id']}").get_json())["next_fire_at"] and
                     datetime.fromisoformat(s["next_fire_at"]) > now and s, timeout=20, what="the clock to move it on")
    return moved, now


def test_skip_runs_none_of_the_missed_slots(client):
    schedule, now = _after_downtime(client, "skip")
    assert runs(client, schedule["id"]) == []
    assert "skipped them" in schedule["last_error"]
    assert datetime.fromisoformat(schedule["next_fire_at"]) == now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def test_run_once_runs_the_latest_missed_slot_alone(client):
    schedule, now = _after_downtime(client, "run_once")
    fired = runs(client, schedule["id"])
    assert [datetime.fromisoformat(r["scheduled_for"]) for r in fired] == [now.replace(minute=0, second=0, microsecond=0)]
    assert wait_for_state(client, fired[0]["job_id"], {"Succeeded"}, timeout=30)["schedule_id"] == schedule["id"]
