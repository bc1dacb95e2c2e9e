"""The job lifecycle (Hangfire's states) and the one table of legal transitions."""
from __future__ import annotations

from enum import Enum


class JobState(str, Enum):
    """Every state a job can be in."""

    SCHEDULED = "Scheduled"  # created to run later (``run_at``): waits for its time, not for a worker
    ENQUEUED = "Enqueued"
    PROCESSING = "Processing"
    RETRYING = "Retrying"  # failed an attempt, waiting for its backoff before the next one
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def is_final(self) -> bool:
        """True for states a job only leaves by an explicit retry."""
        return self in FINAL_STATES


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
ACTIVE_STATES = frozenset({JobState.ENQUEUED, JobState.PROCESSING, JobState.RETRYING})

_ALLOWED: dict[JobState, frozenset[JobState]] = {
    # The clock enqueues it when due; its owner may cancel it before then.
    JobState.SCHEDULED: frozenset({JobState.ENQUEUED, JobState.CANCELLED}),
    JobState.ENQUEUED: frozenset({JobState.PROCESSING, JobState.CANCELLED, JobState.FAILED}),
    JobState.PROCESSING: frozenset(
        {JobState.PROCESSING, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.RETRYING}
    ),
    JobState.RETRYING: frozenset({JobState.PROCESSING, JobState.CANCELLED, JobState.FAILED}),
    # Only a person (retry button/API) brings a finished job back.
    JobState.FAILED: frozenset({JobState.ENQUEUED}),
    JobState.CANCELLED: frozenset({JobState.ENQUEUED}),
    JobState.SUCCEEDED: frozenset(),
}


class IllegalTransition(Exception):
    """A state change that the lifecycle forbids."""

    def __init__(self, current: JobState, target: JobState) -> None:
        super().__init__(f"cannot move a job from {current.value} to {target.value}")
        self.current = current
        self.target = target


def can_transition(current: JobState, target: JobState) -> bool:
    """Whether ``current -> target`` is a legal move."""
    return target in _ALLOWED[current]


def check_transition(current: JobState, target: JobState) -> None:
    """Raise ``IllegalTransition`` unless ``current -> target`` is legal."""
    if not can_transition(current, target):
        raise IllegalTransition(current, target)


def parse_state(value: str) -> JobState:
    """Parse a state name case-insensitively; ``ValueError`` names the valid ones."""
    for state in JobState:
        if state.value.lower() == value.strip().lower():
            return state
    valid = ", ".join(s.value for s in JobState)
    raise ValueError(f"unknown state {value!r}; valid states are {valid}")
