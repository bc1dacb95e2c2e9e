"""The owners' line counts follow every ORM change of a job's state and dispatch, across commits."""
import uuid

from app.extensions import db
from app.jobs.models import Job, utcnow
from app.jobs.slots import OwnerQueue


def _line(owner: str) -> tuple[int, int]:
    row = db.session.get(OwnerQueue, owner, populate_existing=True)
    return row.waiting, row.inflight


def test_counts_follow_a_job_through_waiting_in_flight_and_its_end(app):
    with app.app_context():
        owner = f"user:line-{uuid.uuid4().hex[:8]}"
        job = Job(id=uuid.uuid4(), owner=owner, report="demo", params={}, state="Enqueued", last_seq=0,
                  progress=0.0, attempts=0, max_attempts=3, dispatched_at=None)
        db.session.add(job)
        db.session.commit()  # expires the job's attributes
        assert _line(owner) == (1, 0)
        job.dispatched_at = utcnow()  # each change on a row the previous commit expired
        db.session.commit()
        assert _line(owner) == (0, 1)
        job.state = "Processing"
        db.session.commit()
        assert _line(owner) == (0, 1)
        job.state = "Cancelled"
        db.session.commit()
        assert _line(owner) == (0, 0)
        db.session.delete(job)
        db.session.commit()
        assert _line(owner) == (0, 0)
        db.session.remove()
