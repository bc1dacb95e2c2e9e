"""Desktop alerts (issue 15): opted in, a job on the page that ends while the tab is hidden raises a
notification (the Notification API, from the socket already open); not opted in, nothing."""
from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import api_submit, wait_api_state

# The tab is hidden (a real background tab cannot be made in headless Chromium); every Notification made is
# recorded, then made as usual.
HIDDEN_AND_RECORDED = """
Object.defineProperty(document, "hidden", {get: () => true});
Object.defineProperty(document, "visibilityState", {get: () => "hidden"});
window.__notes = [];
const Real = window.Notification;
window.Notification = class extends Real {
  constructor(title, options) { super(title, options); window.__notes.push({title, body: options && options.body}); }
};
"""


def open_job(page: Page, seconds: float) -> dict:
    job = api_submit(page, duration_seconds=seconds, steps=4)
    page.goto(f"/jobs/{job['id']}")
    expect(page.locator(".ws-state")).to_have_text("live")
    return job


def test_an_opted_in_hidden_tab_is_told_when_its_job_ends(web, new_context, screenshot):
    context = new_context(web.url, permissions=["notifications"])
    context.add_init_script(HIDDEN_AND_RECORDED)
    page = context.new_page()

    quiet = open_job(page, 1.5)  # not opted in yet: nothing
    wait_api_state(page, quiet["id"], {"Succeeded"})
    expect(page.locator(".job-status")).to_have_attribute("data-state", "Succeeded")
    assert page.evaluate("window.__notes") == []

    toggle = page.locator("#notify-toggle")
    expect(toggle).to_have_text("Desktop alerts: off")
    toggle.click()
    expect(toggle).to_have_text("Desktop alerts: on")
    expect(toggle).to_have_attribute("aria-pressed", "true")

    job = open_job(page, 1.5)  # the choice is kept (localStorage) across pages
    expect(page.locator("#notify-toggle")).to_have_text("Desktop alerts: on")
    wait_api_state(page, job["id"], {"Succeeded"})
    page.wait_for_function("window.__notes.length > 0")
    assert page.evaluate("window.__notes") == [{"title": "demo succeeded", "body": f"Job {job['id']}"}]
    screenshot(page, "alerted")

    page.locator("#notify-toggle").click()  # and off again
    expect(page.locator("#notify-toggle")).to_have_text("Desktop alerts: off")
