"""Job priority, 0 (lowest) to 9 (highest): who goes first within an owner's turn (owners still take turns)."""
from __future__ import annotations

LOWEST, HIGHEST = 0, 9
# A person waiting on a page or an API call; a report may set its own default (``@report(priority=…)``).
INTERACTIVE = 7
# Work nobody is watching right now: schedules and bulk requeues.
BACKGROUND = 3


class PriorityInvalid(ValueError):
    """A requested priority outside the scale or above what the request may ask for."""


def resolve(requested: object, allowance: int) -> int:
    """The priority of a new job: ``allowance`` unless the request asks for a lower one (never higher)."""
    if requested is None:
        return allowance
    if isinstance(requested, float) and requested.is_integer():
        requested = int(requested)  # JSON does not tell 3 from 3.0
    if not isinstance(requested, int) or isinstance(requested, bool) or not LOWEST <= requested <= HIGHEST:
        raise PriorityInvalid(f"must be an integer from {LOWEST} to {HIGHEST}")
    if requested > allowance:
        raise PriorityInvalid(f"may be at most {allowance} for this report (lower is allowed, higher is not)")
    return requested
