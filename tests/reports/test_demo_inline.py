"""The demo report as a plain function, run with the in-process context."""
import pytest

from app.reports import get_report
from app.reports.context import InlineContext, JobCancelled
from app.reports.demo import PlannedFailure


def test_demo_reports_each_step_and_writes_a_result():
    ctx = InlineContext()
    get_report("demo").func(ctx, duration_seconds=0.05, steps=5, fail_times=0)
    assert [d for d, _, _ in ctx.progress_log] == [0, 1, 2, 3, 4, 5]
    assert ctx.result is not None and ctx.result.content.startswith(b"Completed 5 steps")


def test_demo_fails_the_planned_attempts():
    with pytest.raises(PlannedFailure):
        get_report("demo").func(InlineContext(attempt=2), duration_seconds=0, steps=1, fail_times=2)
    get_report("demo").func(InlineContext(attempt=3), duration_seconds=0, steps=1, fail_times=2)


def test_demo_stops_when_cancelled():
    ctx = InlineContext()
    ctx.cancel_event.set()
    with pytest.raises(JobCancelled):
        get_report("demo").func(ctx, duration_seconds=5, steps=5, fail_times=0)
