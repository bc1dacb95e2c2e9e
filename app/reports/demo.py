"""The seed's job: wait a while in steps, reporting progress."""
from __future__ import annotations

from app.reports.context import ReportContext
from app.reports.params import Param
from app.reports.registry import report


class PlannedFailure(RuntimeError):
    """The failure the ``fail_times`` parameter asks for, to show retries."""


@report(
    "demo",
    title="Demo: a long task",
    description="Waits for a while in steps, like the original sample's 10-second job.",
    params=(
        Param("duration_seconds", float, default=10.0, minimum=0, maximum=600,
              help="Total running time in seconds."),
        Param("steps", int, default=10, minimum=1, maximum=1000, help="Progress updates along the way."),
        Param("fail_times", int, default=0, minimum=0, maximum=10,
              help="Fail this many attempts before succeeding (shows automatic retries)."),
    ),
)
def demo(ctx: ReportContext, duration_seconds: float, steps: int, fail_times: int) -> None:
    """Sleep ``duration_seconds`` in ``steps`` slices; fail the first ``fail_times`` attempts."""
    ctx.progress(0, steps, "Started")
    if ctx.attempt <= fail_times:
        raise PlannedFailure(f"planned failure on attempt {ctx.attempt} of {fail_times}")
    for step in range(1, steps + 1):
        ctx.sleep(duration_seconds / steps)
        ctx.progress(step, steps, f"Waited {duration_seconds * step / steps:.1f} of {duration_seconds:g} s")
    ctx.write_result("demo.txt", f"Completed {steps} steps in {duration_seconds:g} s\n", "text/plain")
