"""Pure rules of jobs asked for later: the due time's bounds, the Scheduled state's moves and slot class."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app.jobs.later import RunAtInvalid, due_time
from app.jobs.slots import IN_FLIGHT, WAITING, slot_class
from app.jobs.states import JobState, can_transition

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
BOUNDS = {"horizon": timedelta(days=365), "tolerance": timedelta(seconds=60)}


def test_run_at_with_any_offset_is_read_as_that_instant():
    assert due_time("2026-06-01T15:30:00+02:00", None, NOW, **BOUNDS) == datetime(2026, 6, 1, 13, 30, tzinfo=timezone.utc)
    assert due_time("2026-06-01T13:30:00Z", None, NOW, **BOUNDS) == datetime(2026, 6, 1, 13, 30, tzinfo=timezone.utc)
    assert due_time(None, 90, NOW, **BOUNDS) == NOW + timedelta(seconds=90)
    assert due_time(None, None, NOW, **BOUNDS) is None


def test_a_little_in_the_past_is_clock_skew_and_accepted():
    assert due_time("2026-06-01T11:59:30Z", None, NOW, **BOUNDS) == NOW - timedelta(seconds=30)


@pytest.mark.parametrize(("run_at", "delay", "field"), [
    ("2026-06-01T11:58:00Z", None, "run_at"),  # past, beyond the tolerance
    ("2027-06-02T12:00:00Z", None, "run_at"),  # beyond the horizon
    ("2026-06-01T13:30:00", None, "run_at"),  # no offset: which 13:30?
    ("next monday", None, "run_at"), (1234, None, "run_at"),
    (None, -1, "delay_seconds"), (None, 366 * 86400, "delay_seconds"), (None, True, "delay_seconds"),
    (None, float("nan"), "delay_seconds"), ("2026-06-01T13:30:00Z", 5, "delay_seconds"),
])
def test_out_of_bounds_names_the_field(run_at, delay, field):
    with pytest.raises(RunAtInvalid) as caught:
        due_time(run_at, delay, NOW, **BOUNDS)
    assert caught.value.field == field


def test_scheduled_jobs_are_neither_waiting_nor_in_flight():
    assert slot_class(JobState.SCHEDULED.value, None) is None
    assert slot_class(JobState.ENQUEUED.value, None) == WAITING  # once promoted: in its owner's line
    assert slot_class(JobState.PROCESSING.value, NOW) == IN_FLIGHT


def test_scheduled_moves_only_to_enqueued_or_cancelled():
    allowed = {s for s in JobState if can_transition(JobState.SCHEDULED, s)}
    assert allowed == {JobState.ENQUEUED, JobState.CANCELLED}
    assert not any(can_transition(s, JobState.SCHEDULED) for s in JobState)
