"""A large CSV, streamed: shows (and tests) results that never sit whole in memory."""
from __future__ import annotations

from app.reports.context import ReportContext
from app.reports.params import Param
from app.reports.registry import report

ROW_BYTES = 100  # every row has the same width, so the size asked for is the size made
HEADER = "number,code,region,amount,padding\n"


def row(number: int) -> str:
    """Row ``number`` of the export: reproducible, 100 bytes with its newline."""
    code = (number * 2654435761) % 4294967296
    return f"{number:012d},{code:010d},{'region-' + str(number % 7):<12},{number % 1000:>6}.{number % 100:02d}," \
           f"{'x' * 52}\n"


@report(
    "export_demo",
    title="Large CSV export (streamed)",
    description="Writes a CSV of the size asked for row by row into a streamed result: the worker holds one "
                "chunk at a time, and the download can be resumed.",
    params=(Param("megabytes", int, default=10, minimum=1, maximum=4096, help="Size of the CSV in MiB."),),
)
def export_demo(ctx: ReportContext, megabytes: int) -> None:
    """Stream ``megabytes`` MiB of CSV rows, progress after every MiB."""
    rows_per_mib = (1024 * 1024) // ROW_BYTES
    total = megabytes * rows_per_mib
    with ctx.open_result("export.csv", "text/csv") as out:
        out.write(HEADER)
        for start in range(0, total, rows_per_mib):
            end = min(start + rows_per_mib, total)
            out.write("".join(row(n) for n in range(start, end)))
            ctx.progress(end, total, f"{end // rows_per_mib} of {megabytes} MiB")
