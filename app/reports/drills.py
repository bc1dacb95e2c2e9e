"""A fault drill report, registered only with LONGRUN_FAULT_DRILLS=1: raise, hang, or eat memory on purpose."""
from __future__ import annotations

import time

from app.reports.context import ReportContext
from app.reports.params import Param
from app.reports.registry import report


class DrillFailure(RuntimeError):
    """The failure the ``raise`` drill asks for."""


@report(
    "fault_drill",
    title="Fault drill",
    description="Misbehaves on purpose so operators can see failures handled: raise, hang, exhaust memory, or "
                "stream a big result and then replace it with a small one.",
    params=(
        Param("mode", str, default="raise", choices=("raise", "hang", "memory", "rewrite")),
        Param("seconds", float, default=30.0, minimum=0, maximum=600, help="How long 'hang' blocks."),
        Param("megabytes", int, default=2048, minimum=1, maximum=65536,
              help="How much 'memory' tries to hold, or 'rewrite' streams first."),
    ),
    max_attempts=1,
    time_limit=3,
)
def fault_drill(ctx: ReportContext, mode: str, seconds: float, megabytes: int) -> None:
    """Fail in the chosen way, ignoring every checkpoint (the worst kind of report)."""
    if mode == "raise":
        raise DrillFailure("the drill raised on purpose")
    if mode == "hang":
        time.sleep(seconds)  # no checkpoints: only the time limit can stop it
        return
    if mode == "rewrite":
        with ctx.open_result("first.bin", "application/octet-stream") as out:
            for _ in range(megabytes):
                out.write(b"x" * 1024 * 1024)
        ctx.write_result("second.txt", "the result that counts", "text/plain")
        return
    hoard = []
    for _ in range(megabytes):
        hoard.append(bytearray(1024 * 1024))
    ctx.write_result("never.txt", f"held {len(hoard)} MB", "text/plain")
