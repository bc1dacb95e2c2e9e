"""Reads that stay bounded however long the history (issue 11), on a real PostgreSQL seeded with generate_series.

Each plan is asked of PostgreSQL for the very statements the app ran (captured as they execute), after ANALYZE
on a seed whose shape is realistic: many owners and one heavy one, two reports, a few failures, searchable text.
"""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from app import create_app
from app.config import normalize_database_url
from app.extensions import db
from app.jobs import counters, listing, throughput
from app.jobs.cursor import Cursor
from app.jobs.listing import JobFilter
from app.jobs.models import Job, utcnow
from app.jobs.states import JobState
from app.owners.identity import hash_token
from app.owners.models import ApiToken
from tests.conftest import isolated_database

pytestmark = pytest.mark.slow  # seeds 50,000 jobs

# A quarter of the jobs belong to "heavy": 10,000, the most an exact total counts. Failed: i % 20 == 8 (all
# heavy's); sales_summary: i % 50 == 7 (odd, never heavy's, never failed).
JOBS = 40_000
HEAVY = "user:heavy"  # the owner an API token for "heavy" acts as
NEEDLE = "needle-common"  # in the error of 10,001 extra jobs: one more than an exact count reaches
RARE = "rare-marker-q7"  # in the parameters of 3 jobs

SEED = f"""
INSERT INTO jobs (id, owner, report, params, state, api_version, progress, attempts, max_attempts, cancel_requested,
                  last_seq, created_at, updated_at, finished_at, error_type, error_message)
SELECT md5('h5-' || i)::uuid,
       CASE WHEN i % 4 = 0 THEN '{HEAVY}' ELSE 'owner-' || (i % 300) END,
       CASE WHEN i % 50 = 7 THEN 'sales_summary' ELSE 'demo' END,
       CASE WHEN i IN (111, 22222, 33333) THEN json_build_object('note', '{RARE}')
            ELSE json_build_object('duration_seconds', i % 600, 'steps', 1 + i % 50) END,
       CASE WHEN i % 20 = 8 THEN 'Failed' ELSE 'Succeeded' END, 'v2', 100, 1, 3, false, 3,
       now() - interval '20 days' + interval '20 days' * i / {JOBS}, now(), now(),
       CASE WHEN i % 20 = 8 THEN 'ValueError' END, CASE WHEN i % 20 = 8 THEN 'bad row ' || i END
FROM generate_series(1, {JOBS}) AS i;
INSERT INTO jobs (id, owner, report, params, state, api_version, progress, attempts, max_attempts, cancel_requested,
                  last_seq, created_at, updated_at, finished_at, error_type, error_message)
SELECT md5('needle-' || i)::uuid, 'owner-' || (i % 300), 'demo', '{{}}', 'Failed', 'v2', 100, 1, 3, false, 3,
       now() - interval '20 days' + interval '20 days' * i / 10001 + interval '1 ms', now(), now(), 'RuntimeError',
       '{NEEDLE} ' || i
FROM generate_series(1, 10001) AS i;
INSERT INTO job_events (job_id, seq, kind, state, progress, message, attempt, created_at)
SELECT id, e, 'state', state, 0, 'event ' || e, 1, created_at FROM jobs, generate_series(1, 3) AS e;
"""


@pytest.fixture(scope="module")
def history(app) -> Iterator:
    """An app on its own database holding 50,001 jobs and 150,003 events, analysed."""
    scaled = create_app({"SQLALCHEMY_DATABASE_URI": normalize_database_url(isolated_database("history"))})
    with scaled.app_context():
        raw = db.engine.raw_connection().driver_connection  # psycopg2 itself: no parameter parsing of the %s
        with raw.cursor() as cur:
            cur.execute(SEED)
        raw.commit()
        raw.autocommit = True
        with raw.cursor() as cur:
            cur.execute("VACUUM ANALYZE jobs")
            cur.execute("VACUUM ANALYZE job_events")
        raw.close()
        db.engine.dispose()
    yield scaled
    with scaled.app_context():
        db.session.remove()
        db.engine.dispose()


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL (parameters filled in) of every statement run inside the block."""
    seen: list[str] = []

    def grab(conn, cursor, statement, params, context, executemany):
        seen.append(cursor.mogrify(statement, params).decode())

    event.listen(db.engine, "before_cursor_execute", grab)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", grab)


def plans(sql: list[str]) -> list[str]:
    """PostgreSQL's plan of each SELECT (EXPLAIN without running it)."""
    out = []
    for statement in sql:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            rows = db.session.execute(sa.text("EXPLAIN " + statement.replace(":", r"\:"))).scalars()
            out.append("\n".join(rows))
    db.session.rollback()
    return out


def read(f: JobFilter, **kw) -> tuple[listing.Page, listing.Total, list[str]]:
    with statements() as sql:
        page, total = listing.read(f, **kw)
    return page, total, sql


def expected_keys(where: str, limit: int, params: dict | None = None) -> list[uuid.UUID]:
    """The right answer, the slow way: a plain ORDER BY over every matching row."""
    return list(db.session.execute(sa.text(
        f"SELECT id FROM jobs WHERE {where} ORDER BY created_at DESC, id DESC LIMIT {limit}"), params or {}).scalars())


SERVED = {
    "no filter": (JobFilter(), "TRUE", "ix_jobs_created_id"),
    "state": (JobFilter(state=JobState.FAILED), "state = 'Failed'", "ix_jobs_state_created_id"),
    "report": (JobFilter(report="sales_summary"), "report = 'sales_summary'", "ix_jobs_report_created_id"),
    "report and state": (JobFilter(report="sales_summary", state=JobState.SUCCEEDED),
                         "report = 'sales_summary' AND state = 'Succeeded'", "ix_jobs_report_state_created_id"),
    "owner": (JobFilter(owner=HEAVY), f"owner = '{HEAVY}'", "ix_jobs_owner_created_id"),
    "owner and state": (JobFilter(owner=HEAVY, state=JobState.FAILED), f"owner = '{HEAVY}' AND state = 'Failed'",
                        "ix_jobs_owner_state_created_id"),
}


@pytest.mark.parametrize("name", SERVED)
def test_every_served_filter_is_an_index_range_in_list_order(history, name):
    f, where, index = SERVED[name]
    with history.app_context():
        first, _, sql = read(f, per_page=25)
        second, _, _ = read(f, before=first.older, per_page=25)
        assert [j.id for j in first.jobs + second.jobs] == expected_keys(where, 50)
        key_plan = next(p for p in plans(sql) if index in p)
        # Read in index order and stopped at the page: no sort, no scan of the table.
        assert "Seq Scan on jobs" not in key_plan and "Sort" not in key_plan and "Limit" in key_plan, key_plan


def test_a_time_range_narrows_any_index(history):
    with history.app_context():
        now = utcnow()
        f = JobFilter(state=JobState.FAILED, created_from=now - timedelta(days=10), created_to=now - timedelta(days=9))
        page, total, sql = read(f, per_page=10)
        where = "state = 'Failed' AND created_at >= :a AND created_at <= :b"
        params = {"a": f.created_from, "b": f.created_to}
        assert [j.id for j in page.jobs] == expected_keys(where, 10, params)
        exact = db.session.execute(sa.text(f"SELECT count(*) FROM jobs WHERE {where}"), params).scalar_one()
        assert total == listing.Total(exact) and 0 < exact < 10_000
        assert all("Seq Scan on jobs" not in p for p in plans(sql))


def test_a_combination_no_index_serves_walks_a_bounded_range(history):
    """owner + report: the owner's index is walked (5,000 entries at most) and the report read from it alone."""
    with history.app_context():
        f = JobFilter(owner=HEAVY, report="sales_summary")
        page, total, sql = read(f, per_page=25)
        walk = next(p for p in plans(sql) if "ix_jobs_owner_created_id" in p)
        assert "Index Only Scan" in walk and "Seq Scan on jobs" not in walk, walk
        # heavy's jobs are i % 4 == 0; sales_summary is i % 50 == 7: never both. The walk ends before the
        # owner's 10,000 jobs do, so the page says where it stopped and links on from there.
        assert page.jobs == [] and page.scanned_to is not None and page.older == page.scanned_to
        assert total == listing.Total(0, exact=False) and str(total) == "at least 0"
        walks = 1
        while page.older is not None:  # keep looking: 5,000 entries a request, to the end of heavy's 10,000
            page, _, _ = read(f, before=page.older, per_page=25)
            walks += 1
            assert page.jobs == [] and walks <= 3
        assert page.scanned_to is None and walks >= 2


def search_plans(sql: list[str]) -> list[str]:
    """The plans of the statements that searched text (ILIKE)."""
    return [p for p in plans(sql) if "ILIKE" in p or "~~*" in p]


def test_rare_words_are_found_through_the_words_index(history):
    with history.app_context():
        page, total, sql = read(JobFilter(q=RARE.upper()), per_page=25)  # case-insensitive
        assert total == listing.Total(3)
        assert [j.id for j in page.jobs] == expected_keys(f"params::text LIKE '%{RARE}%'", 25)
        found = search_plans(sql)
        assert len(found) == 1 and "ix_jobs_search_words" in found[0] and "ix_jobs_search_trgm" not in found[0] \
            and "Seq Scan on jobs" not in found[0], found
        # The last word may be cut short (still being typed): a word beginning, through the same index.
        cut, total, sql = read(JobFilter(q=RARE[:-2]), per_page=25)
        assert [j.id for j in cut.jobs] == [j.id for j in page.jobs] and total == listing.Total(3)
        assert all("ix_jobs_search_words" in p for p in search_plans(sql)), search_plans(sql)
        # A job id (or its start) is in the searched text too; so are error messages, with the other filters.
        job_id = str(page.jobs[0].id)
        assert [str(j.id) for j in read(JobFilter(q=job_id[:13]), per_page=5)[0].jobs] == [job_id]
        # A whole id is read by the primary key, with or without dashes, and the other filters still apply.
        for spelled in (job_id.upper(), job_id.replace("-", "")):
            whole, total, sql = read(JobFilter(q=spelled), per_page=5)
            assert [str(j.id) for j in whole.jobs] == [job_id] and total == listing.Total(1)
            assert all("ix_jobs_search_trgm" not in p and "Seq Scan on jobs" not in p for p in plans(sql)), plans(sql)
        assert read(JobFilter(q=job_id, state=JobState.CANCELLED if page.jobs[0].state != JobState.CANCELLED
                                 else JobState.FAILED), per_page=5)[0].jobs == []
        failed, total, _ = read(JobFilter(q="bad row 1234", state=JobState.FAILED), per_page=50)
        assert [j.id for j in failed.jobs] == expected_keys("state = 'Failed' AND error_message ILIKE '%bad row 1234%'", 50)
        assert failed.jobs and total == listing.Total(len(failed.jobs))


def test_text_starting_inside_a_word_is_found_through_the_trigram_index(history):
    """No word starts with "re-marker-q7": the words index finds nothing at once, the trigram index the 3 jobs."""
    with history.app_context():
        page, total, sql = read(JobFilter(q=RARE[2:]), per_page=25)
        assert total == listing.Total(3)
        assert [j.id for j in page.jobs] == expected_keys(f"params::text LIKE '%{RARE}%'", 25)
        words, trigrams = search_plans(sql)
        assert "ix_jobs_search_words" in words and "ix_jobs_search_trgm" not in words, words
        assert "ix_jobs_search_trgm" in trigrams and "Seq Scan on jobs" not in trigrams, trigrams
        # Words in another order than the text's: the rows the words find are checked for the text itself.
        assert read(JobFilter(q="row bad"), per_page=5)[1] == listing.Total(0)
        # No word at all: the trigram index alone.
        _, total, sql = read(JobFilter(q="%.%"), per_page=5)
        assert total == listing.Total(0) and all("ix_jobs_search_words" not in p for p in search_plans(sql))


def test_text_in_more_than_10000_jobs_shows_more_than_10000(history):
    with history.app_context():
        page, total, sql = read(JobFilter(q=NEEDLE), per_page=25)
        assert str(total) == "more than 10,000" and not total.exact
        assert len(page.jobs) == 25 and all(NEEDLE in j.error_message for j in page.jobs)
        assert [j.id for j in page.jobs] == expected_keys(f"error_message LIKE '{NEEDLE}%'", 25)
        assert all("Seq Scan on jobs" not in p or "Limit" in p for p in plans(sql))


def test_dashboard_shows_labelled_totals_and_refuses_an_uncountable_bulk_action(history):
    client = history.test_client()
    html = client.get(f"/dashboard/?q={NEEDLE}", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert re.search(r'<span id="job-total">more than 10,000</span>', html), html[:2000]
    refused = client.get(f"/dashboard/bulk?action=delete&q={NEEDLE}", headers={"HX-Request": "true"})
    assert "narrow the filter" in refused.get_data(as_text=True).lower()
    assert "Confirm" not in refused.get_data(as_text=True)
    # Exactly 10,000: counted exactly, and one confirmation acts on the oldest 1,000 of them.
    exact = client.get(f"/dashboard/bulk?action=retry&owner={HEAVY}", headers={"HX-Request": "true"})
    assert "Retry the oldest 1000 of 10,000 jobs" in exact.get_data(as_text=True)
    token = client.get("/dashboard/").get_data(as_text=True)
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', token).group(1)
    posted = client.post("/dashboard/bulk", headers={"HX-Request": "true", "X-CSRFToken": csrf},
                         data={"action": "delete", "q": NEEDLE})
    assert "narrow the filter" in posted.get_data(as_text=True).lower()
    with history.app_context():
        assert db.session.execute(sa.text(f"SELECT count(*) FROM jobs WHERE error_message LIKE '{NEEDLE}%'")
                                  ).scalar_one() == 10_001


def test_keyset_pages_stay_put_while_jobs_arrive(history):
    with history.app_context():
        f = JobFilter(owner=HEAVY)
        seen: list[uuid.UUID] = []
        page, _, _ = read(f, per_page=100)
        seen += [j.id for j in page.jobs]
        second, _, _ = read(f, before=page.older, per_page=100)
        seen += [j.id for j in second.jobs]
        arrived = _insert_jobs(HEAVY, 5)  # newer than everything: page= numbers would now shift by 5
        third, _, _ = read(f, before=second.older, per_page=100)
        seen += [j.id for j in third.jobs]
        assert seen == expected_keys(f"owner = '{HEAVY}' AND id <> ALL(:new)", 300, {"new": arrived})
        # Back towards the newest: exactly the page before, then the newest page with the new arrivals.
        back, _, _ = read(f, after=third.newer, per_page=100)
        assert [j.id for j in back.jobs] == [j.id for j in second.jobs]
        top, _, _ = read(f, after=page.newer, per_page=100)
        assert [j.id for j in top.jobs][:5] == arrived[::-1] and top.newer is None
        _delete_jobs(arrived)


def _insert_jobs(owner: str, n: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    base = utcnow()
    for i, job_id in enumerate(ids):
        db.session.add(Job(id=job_id, owner=owner, report="demo", params={}, state="Succeeded",
                           created_at=base + timedelta(milliseconds=i)))
    db.session.commit()
    return ids


def _delete_jobs(ids: list[uuid.UUID]) -> None:
    db.session.execute(sa.delete(Job).where(Job.id.in_(ids)))
    db.session.commit()


def _bearer(owner: str) -> dict[str, str]:
    token = f"h5-{uuid.uuid4()}"
    db.session.add(ApiToken(owner=owner, name="paging test", token_hash=hash_token(token)))
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_the_api_pages_by_key_and_still_answers_page_numbers(history):
    client = history.test_client()
    with history.app_context():
        auth = _bearer("heavy")
        newest = expected_keys(f"owner = '{HEAVY}'", 150)
    first = client.get("/jobs?per_page=50", headers=auth).get_json()
    assert first["total"] == 10_000 and "page" not in first
    assert [j["id"] for j in first["items"]] == [str(k) for k in newest[:50]]
    second = client.get(first["links"]["next"], headers=auth).get_json()
    assert [j["id"] for j in second["items"]] == [str(k) for k in newest[50:100]]
    assert client.get(second["links"]["prev"], headers=auth).get_json()["items"] == first["items"]
    # page=: 1 is the newest page, N the N-th, within the newest 10,000 jobs; past them a readable 404.
    assert client.get("/jobs?per_page=50&page=1", headers=auth).get_json()["items"] == first["items"]
    page3 = client.get("/jobs?per_page=50&page=3", headers=auth).get_json()
    assert page3["page"] == 3 and [j["id"] for j in page3["items"]] == [str(k) for k in newest[100:150]]
    deep = client.get("/jobs?per_page=50&page=201", headers=auth)
    assert deep.status_code == 404 and deep.mimetype == "application/problem+json"
    assert "before=" in deep.get_json()["detail"] and deep.get_json()["errors"][0]["field"] == "page"
    forged = client.get("/jobs?before=bm90LWEta2V5", headers=auth)
    assert forged.status_code == 404 and forged.get_json()["errors"][0]["field"] == "before"
    # One more job and the owner is past what is counted exactly: null and a lower bound, never a wrong number.
    with history.app_context():
        extra = _insert_jobs(HEAVY, 1)
    more = client.get("/jobs?per_page=5", headers=auth).get_json()
    assert more["total"] is None and more["total_at_least"] == 10_001
    with history.app_context():
        _delete_jobs(extra)


def test_job_reads_are_primary_key_and_sequence_lookups(history):
    client = history.test_client()
    with history.app_context():
        auth = _bearer("heavy")
        job_id = str(expected_keys(f"owner = '{HEAVY}'", 1)[0])
        with statements() as sql:
            assert client.get(f"/jobs/{job_id}", headers=auth).status_code == 200
            events = client.get(f"/jobs/{job_id}/events", headers=auth).get_json()
            assert client.get(f"/dashboard/jobs/{job_id}", headers={"Accept": "text/html"}).status_code == 200
        assert [e["seq"] for e in events["items"]] == [1, 2, 3]
        job_plans = plans(sql)
        assert not [p for p in job_plans if "Seq Scan on jobs" in p or "Seq Scan on job_events" in p], job_plans
        assert any("uq_job_events_job_id_seq" in p for p in job_plans)


def test_charts_read_only_the_write_time_buckets(history):
    with history.app_context():
        from app.dashboard import queries

        before_minute = queries.throughput("minute", 60)
        before_day = queries.throughput("day", 28)
        job = Job(id=uuid.uuid4(), owner="chart", report="demo", params={}, state=JobState.SUCCEEDED.value,
                  created_at=utcnow(), started_at=utcnow(), finished_at=utcnow())
        db.session.add(job)
        counters.record_transition(job, JobState.PROCESSING, JobState.SUCCEEDED)
        failed = Job(id=uuid.uuid4(), owner="chart", report="demo", params={}, state=JobState.FAILED.value,
                     created_at=utcnow(), finished_at=utcnow())
        db.session.add(failed)
        counters.record_transition(failed, JobState.PROCESSING, JobState.FAILED)
        db.session.commit()
        with statements() as sql:
            minute, day = queries.throughput("minute", 60), queries.throughput("day", 28)
        assert sum(minute.succeeded) == sum(before_minute.succeeded) + 1
        assert sum(minute.failed) == sum(before_minute.failed) + 1
        assert day.succeeded[-1] == before_day.succeeded[-1] + 1 and len(day.labels) == 28
        assert sql and all("job_finished_buckets" in s and " jobs" not in s for s in sql), sql
        # Minute buckets past the chart go; day buckets stay.
        old = utcnow() - timedelta(hours=3)
        db.session.add(throughput.JobFinishedBucket(unit="minute", start=old.replace(second=0, microsecond=0),
                                                    state="Succeeded", shard=0, value=1))
        db.session.commit()
        assert throughput.prune() >= 1
        assert db.session.execute(sa.text("SELECT count(*) FROM job_finished_buckets WHERE unit = 'minute' "
                                          "AND start < now() - interval '2 hours'")).scalar_one() == 0


def test_cursor_text_round_trips_and_rejects_others():
    key = Cursor(utcnow(), uuid.uuid4())
    assert Cursor.decode(key.encode()) == key
    for forged in ("", "@@@", "bm90LWEta2V5", json.dumps({"a": 1})):
        with pytest.raises(ValueError):
            Cursor.decode(forged)
