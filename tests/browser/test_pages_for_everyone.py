"""Every page, on a phone and to axe-core: no sideways scrolling at 390 px (wide tables scroll in their own box),
and no serious or critical accessibility violation, on the real gunicorn, worker and data."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import api_submit, wait_api_state

AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"  # axe-core 4.14.1 from npm, for the tests only
PHONE = {"width": 390, "height": 844}


def pages_of(page: Page) -> dict[str, str]:
    """One of each page an owner and an operator see, with real content: a finished, a failed and a waiting job,
    a schedule, a webhook endpoint that never answers (so the job pages list failing deliveries)."""
    hook = page.request.post("/webhooks", data=json.dumps({"url": "http://127.0.0.1:9/never-answers"}),
                             headers={"Content-Type": "application/json", "Accept": "application/json"})
    assert hook.status == 201, hook.text()
    done = api_submit(page, duration_seconds=0.2, steps=2)
    failed = api_submit(page, duration_seconds=0, steps=1, fail_times=5)
    wait_api_state(page, done["id"], {"Succeeded"})
    wait_api_state(page, failed["id"], {"Failed"}, timeout=60)
    schedule = page.request.post("/schedules", data=json.dumps({"report": "demo", "cron": "0 7 * * MON"}),
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    assert schedule.status == 201, schedule.text()
    sid = schedule.json()["id"]
    return {
        "home": "/",
        "my jobs": "/jobs",
        "job page": f"/jobs/{done['id']}",
        "failed job page": f"/jobs/{failed['id']}",
        "my schedules": "/schedules",
        "schedule page": f"/schedules/{sid}",
        "my webhooks": "/webhooks",
        "dashboard": "/dashboard/",
        "dashboard failed": "/dashboard/?state=Failed",
        "dashboard job": f"/dashboard/jobs/{failed['id']}",
        "dashboard schedules": "/dashboard/schedules/",
        "not found": "/no-such-page",
    }


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes'][:3]]}"
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


@pytest.fixture
def phone(web, new_context, screenshot):
    # axe is injected as a script: the page's own CSP (our scripts only) would refuse it, so this context skips CSP.
    page = new_context(web.url, viewport=PHONE, bypass_csp=True).new_page()
    yield page
    screenshot(page)


def test_every_page_fits_a_phone_and_has_no_serious_accessibility_violation(phone: Page, screenshot):
    problems = []
    # Without a sideways scrollbar, the page box is as wide as the window whatever the content is (no
    # mobile emulation: a mobile browser would widen its layout viewport to the content and hide the problem).
    for name, path in pages_of(phone).items():
        phone.goto(path, wait_until="networkidle")
        width = phone.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")  # 390 when it fits
        if width[0] > width[1]:
            problems.append(f"{name} ({path}): {width[0]} px wide in a {width[1]} px window")
        problems += [f"{name} ({path}): {v}" for v in serious_violations(phone)]
        screenshot(phone, name)
    assert not problems, "\n".join(problems)
