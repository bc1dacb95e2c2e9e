"""The seed's three panels on the home page, in a real browser: V1 blocking, V2 polling, V3 live."""
from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

from playwright.sync_api import Page, expect

from tests.browser.conftest import shorten_demo


def job_requests(page: Page) -> list[tuple[float, str, str]]:
    """Every request the page makes from now on to a single job, as (monotonic time, method, path)."""
    seen: list[tuple[float, str, str]] = []

    def record(request) -> None:
        path = urlsplit(request.url).path
        if re.fullmatch(r"/jobs/[0-9a-f-]{36}", path):
            seen.append((time.monotonic(), request.method, path))

    page.on("request", record)
    return seen


def test_v1_shows_the_request_in_flight_then_completed_with_its_duration(page: Page):
    page.goto("/")
    panel = page.locator("#panel-v1")
    button = panel.get_by_role("button", name=re.compile(r"^Run"))
    expect(button).to_have_text("Run (takes 1 s)")  # LONGRUN_V1_SECONDS=1 in the tests
    # Block for 3 s instead, so a loaded machine cannot finish the request before we look at it.
    page.route("**/reports/v1", lambda route: route.continue_(url=route.request.url + "?duration_seconds=3"))
    busy = panel.locator("#v1-busy")
    expect(busy).to_be_hidden()

    button.click()
    # While the server works inside the request: the indicator shows and the button is disabled.
    expect(busy).to_be_visible()
    expect(busy).to_have_text(re.compile("Request in flight"))
    expect(button).to_be_disabled()

    result = panel.locator("#v1-result .done")
    expect(result).to_have_text(re.compile(r"^Completed in \d+\.\d s$"))
    seconds = float(re.search(r"in (\d+\.\d) s", result.inner_text()).group(1))
    assert 2.9 <= seconds < 60, seconds  # the demo ran for the asked 3 s, inside the request
    expect(busy).to_be_hidden()
    expect(button).to_be_enabled()


def test_v2_shows_polled_states_and_stops_polling_at_the_final_state(page: Page):
    page.goto("/")
    shorten_demo(page, "/reports/v2", duration_seconds=4, steps=8)
    polls = job_requests(page)
    panel = page.locator("#panel-v2")
    # Record every state the polled fragment shows (each poll swaps the whole fragment).
    page.evaluate("""() => {
        window.__v2States = [];
        const note = () => document.querySelectorAll('#v2-job .job-status').forEach(s => {
            const st = s.dataset.state; if (window.__v2States.at(-1) !== st) window.__v2States.push(st); });
        new MutationObserver(note).observe(document.querySelector('#v2-job'), {subtree: true, childList: true, attributes: true});
    }""")

    panel.get_by_role("button", name="Start job").click()
    status = panel.locator(".job-status")
    expect(status).to_have_count(1)
    job_id = status.get_attribute("id").removeprefix("job-").removesuffix("-status")
    expect(panel.get_by_role("link", name=job_id)).to_be_visible()

    expect(status).to_have_attribute("data-state", "Succeeded")
    final_shown = time.monotonic()
    expect(status.locator("progress")).to_have_js_property("value", 100)
    seen = status.locator(".states .state-seen").all_inner_texts()
    assert seen[0] == "Enqueued" and seen[-1] == "Succeeded" and "Processing" in seen, seen
    expect(status.locator(".states")).to_contain_text("States seen:")
    assert "Processing" in page.evaluate("window.__v2States"), page.evaluate("window.__v2States")
    expect(status.get_by_role("link", name="Download result")).to_be_visible()

    polled = [p for p in polls if p[2] == f"/jobs/{job_id}" and p[1] == "GET"]
    assert len(polled) >= 2, polled  # it did poll, once a second, while the job ran
    page.wait_for_timeout(3500)  # deliberately idle: nothing may poll any more
    after = [p for p in polls if p[2] == f"/jobs/{job_id}" and p[0] > final_shown + 0.1]
    assert after == [], f"{len(after)} request(s) to /jobs/{job_id} after the final state was shown"
    expect(status).not_to_have_attribute("hx-trigger", re.compile("."))


def test_v3_progress_reaches_100_and_notifications_arrive_without_reload(page: Page):
    navigations: list[str] = []
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto("/")
    page.on("framenavigated", lambda frame: frame == page.main_frame and navigations.append(frame.url))
    shorten_demo(page, "/reports/v3", duration_seconds=3, steps=6)
    polls = job_requests(page)
    page.evaluate("window.__noReload = 'still-here'")

    panel = page.locator("#panel-v3")
    panel.get_by_role("button", name="Start job").click()
    status = panel.locator(".job-status")
    expect(status).to_have_count(1)
    job_id = status.get_attribute("id").removeprefix("job-").removesuffix("-status")
    expect(panel.locator(".ws-state")).to_have_text("live")

    expect(status).to_have_attribute("data-state", "Succeeded")
    expect(status.locator("progress")).to_have_js_property("value", 100)
    expect(status.locator(".percent")).to_have_text("100%")
    notifications = panel.locator(f"#job-{job_id}-notifications")
    expect(notifications).to_contain_text(f"Started processing job with Id: {job_id}")
    expect(notifications).to_contain_text(f"Completed processing job with Id: {job_id}")
    expect(status.get_by_role("link", name="Download result")).to_be_visible()

    assert page.evaluate("window.__noReload") == "still-here"  # the same document all along
    assert navigations == [], navigations
    assert any(urlsplit(u).path == "/notifications" and f"job={job_id}" in u for u in sockets), sockets
    assert [p for p in polls if p[2] == f"/jobs/{job_id}"] == []  # pushed, not polled
