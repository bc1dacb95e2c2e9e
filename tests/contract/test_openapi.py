"""The OpenAPI document matches the routes, and the running app matches the document under fuzzing."""
import os

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import WebServer, isolated_database

pytestmark = pytest.mark.slow  # fuzzes a real server

FUZZ_EXAMPLES = int(os.environ.get("LONGRUN_FUZZ_EXAMPLES", "20"))  # bench/fuzz_long runs more


def _flask_path(rule: str) -> str:
    for name in ("job_id", "schedule_id", "endpoint_id", "delivery_id"):
        rule = rule.replace(f"<{name}>", "{" + name + "}")
    return rule


def test_document_lists_exactly_the_api_routes(app, client):
    from app.api.openapi import DOCUMENTED_BLUEPRINTS as API_BLUEPRINTS
    from app.api.openapi import NOT_DOCUMENTED as NOT_IN_DOCUMENT

    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in API_BLUEPRINTS and rule.rule not in NOT_IN_DOCUMENT:
            routes.setdefault(_flask_path(rule.rule), set()).update(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    documented = {path: {m for m in ops if m in {"get", "post", "delete", "put", "patch"}} for path, ops in doc["paths"].items()}
    assert documented == routes


def test_an_api_route_without_a_description_fails_the_document_loudly():
    from app import create_app
    from app.api.openapi import build_document

    other = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    other.add_url_rule("/jobs/<job_id>/pin", endpoint="api.pin_job", view_func=lambda job_id: "", methods=["POST"])
    with other.test_request_context(), pytest.raises(LookupError, match=r"POST /jobs/<job_id>/pin \(api.pin_job\)"):
        build_document()


@pytest.fixture(scope="module")
def fuzz_target(app):
    """Its own server and database; its queue has no worker, so fuzzed jobs just wait."""
    web = WebServer("fuzz", {"DATABASE_URL": isolated_database("fuzz"), "LONGRUN_QUEUE": "fuzz-nobody",
                             "LONGRUN_V1_MAX_SECONDS": "0.2", "LONGRUN_V1_SECONDS": "0.1", "LONGRUN_MAX_JOBS_PER_MINUTE": "1000"})
    yield web
    web.stop()


# Fields whose validity the server decides at run time, so a schema-valid value may still answer 422 naming
# them (and only them): a due time relative to now, a cron expression's fields and interval, a change checked
# against the stored report. Every other schema-valid request must still be accepted.
RUNTIME_CHECKED = {
    ("POST", "/reports/v2"): ("run_at", "delay_seconds"), ("POST", "/reports/v3"): ("run_at", "delay_seconds"),
    ("POST", "/schedules"): ("cron",), ("PATCH", "/schedules/{schedule_id}"): ("cron", "report", "params"),
    # A URL's host must resolve (to public addresses unless the operator allows others): only the server knows.
    ("POST", "/webhooks"): ("url",),
}


def _check(case, base_url: str) -> None:
    runtime = RUNTIME_CHECKED.get((case.method.upper(), case.path))
    excluded = [positive_data_acceptance] if runtime else []
    response = case.call_and_validate(base_url=base_url, session=requests.Session(), excluded_checks=excluded)
    if runtime and response.status_code == 422 and case.meta.generation.mode.is_positive:
        fields = [e["field"] for e in response.json().get("errors", [])]
        assert fields and all(f.split(".")[0] in runtime for f in fields), (case.path, response.text[:300])
    assert response.status_code < 500 or response.status_code == 503, response.text[:300]
    if response.status_code >= 400:
        content_type = (response.headers.get("content-type") or [""])[0]  # schemathesis: lower-case keys, lists
        assert content_type.startswith("application/problem+json"), (
            case.method, case.path, case.headers, response.status_code, dict(response.headers), response.text[:300])
        assert "Traceback" not in response.text and "/work/" not in response.text


def test_api_holds_its_contract_under_fuzzing(fuzz_target):
    """Every operation, bounded examples each: no 5xx, responses match the schema, errors are problem+json."""
    schema = schemathesis.openapi.from_url(fuzz_target.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        def run(case):
            _check(case, fuzz_target.url)

        run()
