"""A job's public state, the one projection of it: templates render it, and the API's JSON and the live events take
their job-wide fields from it. Built from a row or from one live event."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from app.channels import JobEventMessage
from app.jobs.models import Job
from app.jobs.position import QueuePlace, ordinal
from app.jobs.states import JobState


def dom_id(job_id: str, part: str = "status") -> str:
    """The one stable element id of a job's fragment (pages, polls and pushes all use it)."""
    return f"job-{job_id}-{part}"


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class JobView:
    """Whole current state of a job, enough to redraw its status fragment."""

    id: str
    report: str
    state: str
    progress: float
    done: int | None
    total: int | None
    message: str | None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    error: str | None
    has_result: bool
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    last_seq: int
    trace_id: str | None = None
    # A waiting job's place in line (single-job renderings compute it; lists and live events leave it out).
    place: QueuePlace | None = None
    # When a job asked for later is due (a Scheduled job), or a schedule's slot.
    scheduled_for: datetime | None = None

    @property
    def final(self) -> bool:
        """True once the job has ended."""
        return JobState(self.state).is_final

    @property
    def can_cancel(self) -> bool:
        """Whether a cancel button makes sense."""
        return not self.final and not self.cancel_requested

    @property
    def can_retry(self) -> bool:
        """Whether a retry button makes sense."""
        return self.state in (JobState.FAILED.value, JobState.CANCELLED.value)

    @property
    def elapsed_seconds(self) -> float | None:
        """Running time so far (or in total, once finished)."""
        if self.started_at is None:
            return None
        end = self.finished_at or datetime.now(timezone.utc)
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def eta_seconds(self) -> float | None:
        """Remaining time, extrapolated from progress so far (None when it cannot be told)."""
        elapsed = self.elapsed_seconds
        if self.final or elapsed is None or not 0 < self.progress < 100:
            return None
        return elapsed * (100 - self.progress) / self.progress

    @property
    def dom_id(self) -> str:
        """Element id of the status fragment."""
        return dom_id(self.id)

    @property
    def place_text(self) -> str | None:
        """"3rd in line", with the predicted start when it can be told."""
        if self.place is None:
            return None
        line = f"{ordinal(self.place.position)} in line"
        return line + " — dispatch is paused" if self.place.paused else line

    @classmethod
    def from_job(cls, job: Job, place: QueuePlace | None = None) -> "JobView":
        """From a database row (with its place in line when the caller computed it)."""
        return cls(
            id=str(job.id), report=job.report, state=job.state, progress=job.progress or 0.0,
            done=job.progress_done, total=job.progress_total, message=job.progress_message,
            attempts=job.attempts, max_attempts=job.max_attempts, cancel_requested=bool(job.cancel_requested),
            error=job.error_text,
            has_result=job.has_result,
            created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
            last_seq=job.last_seq, trace_id=job.trace_id, place=place, scheduled_for=job.scheduled_for,
        )

    @classmethod
    def from_event(cls, event: JobEventMessage) -> "JobView":
        """From a live event (which carries the job's whole public state)."""
        return cls(
            id=event.job_id, report=event.report, state=event.state, progress=event.progress,
            done=event.done, total=event.total,
            message=event.progress_message,
            attempts=event.attempt, max_attempts=event.max_attempts, cancel_requested=event.cancel_requested,
            error=event.error, has_result=event.has_result, created_at=_dt(event.created_at),
            started_at=_dt(event.started_at), finished_at=_dt(event.finished_at), last_seq=event.seq,
        )
