"""Pages and fragments through the Flask test client: negotiation, escaping, CSRF, inline errors."""
import re
import uuid

import pytest

from app.extensions import db
from app.jobs.counters import record_transition
from app.jobs.lifecycle import append_event
from app.jobs.models import Job
from app.jobs.states import JobState

HTML = {"Accept": "text/html,application/xhtml+xml"}
HX = {"HX-Request": "true"}
EVIL = "<script>alert('x')</script>"


def _token(client) -> str:
    page = client.get("/", headers=HTML).get_data(as_text=True)
    return re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)


def _owner(client) -> str:
    with client.session_transaction() as session:
        return session["owner"]


@pytest.fixture
def hostile_job(app, client):
    """A job whose stored text is hostile, owned by ``client``."""
    client.get("/", headers=HTML)
    with app.app_context():
        job = Job(id=uuid.uuid4(), owner=_owner(client), report="demo", params={"note": EVIL}, state="Failed",
                  progress=40.0, progress_message=EVIL, error_type="ValueError", error_message=EVIL,
                  attempts=3, max_attempts=3, last_seq=0)
        db.session.add(job)
        record_transition(job, None, JobState.FAILED)  # keep the dashboard's counters true to the table
        append_event(job, "log", EVIL)
        db.session.commit()
        return str(job.id)


def test_home_has_the_three_panels_and_a_form_built_from_the_schema(client):
    response = client.get("/", headers=HTML)
    page = response.get_data(as_text=True)
    for title in ("V1 — blocking call", "V2 — polling", "V3 — live"):
        assert title in page
    assert 'name="duration_seconds"' in page and 'max="600"' in page and 'name="fail_times"' in page
    assert "/static/vendor/htmx-2.0.11.min.js" in page and "cdn" not in page.lower()


def test_one_url_three_renderings(client, hostile_job):
    page = client.get(f"/jobs/{hostile_job}", headers=HTML)
    fragment = client.get(f"/jobs/{hostile_job}", headers=HX)
    api = client.get(f"/jobs/{hostile_job}")
    assert page.mimetype == "text/html" and "<html" in page.get_data(as_text=True)
    assert fragment.get_data(as_text=True).startswith(f'<div id="job-{hostile_job}-status"')
    assert "<html" not in fragment.get_data(as_text=True)
    assert api.mimetype == "application/json" and api.get_json()["id"] == hostile_job
    for response in (page, fragment, api):
        assert "HX-Request" in response.headers["Vary"] and "Accept" in response.headers["Vary"]


def test_user_text_is_escaped_everywhere(client, hostile_job):
    for headers in (HTML, HX):
        body = client.get(f"/jobs/{hostile_job}", headers=headers).get_data(as_text=True)
        assert EVIL not in body
        assert "&lt;script&gt;" in body
    dashboard = client.get("/dashboard/?q=" + EVIL, headers=HTML).get_data(as_text=True)
    assert EVIL not in dashboard
    detail = client.get(f"/dashboard/jobs/{hostile_job}", headers=HTML).get_data(as_text=True)
    assert EVIL not in detail and "&lt;script&gt;" in detail


def test_final_fragment_stops_polling_and_running_one_polls(client, hostile_job):
    fragment = client.get(f"/jobs/{hostile_job}", headers=HX).get_data(as_text=True)
    assert "hx-trigger" not in fragment  # Failed: the poll ends here
    response = client.post("/reports/v2", headers={**HX, "X-CSRFToken": _token(client)})
    assert response.status_code == 202
    running = response.get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in running and "States seen" in running


def test_forms_and_htmx_need_the_csrf_token(client):
    client.get("/", headers=HTML)
    assert client.post("/jobs/new", data={"report": "demo"}).status_code == 403
    assert client.post("/reports/v2", headers=HX).status_code == 403
    assert client.post(f"/jobs/{uuid.uuid4()}/cancel", headers=HX).status_code == 403
    ok = client.post("/jobs/new", data={"report": "demo", "duration_seconds": "0", "steps": "1",
                                        "csrf_token": _token(client)})
    assert ok.status_code == 303 and ok.headers["Location"].startswith("/jobs/")


def test_form_errors_are_inline_and_create_nothing(client):
    token = _token(client)
    before = client.get("/jobs").get_json()["total"]
    response = client.post("/jobs/new", headers={**HX, "X-CSRFToken": token},
                           data={"report": "demo", "steps": "0", "duration_seconds": "abc"})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Steps must be at least 1" in body and "Duration seconds must be a number" in body
    assert 'value="abc"' in body  # what the user typed is kept
    assert client.get("/jobs").get_json()["total"] == before


def test_report_select_swaps_the_fields(client):
    body = client.get("/reports/form?report=sales_summary", headers=HX).get_data(as_text=True)
    assert 'name="group_by"' in body and 'type="date"' in body and 'name="steps"' not in body


def test_dashboard_refuses_remote_without_credential_and_viewer_cannot_act(app, client):
    remote = {"REMOTE_ADDR": "203.0.113.7"}
    response = client.get("/dashboard/", headers=HTML, environ_base=remote)
    assert response.status_code == 401 and "WWW-Authenticate" in response.headers
    app.config.update(LONGRUN_VIEWER_TOKEN="view-pw", LONGRUN_OPERATOR_TOKEN="op-pw")
    try:
        import base64

        viewer = {"Authorization": "Basic " + base64.b64encode(b"viewer:view-pw").decode()}
        page = client.get("/dashboard/", headers={**HTML, **viewer}, environ_base=remote)
        assert page.status_code == 200 and "read-only" in page.get_data(as_text=True)
        assert "Retry all" not in page.get_data(as_text=True)
        act = client.post(f"/dashboard/jobs/{uuid.uuid4()}/retry", headers={**viewer, "X-CSRFToken": _token(client)},
                          environ_base=remote)
        assert act.status_code == 403
        wrong = {"Authorization": "Basic " + base64.b64encode(b"operator:nope").decode()}
        assert client.get("/dashboard/", headers=wrong, environ_base=remote).status_code == 401
    finally:
        app.config.update(LONGRUN_VIEWER_TOKEN="", LONGRUN_OPERATOR_TOKEN="")


def test_bulk_preview_counts_before_confirming(client, hostile_job):
    body = client.get("/dashboard/bulk?action=delete&state=Failed&q=" + hostile_job, headers=HX).get_data(as_text=True)
    assert "Delete 1 job(s)" in body
    token = _token(client)
    done = client.post("/dashboard/bulk", headers={**HX, "X-CSRFToken": token},
                       data={"action": "delete", "state": "Failed", "q": hostile_job})
    assert "1 job(s) done" in done.get_data(as_text=True)
    assert client.get(f"/jobs/{hostile_job}").status_code in (404, 410)
