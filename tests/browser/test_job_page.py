"""The job page (/jobs/<id> in a browser): cancel a running job, and keep updating when the socket drops."""
from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

from playwright.sync_api import Page, WebSocketRoute, expect

from tests.browser.conftest import UUID_RE, api_events, api_job, api_submit


def start_from_form(page: Page, **values) -> str:
    """Fill the home page's report form (demo) and submit it; the app sends the browser to the job page."""
    page.goto("/")
    form = page.locator("#report-form")
    expect(form.locator("select[name=report]")).to_have_value("demo")
    for name, value in values.items():
        form.locator(f"input[name={name}]").fill(str(value))
    with page.expect_response(lambda r: r.request.is_navigation_request()
                              and re.fullmatch(rf"/jobs/{UUID_RE}", urlsplit(r.url).path)) as opened:
        form.get_by_role("button", name=re.compile("^Start")).click()
    # A plain browser navigation to /jobs/<id> (Accept: text/html...) that answers the HTML page, not JSON.
    accept = opened.value.request.all_headers()["accept"]
    assert accept.startswith("text/html"), accept
    assert opened.value.status == 200 and opened.value.headers["content-type"].startswith("text/html")
    page.wait_for_url(re.compile(rf"/jobs/{UUID_RE}$"))
    return urlsplit(page.url).path.rsplit("/", 1)[1]


def test_cancel_from_the_job_page_stops_a_running_job(page: Page):
    job_id = start_from_form(page, duration_seconds=60, steps=60)
    expect(page.locator("h1")).to_contain_text(job_id)
    expect(page.locator(".ws-state")).to_have_text("live")
    status = page.locator(f"#job-{job_id}-status")
    expect(status).to_have_attribute("data-state", "Processing")
    expect(status.locator(".step")).to_have_text(re.compile(r"step [1-9]\d* of 60"))  # it really runs

    status.get_by_role("button", name="Cancel").click()
    expect(status).to_have_attribute("data-state", "Cancelled", timeout=20_000)  # a few seconds; generous
    expect(status.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(status.get_by_role("button", name="Retry")).to_be_visible()
    timeline = page.locator(f"#job-{job_id}-notifications")
    expect(timeline).to_contain_text("Cancellation requested by owner")

    body = api_job(page, job_id)
    assert body["state"] == "Cancelled" and body["final"] and body["cancel_requested"], body
    assert body["progress"]["done"] < 60, body  # stopped early, not run to the end
    assert [e["state"] for e in api_events(page, job_id) if e["kind"] == "state"][-1] == "Cancelled"


def test_status_keeps_updating_by_polling_when_the_socket_drops(page: Page):
    job_id = api_submit(page, duration_seconds=6, steps=12)["id"]
    sockets: list[WebSocketRoute] = []

    def handle(ws: WebSocketRoute) -> None:
        sockets.append(ws)
        if len(sockets) == 1:
            ws.connect_to_server()  # the first socket is the real one, until we drop it
        else:
            ws.close(code=1011, reason="still down")  # reconnection attempts find the server still gone

    page.route_web_socket(re.compile(r"/notifications"), handle)
    polls: list[float] = []
    page.on("request", lambda r: urlsplit(r.url).path == f"/jobs/{job_id}" and r.method == "GET"
            and r.resource_type in ("xhr", "fetch") and polls.append(time.monotonic()))
    page.goto(f"/jobs/{job_id}")
    status = page.locator(f"#job-{job_id}-status")
    ws_state = page.locator(".ws-state")
    expect(ws_state).to_have_text("live")
    expect(status).to_have_attribute("data-state", "Processing")
    page.wait_for_function("id => document.getElementById(`job-${id}-status`).querySelector('progress').value > 0",
                           arg=job_id)
    assert polls == []  # live: pushed, not polled
    page.evaluate("window.__noReload = 'still-here'")

    dropped = time.monotonic()
    sockets[0].close(code=1006, reason="dropped")
    expect(ws_state).to_have_text("connection lost — polling until it is back")
    expect(status).to_have_attribute("data-state", "Succeeded")
    expect(status.locator("progress")).to_have_js_property("value", 100)
    expect(status.get_by_role("link", name="Download result")).to_be_visible()
    assert [t for t in polls if t > dropped], "the status reached its final state without polling"
    assert page.evaluate("window.__noReload") == "still-here"
    print("sockets", len(sockets), "polls", len(polls))


def test_elapsed_ticks_between_events_then_live_ends_and_times_are_readable(page: Page):
    # Few events far apart (2 steps in 5 s): the elapsed time moves between them anyway.
    job_id = api_submit(page, duration_seconds=5, steps=2)["id"]
    page.goto(f"/jobs/{job_id}")
    status = page.locator(f"#job-{job_id}-status")
    expect(status).to_have_attribute("data-state", "Processing")
    elapsed = status.locator(".elapsed")
    expect(elapsed).to_have_text(re.compile(r"\d+\.\d s elapsed"))
    seen = {elapsed.inner_text()}
    for _ in range(3):
        page.wait_for_timeout(700)
        seen.add(elapsed.inner_text())
    assert len(seen) >= 3, seen  # it ticked, with no event in between
    expect(page.locator(".ws-state")).to_have_text("live")
    expect(status).to_have_attribute("data-state", "Succeeded", timeout=30_000)
    expect(page.locator(".ws-state")).to_have_text("finished")  # nothing more will come: not "live" any more
    expect(status.locator(".badge")).to_have_css("color", "rgb(26, 127, 55)")  # the state's colour
    # Readable times: no microseconds, the reader's local time, the exact instant in the title.
    created = page.locator("p.muted time").first
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", created.get_attribute("title"))
    assert not re.search(r"\.\d{3,}", created.inner_text()) and "UTC" not in created.inner_text()
    for stamp in page.locator(f"#job-{job_id}-notifications time").all():
        assert re.fullmatch(r"\d\d:\d\d:\d\d( [AP]M)?", stamp.inner_text()), stamp.inner_text()


def test_a_failed_job_shows_its_badge_in_red_in_every_list(page: Page):
    job_id = api_submit(page, duration_seconds=0, steps=1, fail_times=5)["id"]
    deadline = time.monotonic() + 60
    while api_job(page, job_id)["state"] != "Failed":
        assert time.monotonic() < deadline, "the job did not fail"
        page.wait_for_timeout(200)
    red = "rgb(207, 34, 46)"
    for path in (f"/jobs/{job_id}", "/jobs", "/dashboard/?state=Failed"):
        page.goto(path)
        badge = page.locator(".badge", has_text="Failed").first
        expect(badge).to_have_css("color", red)


def test_state_changes_are_announced_to_screen_readers(page: Page):
    job_id = api_submit(page, duration_seconds=2, steps=2)["id"]
    page.goto(f"/jobs/{job_id}")
    announcer = page.locator("#announcer")
    expect(announcer).to_have_attribute("aria-live", "polite")
    expect(page.locator(f"#job-{job_id}-status")).to_have_attribute("data-state", "Succeeded", timeout=30_000)
    expect(announcer).to_have_text("demo job: Succeeded")  # once, at the change: not at every progress step


def tab_to(page: Page, selector: str, limit: int = 60) -> None:
    """Press Tab until ``selector`` has the focus (only the keyboard, as a person without a mouse would)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} never got the focus by Tab")


def test_start_and_cancel_a_report_with_the_keyboard_alone(page: Page):
    page.goto("/")
    tab_to(page, "#report-form input[name=duration_seconds]")
    page.keyboard.press("Control+A")
    page.keyboard.type("60")
    tab_to(page, "#report-form button")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/jobs/{UUID_RE}$"))
    job_id = urlsplit(page.url).path.rsplit("/", 1)[1]
    status = page.locator(f"#job-{job_id}-status")
    expect(status).to_have_attribute("data-state", "Processing")
    tab_to(page, f"#job-{job_id}-status button.danger")
    page.keyboard.press("Enter")
    expect(status).to_have_attribute("data-state", "Cancelled", timeout=20_000)
