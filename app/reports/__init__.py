"""Reports: plain functions registered by name. Importing this package registers the built-ins."""
from app.reports import demo, export, sales_summary  # noqa: F401 - registration side effect
from app.reports.registry import all_reports, get_report, report  # noqa: F401
