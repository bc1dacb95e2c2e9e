"""Every mistake answers application/problem+json with a message a person can act on."""
import pytest

LONG = "x" * (70 * 1024)


@pytest.fixture
def client(app):
    """Every answer here comes before any job exists: no Celery worker needed (these run in the fast layer)."""
    return app.test_client()


def _problem(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def test_unknown_report(client):
    body = _problem(client.post("/reports/v2", json={"report": "nope"}), 422)
    assert "no report named 'nope'" in body["detail"] and "demo" in body["detail"]


def test_bad_parameter_names_the_field(client):
    body = _problem(client.post("/reports/v2", json={"params": {"steps": 0}}), 422)
    assert body["errors"] == [{"field": "params.steps", "message": "must be at least 1"}]


def test_malformed_json(client):
    body = _problem(client.post("/reports/v2", data="{bad", content_type="application/json"), 400)
    assert "not valid JSON" in body["detail"] and "line 1" in body["detail"]


def test_wrong_content_type(client):
    body = _problem(client.post("/reports/v2", data="report=demo", content_type="application/x-www-form-urlencoded"), 415)
    assert "application/json" in body["detail"]


def test_oversized_body(client):
    _problem(client.post("/reports/v2", data='{"report": "' + LONG + '"}', content_type="application/json"), 413)


def test_body_must_be_an_object_without_unknown_fields(client):
    _problem(client.post("/reports/v2", json=[1, 2]), 422)
    body = _problem(client.post("/reports/v2", json={"report": "demo", "extra": 1}), 422)
    assert body["errors"][0]["field"] == "extra"
    _problem(client.post("/reports/v2", json={"report": 5}), 422)


@pytest.mark.parametrize("path", ["/jobs/00000000-0000-0000-0000-000000000000", "/jobs/not-a-uuid",
                                  "/jobs/not-a-uuid/result", "/jobs/00000000-0000-0000-0000-000000000000/events"])
def test_unknown_job(client, path):
    _problem(client.get(path), 404)


def test_unknown_route_and_wrong_method(client):
    _problem(client.get("/no/such/thing"), 404)
    body = _problem(client.put("/reports/v2"), 405)
    assert body["type"] == "/problems/method-not-allowed"


def test_bad_query_parameters(client):
    _problem(client.get("/jobs?state=done"), 422)
    _problem(client.get("/jobs?page=0"), 422)
    _problem(client.get("/jobs?per_page=abc"), 422)
    _problem(client.get("/jobs?report=nope"), 422)
    _problem(client.get("/jobs/00000000-0000-0000-0000-000000000000/events?after_seq=-1"), 404)
    _problem(client.get("/reports/v1?duration_seconds=9999"), 422)


def test_bad_idempotency_key(client):
    _problem(client.post("/reports/v2", json={}, headers={"Idempotency-Key": "x" * 300}), 422)


def test_bad_bearer_token(client):
    _problem(client.get("/jobs", headers={"Authorization": "Bearer lr_nope"}), 401)
    _problem(client.get("/jobs", headers={"Authorization": "Basic abc"}), 401)


def test_browser_gets_a_readable_page(client):
    response = client.get("/jobs/not-a-uuid", headers={"Accept": "text/html"})
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert b"There is no job with this id" in response.data
