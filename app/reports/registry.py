"""The report registry: name -> plain function with its parameter schema."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from app.reports.params import Param, validate_params

ReportFunc = Callable[..., None]


@dataclass(frozen=True)
class Report:
    """A registered report."""

    name: str
    func: ReportFunc
    title: str
    description: str
    params: tuple[Param, ...]
    max_attempts: int = 3
    # Seconds before the job is stopped as overdue; None means the global soft limit.
    time_limit: int | None = None
    # Address-space budget for one attempt (MB); None means LONGRUN_JOB_MEMORY_MB.
    memory_limit_mb: int | None = None
    # Priority of an interactive request (0-9, app/jobs/priority.py); a request may ask for less, never more.
    priority: int = 7
    # Result reuse: the same parameters by the same owner within this many seconds answer with the job already
    # there (running or succeeded) instead of a new run; 0 turns it off.
    reuse_seconds: float = 0

    def validate(self, raw: Any) -> dict[str, Any]:
        """Validated, typed parameters for this report."""
        return validate_params(self.params, raw)

    def describe(self) -> dict[str, Any]:
        """JSON description for the API and forms."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "max_attempts": self.max_attempts,
            "priority": self.priority,
            "reuse_seconds": self.reuse_seconds,
            "params": [p.describe() for p in self.params],
        }


class UnknownReport(KeyError):
    """No report is registered under that name."""

    def __str__(self) -> str:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        return f"there is no report named {self.args[0]!r} (available: {known})"


_REGISTRY: dict[str, Report] = {}


def report(
    name: str,
    *,
    title: str,
    description: str = "",
    params: tuple[Param, ...] = (),
    max_attempts: int = 3,
    time_limit: int | None = None,
    memory_limit_mb: int | None = None,
    priority: int = 7,
    reuse_seconds: float = 0,
) -> Callable[[ReportFunc], ReportFunc]:
    """Register the decorated function as report ``name``."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if not 0 <= priority <= 9:
        raise ValueError("priority must be from 0 to 9")
    if reuse_seconds < 0:
        raise ValueError("reuse_seconds must not be negative")

    def decorate(func: ReportFunc) -> ReportFunc:
        if name in _REGISTRY and _REGISTRY[name].func is not func:
            raise ValueError(f"report {name!r} is registered twice")
        _REGISTRY[name] = Report(name, func, title, description or (func.__doc__ or "").strip(),
                                 params, max_attempts, time_limit, memory_limit_mb, priority, reuse_seconds)
        return func

    return decorate


def get_report(name: str) -> Report:
    """The report registered as ``name``; ``UnknownReport`` otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownReport(name) from None


def all_reports() -> list[Report]:
    """Every registered report, by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
