"""Remote access to the dashboard: a credential is required, and the viewer role cannot act.

A gunicorn of its own (``remote_web``) trusts one proxy (LONGRUN_PROXY_COUNT=1), so the browser's
``X-Forwarded-For: 203.0.113.9`` makes every request non-local.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Response, expect

from tests.browser.conftest import REMOTE_CLIENT, api_submit, wait_api_state

OPERATOR = {"username": "operator", "password": "op-secret"}
VIEWER = {"username": "viewer", "password": "view-secret"}

BULK_POST = """async () => {
    const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken'];
    const response = await fetch('/dashboard/bulk', {
        method: 'POST',
        headers: {'X-CSRFToken': token, 'HX-Request': 'true', 'Content-Type': 'application/x-www-form-urlencoded'},
        body: new URLSearchParams({action: 'retry', state: 'Failed', owner: 'anon:nobody'}),
    });
    return {status: response.status, type: response.headers.get('content-type'), body: await response.text()};
}"""


def remote_page(new_context, remote_web, **options) -> Page:
    return new_context(remote_web.url, extra_http_headers=REMOTE_CLIENT, **options).new_page()


def refused_navigation(page: Page, path: str) -> Response:
    """Open ``path`` expecting a Basic challenge; return the 401 the browser received.

    Chromium ends a navigation whose challenge it cannot answer with net::ERR_INVALID_AUTH_CREDENTIALS
    (rather than rendering the 401 body), so the answer is taken from the network events.
    """
    with page.expect_response(lambda r: urlsplit(r.url).path == path and r.request.is_navigation_request()) as answer:
        try:
            page.goto(path)
        except PlaywrightError as exc:
            assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc), exc
    return answer.value


def test_remote_request_without_credential_is_refused(new_context, remote_web, screenshot):
    anonymous = remote_page(new_context, remote_web)
    refused = refused_navigation(anonymous, "/dashboard/")
    assert refused.status == 401, refused.status
    assert refused.headers["www-authenticate"].startswith("Basic"), refused.headers
    expect(anonymous.locator("#counts")).to_have_count(0)
    screenshot(anonymous, "anonymous")
    problem = anonymous.request.get("/dashboard/", headers={"Accept": "application/json"})  # same context, same headers
    assert problem.status == 401 and problem.json()["type"] == "/problems/operator-required", problem.text()

    wrong = remote_page(new_context, remote_web, http_credentials={"username": "operator", "password": "nope"})
    assert refused_navigation(wrong, "/dashboard/").status == 401

    # Control: the same server answers a local request (no forwarded address) without a credential.
    local = new_context(remote_web.url).new_page()
    assert local.goto("/dashboard/").status == 200

    operator = remote_page(new_context, remote_web, http_credentials=OPERATOR)
    response = operator.goto("/dashboard/")
    assert response.status == 200, response.status
    expect(operator.locator("h1")).to_contain_text("signed in as operator")
    expect(operator.get_by_role("button", name="Retry all…")).to_be_visible()
    # The page's own polls carry the credential too: the counts keep refreshing.
    with operator.expect_response(lambda r: r.url.endswith("/dashboard/counts")) as poll:
        pass
    assert poll.value.status == 200
    screenshot(operator)


def test_viewer_sees_the_dashboard_but_cannot_act(new_context, remote_web, screenshot):
    viewer = remote_page(new_context, remote_web, http_credentials=VIEWER)
    job_id = api_submit(viewer, duration_seconds=0, steps=1)["id"]  # a finished job to look at
    wait_api_state(viewer, job_id, {"Succeeded"})

    response = viewer.goto("/dashboard/")
    assert response.status == 200, response.status
    expect(viewer.locator("h1")).to_contain_text("signed in as viewer (read-only)")
    expect(viewer.locator("#counts")).to_be_visible()
    table = viewer.locator("#job-table")
    expect(table).to_contain_text("matching job(s).")
    expect(table.get_by_role("button")).to_have_count(0)  # no Retry/Cancel/Delete all…
    screenshot(viewer, "dashboard")

    refused = viewer.evaluate(BULK_POST)
    assert refused["status"] == 403, refused
    assert "The viewer role can look but not act." in refused["body"], refused  # for the role, not for CSRF

    viewer.goto(f"/dashboard/jobs/{job_id}")
    expect(viewer.locator("#job-detail")).to_contain_text(job_id)
    expect(viewer.locator("#job-detail").get_by_role("button")).to_have_count(0)
    screenshot(viewer)

    # Control: the very same request and page as an operator.
    operator = remote_page(new_context, remote_web, http_credentials=OPERATOR)
    operator.goto(f"/dashboard/jobs/{job_id}")
    expect(operator.locator("#job-detail").get_by_role("button", name="Delete")).to_be_visible()
    allowed = operator.evaluate(BULK_POST)
    assert allowed["status"] == 200 and "Retry: 0 job(s) done." in allowed["body"], allowed
