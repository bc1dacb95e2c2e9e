"""The embedded default (SQLite) runs the same lists: paging by key, every filter, search by plain LIKE."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from app import create_app
from app.extensions import db
from app.jobs import listing
from app.jobs.listing import JobFilter
from app.jobs.models import Job, utcnow
from app.jobs.states import JobState


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> Iterator:
    """An app on a fresh, migrated SQLite file holding 120 jobs of 4 owners, two reports, some failures."""
    path = tmp_path_factory.mktemp("sqlite") / "longrun.db"
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"})
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        base = utcnow() - timedelta(hours=2)
        for i in range(120):
            failed = i % 10 == 3
            db.session.add(Job(
                id=uuid.uuid4(), owner=f"owner-{i % 4}", report="sales_summary" if i % 6 == 1 else "demo",
                params={"region": "north" if i % 30 == 0 else "south", "steps": i},
                state=JobState.FAILED.value if failed else JobState.SUCCEEDED.value,
                error_type="ValueError" if failed else None, error_message=f"bad row {i}" if failed else None,
                created_at=base + timedelta(seconds=i)))
        db.session.commit()
        yield app
        db.session.remove()


def everything(where=lambda j: True) -> list[uuid.UUID]:
    """The right answer: every job, newest first, filtered in Python."""
    jobs = db.session.execute(db.select(Job)).scalars().all()
    return [j.id for j in sorted(jobs, key=lambda j: (j.created_at, j.id), reverse=True) if where(j)]


def walk_older(f: JobFilter, per_page: int) -> list[uuid.UUID]:
    """Every page from the newest on, following the older links to the end."""
    seen, before = [], None
    while True:
        page, _ = listing.read(f, before=before, per_page=per_page)
        seen += [j.id for j in page.jobs]
        if page.older is None:
            return seen
        before = page.older


def test_paging_by_key_covers_every_filter(embedded):
    with embedded.app_context():
        assert walk_older(JobFilter(), 7) == everything()
        assert walk_older(JobFilter(state=JobState.FAILED), 5) == everything(lambda j: j.state == "Failed")
        both = JobFilter(owner="owner-1", report="sales_summary")  # no index for the pair: a bounded walk
        assert walk_older(both, 3) == everything(lambda j: j.owner == "owner-1" and j.report == "sales_summary")
        page, total = listing.read(JobFilter(owner="owner-2"), per_page=10)
        assert total == listing.Total(30) and len(page.jobs) == 10
        older, _ = listing.read(JobFilter(owner="owner-2"), before=page.older, per_page=10)
        back, _ = listing.read(JobFilter(owner="owner-2"), after=older.newer, per_page=10)
        assert [j.id for j in back.jobs] == [j.id for j in page.jobs]


def test_search_is_a_plain_like_there(embedded):
    with embedded.app_context():
        page, total = listing.read(JobFilter(q="NORTH"), per_page=50)
        assert [j.id for j in page.jobs] == everything(lambda j: j.params["region"] == "north")
        assert total == listing.Total(4)
        failed, total = listing.read(JobFilter(q="bad row 11", state=JobState.FAILED), per_page=50)
        assert [j.error_message for j in failed.jobs] == ["bad row 113"] and total == listing.Total(1)
        some = everything()[17]
        assert [j.id for j in listing.read(JobFilter(q=str(some)), per_page=5)[0].jobs] == [some]
        assert [j.id for j in listing.read(JobFilter(q=some.hex[:12]), per_page=5)[0].jobs] == [some]


def test_the_dashboard_and_the_api_answer_on_sqlite(embedded):
    client = embedded.test_client()
    html = client.get("/dashboard/?q=north&page=1", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert '<span id="job-total">4</span>' in html
    listed = client.get("/jobs?page=2&per_page=5").get_json()
    assert listed["page"] == 2 and listed["items"] == [] and listed["total"] == 0  # a new owner has no jobs
