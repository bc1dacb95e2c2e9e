"""The lifecycle table: legal moves pass, everything else is refused."""
import random
from itertools import pairwise

import pytest

from app.jobs.runner import backoff_seconds
from app.jobs.states import FINAL_STATES, IllegalTransition, JobState, can_transition, check_transition, parse_state


def test_happy_path_is_legal():
    path = [JobState.ENQUEUED, JobState.PROCESSING, JobState.RETRYING, JobState.PROCESSING, JobState.SUCCEEDED]
    for current, target in pairwise(path):
        check_transition(current, target)


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_final_states_only_leave_by_requeue(final):
    for target in JobState:
        expected = target == JobState.ENQUEUED and final != JobState.SUCCEEDED
        assert can_transition(final, target) is expected, (final, target)


def test_illegal_transition_names_both_states():
    with pytest.raises(IllegalTransition, match="from Succeeded to Processing"):
        check_transition(JobState.SUCCEEDED, JobState.PROCESSING)
    with pytest.raises(IllegalTransition):
        check_transition(JobState.ENQUEUED, JobState.SUCCEEDED)


def test_parse_state_is_case_insensitive_and_explains_errors():
    assert parse_state("processing") is JobState.PROCESSING
    with pytest.raises(ValueError, match="valid states are Scheduled, Enqueued"):
        parse_state("done")


def test_backoff_grows_exponentially_with_jitter_and_cap():
    rng = random.Random(1)
    delays = [backoff_seconds(n, 1.0, 8.0, rng) for n in range(1, 7)]
    for attempt, delay in enumerate(delays, start=1):
        full = min(8.0, 2 ** (attempt - 1))
        assert full / 2 <= delay <= full
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not constant
