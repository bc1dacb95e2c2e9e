"""Cron evaluation on fixed instants: DST rules in Europe/Berlin, aliases, the misfire policies (pure, no clock)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app.schedules.cron import CronInvalid, compile_cron
from app.schedules.misfire import plan_fire

UTC = timezone.utc
BERLIN = "Europe/Berlin"
GRACE = timedelta(seconds=60)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fires_between(expression: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    spec = compile_cron(expression, tz, start)
    out = []
    for fire in spec.fires_after(start):
        if fire >= end:
            return out
        out.append(fire)
    return out


def test_daily_0230_fires_once_on_the_spring_forward_day_at_the_jump():
    # 2025-03-30: 02:00 CET becomes 03:00 CEST, so 02:30 does not exist that day; it fires at 03:00 CEST.
    fires = fires_between("30 2 * * *", BERLIN, utc(2025, 3, 29, 12), utc(2025, 3, 31, 12))
    assert fires == [utc(2025, 3, 30, 1, 0), utc(2025, 3, 31, 0, 30)]  # 03:00 CEST; then 02:30 CEST again


def test_daily_0230_fires_once_not_twice_on_the_fall_back_day():
    # 2025-10-26: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice; the schedule fires at the first one.
    fires = fires_between("30 2 * * *", BERLIN, utc(2025, 10, 25, 12), utc(2025, 10, 27, 12))
    assert fires == [utc(2025, 10, 26, 0, 30), utc(2025, 10, 27, 1, 30)]  # 02:30 CEST; then 02:30 CET


def test_hourly_fires_on_both_passes_of_the_repeated_hour():
    fires = fires_between("0 * * * *", BERLIN, utc(2025, 10, 25, 23, 30), utc(2025, 10, 26, 2, 30))
    assert fires == [utc(2025, 10, 26, 0), utc(2025, 10, 26, 1), utc(2025, 10, 26, 2)]  # 02:00 CEST, 02:00 CET, 03:00


def test_monday_0700_stays_at_0700_local_across_both_changes():
    spec = compile_cron("0 7 * * MON", BERLIN, utc(2025, 3, 1))
    spring = spec.upcoming(utc(2025, 3, 20), 2)
    assert spring == [utc(2025, 3, 24, 6), utc(2025, 3, 31, 5)]  # 07:00 CET, then 07:00 CEST
    autumn = spec.upcoming(utc(2025, 10, 21), 2)
    assert autumn == [utc(2025, 10, 27, 6), utc(2025, 11, 3, 6)]  # after the fall back: CET again
    assert [f.astimezone(spec.tz).hour for f in spring + autumn] == [7, 7, 7, 7]


def test_description_and_aliases():
    assert compile_cron("0 7 * * MON", BERLIN, utc(2025, 1, 1)).describe() == "At 07:00, only on Monday (Europe/Berlin)"
    weekly = compile_cron("@weekly", "UTC", utc(2025, 1, 1))
    assert weekly.upcoming(utc(2025, 1, 1), 2) == [utc(2025, 1, 5), utc(2025, 1, 12)]  # Sundays 00:00
    assert compile_cron("@hourly", "UTC", utc(2025, 1, 1)).shortest_interval(utc(2025, 1, 1)) == 3600
    assert compile_cron("0,1 7 * * MON", "UTC", utc(2025, 1, 1)).shortest_interval(utc(2025, 1, 1)) == 60


@pytest.mark.parametrize(("expression", "tz", "field"), [
    ("* * * *", "UTC", "cron"), ("61 * * * *", "UTC", "cron"), ("0 0 30 2 *", "UTC", "cron"),
    ("@often", "UTC", "cron"), ("", "UTC", "cron"), ("0 7 * * MON", "Mars/Olympus", "timezone"),
    ("0 7 * * MON", "../../etc/passwd", "timezone"), ("0 7 * * MON", 5, "timezone"),
])
def test_bad_expressions_and_zones_name_their_field(expression, tz, field):
    with pytest.raises(CronInvalid) as caught:
        compile_cron(expression, tz, utc(2025, 1, 1))
    assert caught.value.field == field


def test_an_on_time_slot_fires():
    spec = compile_cron("0 * * * *", "UTC", utc(2025, 1, 1))
    plan = plan_fire(spec, utc(2025, 1, 1, 10), utc(2025, 1, 1, 10, 0, 0, 400_000), "skip", GRACE)
    assert (plan.slot, plan.next_fire_at, plan.missed) == (utc(2025, 1, 1, 10), utc(2025, 1, 1, 11), False)


@pytest.mark.parametrize(("policy", "slot"), [("skip", None), ("run_once", utc(2025, 1, 1, 13))])
def test_after_downtime_skip_runs_nothing_and_run_once_runs_the_latest_slot_alone(policy, slot):
    spec = compile_cron("0 * * * *", "UTC", utc(2025, 1, 1))
    # Down from 09:59 to 13:20: slots 10:00 ... 13:00 were missed.
    plan = plan_fire(spec, utc(2025, 1, 1, 10), utc(2025, 1, 1, 13, 20), policy, GRACE)
    assert plan.slot == slot and plan.missed
    assert plan.next_fire_at == utc(2025, 1, 1, 14)


def test_a_missed_slot_followed_by_an_on_time_one_fires_the_on_time_one_under_skip():
    spec = compile_cron("* * * * *", "UTC", utc(2025, 1, 1))
    plan = plan_fire(spec, utc(2025, 1, 1, 10, 0), utc(2025, 1, 1, 10, 3, 20), "skip", GRACE)
    assert plan.slot == utc(2025, 1, 1, 10, 3) and plan.next_fire_at == utc(2025, 1, 1, 10, 4)
