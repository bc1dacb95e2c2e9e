"""Checkpoint and resume: a long report killed mid-run goes on from its last checkpoint, not from zero."""
import os
import signal
import time
import uuid

import psycopg2
import pytest

from app.reports.context import InlineContext, encode_checkpoint
from tests.conftest import TEST_DATABASE_URL
from tests.helpers import submit, wait_for, wait_for_state

PARAMS = {"group_by": "product", "date_from": None, "date_to": None, "chunk_size": 100}


@pytest.mark.parametrize("state, error", [
    ({"ids": {1, 2}}, "must be JSON"),
    ({"at": float("nan")}, "must be JSON"),
    (object(), "must be JSON"),
    ({"blob": "x" * 200}, "limit is 100"),
])
def test_a_checkpoint_that_is_not_small_json_is_refused_with_the_reason(state, error):
    ctx = InlineContext(max_checkpoint_bytes=100)
    ctx.checkpoint({"next_id": 5})
    with pytest.raises(ValueError, match=error):
        ctx.checkpoint(state)
    assert ctx.checkpoints == [{"next_id": 5}]  # the last good one is what a resume gets


def test_a_checkpoint_comes_back_as_its_json_round_trip():
    assert encode_checkpoint({"t": (1, 2), "n": None}, 1000) == {"t": [1, 2], "n": None}


def _seed(app, count: int, seed: int) -> None:
    result = app.test_cli_runner().invoke(args=["sales", "seed", str(count), "--replace", "--seed", str(seed)])
    assert result.exit_code == 0, result.output


def _inline_summary(app, resume_from=None) -> InlineContext:
    from app.extensions import db
    from app.reports import get_report

    with app.app_context(), db.engine.connect() as conn:
        ctx = InlineContext(connection=conn, resume_from=resume_from)
        get_report("sales_summary").func(ctx, **PARAMS)
    return ctx


def test_sales_summary_resumed_from_any_checkpoint_writes_the_same_csv(app):
    _seed(app, 3000, 5)
    whole = _inline_summary(app)
    assert len(whole.checkpoints) == 30
    for saved in (whole.checkpoints[0], whole.checkpoints[17], whole.checkpoints[-1]):
        resumed = _inline_summary(app, resume_from=saved)
        assert resumed.result.content == whole.result.content
        # Progress goes on from the checkpoint: it never drops below what the earlier attempt had done.
        assert min(done for done, _, _ in resumed.progress_log) == saved["done"]
        assert resumed.logs and resumed.logs[0].startswith(f"Resuming at order id {saved['next_id']:,}")
    # A cursor from something else (an older version, a hand edit) is ignored: the report starts over.
    fresh = _inline_summary(app, resume_from={"next_id": "x"})
    assert fresh.result.content == whole.result.content and fresh.progress_log[0][0] == 0 and not fresh.logs


def _row(cur, job_id: str):
    cur.execute("SELECT progress, progress_done, checkpoint, worker FROM jobs WHERE id = %s", (job_id,))
    return cur.fetchone()


def test_a_worker_killed_at_60_percent_resumes_from_its_checkpoint(app, client):
    # 600 chunks: long enough to stop it near 60 % (the next progress write waits on the row lock taken below).
    _seed(app, 60_000, 9)
    job = submit(client, report="sales_summary", **{k: v for k, v in PARAMS.items() if v is not None})
    conn = psycopg2.connect(TEST_DATABASE_URL.replace("+psycopg2", ""))
    try:
        with conn.cursor() as cur:
            wait_for(lambda: conn.rollback() or (_row(cur, job["id"])[0] or 0) >= 20, timeout=60, interval=0.01,
                     what="the report to pass 20 %")
            # Hold the job's row: the report's next progress write (and heartbeat) waits, so what is stored is
            # exactly what the next attempt finds. Let it go one write at a time until it passes 55 %: a loaded
            # machine cannot make the test miss the window between 55 % and the end.
            while True:
                cur.execute("SELECT 1 FROM jobs WHERE id = %s FOR UPDATE", (job["id"],))
                progress, done, saved, worker = _row(cur, job["id"])
                if progress >= 55:
                    break
                conn.rollback()
                time.sleep(0.005)
            assert 55 <= progress < 100 and saved["done"] >= done, (progress, saved)
            os.kill(int(worker.rsplit(":", 1)[1]), signal.SIGKILL)
        conn.rollback()
    finally:
        conn.close()

    finished = wait_for_state(client, job["id"], {"Succeeded", "Failed"}, timeout=60)
    assert finished["state"] == "Succeeded" and finished["attempts"] == 2, finished
    events = client.get(f"/jobs/{job['id']}/events").get_json()["items"]
    second = [e for e in events if e["attempt"] == 2]
    assert any(e["message"].startswith(f"Resuming at order id {saved['next_id']:,}") for e in second), second[:3]
    # The second attempt's progress never drops below where the first one stopped, and its own samples go on
    # from the checkpoint it resumed from.
    assert min(e["progress"] for e in second) >= round(progress, 2) - 0.01, second[:3]
    samples = [e["progress"] for e in second if e["kind"] == "progress"]
    assert samples and min(samples) >= round(100 * saved["done"] / 60_000, 2) - 0.01, second[:3]

    body = client.get(finished["links"]["result"]).get_data()
    assert body == _inline_summary(app).result.content  # byte-identical to an uninterrupted run
    from app.extensions import db
    from app.jobs.models import Job

    with app.app_context():
        assert db.session.get(Job, uuid.UUID(job["id"])).checkpoint is None  # nothing left to resume
