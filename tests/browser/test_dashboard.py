"""The operator dashboard on a local request (role operator): live counts and a bulk retry."""
from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import api_events, api_submit, wait_api_state, wait_until_idle


def count(page: Page, state: str):
    return page.locator(f"#counts .n[data-state={state}]")


def shown_count(page: Page, state: str) -> int:
    return int(count(page, state).inner_text())


def report_count(page: Page, report: str, state: str):
    return page.locator(f"#counts .per-report a[data-report={report}][data-state={state}]")


def shown_report_count(page: Page, report: str, state: str) -> int:
    cell = report_count(page, report, state)
    return int(cell.inner_text()) if cell.count() else 0  # no row before the report's first job


def record_flashes(page: Page) -> None:
    """Collect the text of every flash message swapped into the page from now on."""
    page.evaluate("""() => {
        window.__flashes = [];
        new MutationObserver(records => records.forEach(r => r.addedNodes.forEach(n => {
            if (n.nodeType === 1) [n, ...n.querySelectorAll('.flash')].forEach(f => {
                if (f.classList && f.classList.contains('flash')) window.__flashes.push(f.textContent.trim()); });
        }))).observe(document.body, {subtree: true, childList: true});
    }""")


def test_counts_follow_a_running_job_without_reload(page: Page):
    wait_until_idle()  # nothing else may move the counters meanwhile
    page.goto("/dashboard/")
    expect(page.locator("h1")).to_contain_text("signed in as operator")
    processing0, succeeded0 = shown_count(page, "Processing"), shown_count(page, "Succeeded")
    demo_succeeded0 = shown_report_count(page, "demo", "Succeeded")
    page.evaluate("window.__noReload = 'still-here'")

    job_id = api_submit(page, duration_seconds=6, steps=6)["id"]
    # The counts fragment re-polls every 2 s: Processing goes up while the (only) job runs...
    expect(count(page, "Processing")).to_have_text(str(processing0 + 1))
    # ...then Succeeded goes up and Processing comes back down, in the totals and in the demo report's row.
    expect(count(page, "Succeeded")).to_have_text(str(succeeded0 + 1))
    expect(count(page, "Processing")).to_have_text(str(processing0))
    expect(report_count(page, "demo", "Succeeded")).to_have_text(str(demo_succeeded0 + 1))
    assert wait_api_state(page, job_id, {"Succeeded"})["state"] == "Succeeded"
    assert page.evaluate("window.__noReload") == "still-here"


def test_bulk_retry_of_failed_jobs(page: Page, screenshot):
    # Two jobs that fail every attempt (fail_times=5 > max_attempts=3; the backoff is 0.2 s in tests).
    ids = [api_submit(page, duration_seconds=0, steps=1, fail_times=5)["id"] for _ in range(2)]
    for job_id in ids:
        failed = wait_api_state(page, job_id, {"Failed"})
        assert failed["attempts"] == 3, failed

    # Whose jobs these are: this context's anonymous owner, as the dashboard shows it.
    page.goto(f"/dashboard/?q={ids[0]}")
    owner = page.locator("#job-table td.owner").inner_text().strip()
    assert owner.startswith("anon:"), owner

    page.goto("/dashboard/")
    filters = page.locator("#job-filters")
    filters.locator("input[name=owner]").fill(owner)
    filters.locator("select[name=state]").select_option("Failed")
    table = page.locator("#job-table")
    expect(table).to_contain_text("2 matching job(s).")
    expect(page).to_have_url(re.compile(r"state=Failed"))
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tbody tr .badge")).to_have_text(["Failed", "Failed"])

    table.get_by_role("button", name="Retry all…").click()
    confirm = page.locator("#bulk-confirm")
    expect(confirm).to_contain_text("Retry 2 job(s)")
    screenshot(page, "confirm")
    record_flashes(page)
    with page.expect_response(lambda r: r.url.endswith("/dashboard/bulk") and r.request.method == "POST") as answer:
        confirm.get_by_role("button", name="Confirm: retry 2").click()
    assert answer.value.status == 200, answer.value.text()
    # The result is shown (only briefly, see test_bulk_result_message_stays_visible).
    page.wait_for_function("() => window.__flashes.some(t => t.includes('Retry: 2 job(s) done.'))")

    for job_id in ids:
        # Requeued by the operator with a fresh attempt budget, and run again by the worker.
        def rerun(events):
            requeued = [e["seq"] for e in events if e["message"] == "Requeued by operator"]
            return requeued and any(e["seq"] > requeued[0] and e["state"] == "Processing" for e in events)

        body = wait_api_state(page, job_id, {"Failed"})
        events = api_events(page, job_id)
        while not rerun(events) or body["state"] != "Failed":
            page.wait_for_timeout(200)
            body, events = wait_api_state(page, job_id, {"Failed"}), api_events(page, job_id)
        assert body["attempts"] == 3, body  # counted again from 1: it failed all three attempts again
    # The table reloaded after the action and, once they failed again, lists them once more.
    filters.get_by_role("button", name="Filter").click()
    expect(table.locator("tbody tr")).to_have_count(2)


def test_bulk_result_message_stays_visible(page: Page):
    job_id = api_submit(page, duration_seconds=0, steps=1)["id"]
    wait_api_state(page, job_id, {"Succeeded"})
    page.goto(f"/dashboard/?q={job_id}")
    table = page.locator("#job-table")
    expect(table).to_contain_text("1 matching job(s).")
    table.get_by_role("button", name="Retry all…").click()
    confirm = page.locator("#bulk-confirm")
    expect(confirm).to_contain_text("Retry 1 job(s)")
    page.evaluate("document.getElementById('job-table').__old = true")
    with page.expect_response(lambda r: r.url.endswith("/dashboard/bulk") and r.request.method == "POST") as answer:
        confirm.get_by_role("button", name="Confirm: retry 1").click()
    assert "Retry: 0 job(s) done, 1 skipped" in answer.value.text()
    # Its HX-Trigger (jobs-changed) reloads the job table, after the answer was swapped in; once reloaded...
    page.wait_for_function("() => !document.getElementById('job-table').__old")
    # ...the answer to the operator's action must still be on screen.
    assert page.get_by_text("Retry: 0 job(s) done, 1 skipped (state did not allow it).").count() == 1
