"""My schedules and the dashboard's Schedules view in a real browser, on the real gunicorn, worker and clock."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import psycopg2
from playwright.sync_api import Page, expect

from tests.browser.conftest import UUID_RE
from tests.conftest import TEST_DATABASE_URL


def api_schedule(page: Page, **body) -> dict:
    response = page.request.post("/schedules", data=json.dumps({"report": "demo", **body}),
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    assert response.status == 201, (response.status, response.text())
    return response.json()


def test_my_schedules_create_preview_run_pause_delete(page: Page, screenshot):
    page.goto("/")
    page.get_by_role("link", name="My schedules").click()
    expect(page.locator("h1")).to_have_text("My schedules")
    form = page.locator("#schedule-form")
    form.locator("input[name=duration_seconds]").fill("0.3")
    form.locator("input[name=steps]").fill("3")
    cron, zone = form.locator("input[name=cron]"), form.locator("input[name=timezone]")
    zone.fill("Europe/Berlin")
    cron.fill("0 7 * * MON")
    preview = page.locator("#cron-preview")
    expect(preview.locator(".description")).to_have_text("At 07:00, only on Monday (Europe/Berlin)")
    expect(preview.locator(".next-fires li")).to_have_count(5)
    for text in preview.locator(".next-fires li").all_inner_texts():
        assert re.match(r"Mon \d{4}-\d\d-\d\d 07:00 CES?T", text), text
    cron.fill("61 * * * *")  # live: the preview says what is wrong while typing
    expect(preview.locator(".field-error")).to_contain_text("not a valid cron expression")
    screenshot(page, "preview-error")

    # Submitting an invalid schedule answers inline errors and creates nothing.
    form.get_by_role("button", name="Create schedule").click()
    expect(page.locator("#schedule-form .field-error[data-field=cron]")).to_contain_text("Cron")
    assert page.request.get("/schedules", headers={"Accept": "application/json"}).json()["items"] == []

    page.locator("#schedule-form input[name=cron]").fill("@daily")
    expect(page.locator("#cron-preview .description")).to_have_text("At 00:00 (Europe/Berlin)")
    page.locator("#schedule-form").get_by_role("button", name="Create schedule").click()
    page.wait_for_url(re.compile(rf"/schedules/{UUID_RE}$"))
    schedule_id = page.url.rsplit("/", 1)[1]
    card = page.locator(f"#schedule-{schedule_id}")
    expect(card.locator(".badge").first).to_have_text("Enabled")
    expect(card.locator(".description")).to_have_text("At 00:00 (Europe/Berlin)")

    card.get_by_role("button", name="Run now").click()
    runs = page.locator(f"#schedule-{schedule_id}-runs")
    expect(runs.locator("tbody tr")).to_have_count(1)
    expect(runs.locator("tbody tr .badge")).to_have_text("Succeeded", timeout=30_000)  # the runs list polls
    expect(runs.get_by_role("link", name="Download the newest result")).to_be_visible()
    expect(page.locator(f"#schedule-{schedule_id} .last-run .badge")).to_be_visible()

    page.locator(f"#schedule-{schedule_id}").get_by_role("button", name="Pause").click()
    expect(page.locator(f"#schedule-{schedule_id} .badge").first).to_have_text("Paused")
    expect(page.locator(f"#schedule-{schedule_id} .next-run")).to_contain_text("paused")
    page.locator(f"#schedule-{schedule_id}").get_by_role("button", name="Resume").click()
    expect(page.locator(f"#schedule-{schedule_id} .badge").first).to_have_text("Enabled")
    screenshot(page, "schedule-page")

    page.get_by_role("link", name="← My schedules").click()
    expect(page.locator(f"#schedule-{schedule_id}")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f"#schedule-{schedule_id}").get_by_role("button", name="Delete").click()
    expect(page.locator(f"#schedule-{schedule_id}")).to_have_count(0)
    assert page.request.get(f"/schedules/{schedule_id}", headers={"Accept": "application/json"}).status == 404


def test_dashboard_schedules_view_filters_pauses_and_marks_overdue(page: Page, screenshot):
    on_time = api_schedule(page, cron="0 7 * * MON", timezone="Europe/Berlin")
    late = api_schedule(page, cron="*/5 * * * *", timezone="UTC", misfire="skip")
    ran = page.request.post(f"/schedules/{on_time['id']}/run", data="{}", headers={"Content-Type": "application/json"})
    assert ran.status == 202
    # Overdue: its slot passed 10 minutes ago and no clock can take it (we hold its row lock, as a hung clock would).
    conn = psycopg2.connect(TEST_DATABASE_URL)
    try:
        with conn.cursor() as cur:
            cur.execute("UPDATE schedules SET next_fire_at = %s WHERE id = %s",
                        (datetime.now(timezone.utc) - timedelta(minutes=10), late["id"]))
            conn.commit()
            cur.execute("SELECT 1 FROM schedules WHERE id = %s FOR UPDATE", (late["id"],))
            page.goto("/dashboard/schedules/")
            owner = page.locator(f"#admin-schedule-{on_time['id']} td.owner").inner_text().strip()
            filters = page.locator("#schedule-filters")
            filters.locator("input[name=owner]").fill(owner)
            table = page.locator("#schedule-table")
            expect(table.locator("tbody tr")).to_have_count(2)
            expect(page).to_have_url(re.compile(r"owner=anon"))
            late_row, on_time_row = table.locator(f"#admin-schedule-{late['id']}"), table.locator(f"#admin-schedule-{on_time['id']}")
            expect(late_row).to_have_class(re.compile(r"\boverdue\b"))
            expect(late_row.locator(".next-run")).to_contain_text("overdue")
            expect(on_time_row).not_to_have_class(re.compile(r"\boverdue\b"))
            expect(on_time_row.locator(".last-run .badge")).to_have_text(re.compile("Enqueued|Processing|Succeeded"))
            filters.locator("select[name=status]").select_option("overdue")
            expect(table.locator("tbody tr")).to_have_count(1)
            expect(table.locator("tbody tr")).to_have_id(f"admin-schedule-{late['id']}")
            screenshot(page, "overdue")
    finally:
        conn.rollback()
        conn.close()

    filters.locator("select[name=status]").select_option("")
    on_time_row = page.locator(f"#admin-schedule-{on_time['id']}")
    on_time_row.get_by_role("button", name="Pause").click()
    expect(on_time_row.locator(".status .badge")).to_have_text("Paused")
    assert page.request.get(f"/schedules/{on_time['id']}", headers={"Accept": "application/json"}).json()["enabled"] is False
    filters.locator("select[name=status]").select_option("paused")
    expect(page.locator("#schedule-table tbody tr")).to_have_count(1)
    page.locator(f"#admin-schedule-{on_time['id']}").get_by_role("button", name="Resume").click()
    expect(page.locator(f"#admin-schedule-{on_time['id']} .status .badge")).to_have_text("Enabled")
    assert page.request.get(f"/schedules/{on_time['id']}", headers={"Accept": "application/json"}).json()["enabled"] is True
