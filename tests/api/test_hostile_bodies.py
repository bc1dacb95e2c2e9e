"""Hostile request bodies against a real gunicorn: a clear 4xx problem, no traceback, nothing created."""
import http.client
import json
from urllib.parse import urlsplit

import pytest

from app.api.body import MAX_JSON_DEPTH, MalformedJson, parse_json
from tests.conftest import TEST_DB, WebServer
from tests.realtime.wsclient import Owner

LIMIT = 64 * 1024  # LONGRUN_MAX_BODY_BYTES (default)


@pytest.fixture(scope="module")
def server(app, worker):
    """A web server of this module's own, so its log holds only what these requests caused."""
    web = WebServer(f"hostile-bodies-{TEST_DB}")
    yield web
    web.stop()


def post_chunked(base: str, path: str, chunks: list[bytes], cookie: str = "") -> tuple[int, str, dict]:
    """POST with ``Transfer-Encoding: chunked`` (no Content-Length), as streaming clients send."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked", "Accept": "application/json"}
    if cookie:
        headers["Cookie"] = cookie
    conn.request("POST", path, body=iter(chunks), headers=headers, encode_chunked=True)
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    return response.status, response.getheader("Content-Type"), body


def test_deeply_nested_json_is_a_400_problem_without_traceback(server):
    owner = Owner(server.url)
    for body in ["[" * 60_000, '{"a":' * 10_000 + "1" + "}" * 10_000, "[" * 500 + "]" * 500]:
        assert len(body) < LIMIT
        response = owner.http.post(server.url + "/reports/v2", data=body, timeout=10,
                                   headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.headers["Content-Type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"] == "/problems/malformed-json"
        assert problem["detail"] == f"The body nests deeper than {MAX_JSON_DEPTH} levels."
    assert owner.http.get(server.url + "/jobs", timeout=5).json()["total"] == 0
    log = server.log_path.read_text()
    assert "Traceback" not in log and "RecursionError" not in log, log[-3000:]


def test_chunked_body_over_the_limit_is_a_413_like_an_oversized_content_length(server):
    owner = Owner(server.url)
    cookie = "; ".join(f"{k}={v}" for k, v in owner.http.cookies.items())
    valid = json.dumps({"report": "demo", "params": {"duration_seconds": 0, "steps": 1}}).encode()
    # Before: cut at 64 KiB and parsed, so trailing whitespace past the limit created a job (202).
    padded = [valid] + [b" " * 8192] * 10
    status, content_type, problem = post_chunked(server.url, "/reports/v2", padded, cookie)
    sized = owner.http.post(server.url + "/reports/v2", data=b"".join(padded), timeout=10,
                            headers={"Content-Type": "application/json", "Accept": "application/json"})
    assert sized.status_code == 413
    assert (status, content_type, problem) == (413, "application/problem+json", sized.json())
    assert problem["detail"] == f"The request body is larger than the limit of {LIMIT} bytes."
    assert owner.http.get(server.url + "/jobs", timeout=5).json()["total"] == 0  # nothing created
    # Chunked bodies within the limit still work, up to exactly the limit.
    exact = valid + b" " * (LIMIT - len(valid))
    status, _, job = post_chunked(server.url, "/reports/v2", [exact[:40_000], exact[40_000:]], cookie)
    assert status == 202, job
    assert owner.http.get(server.url + "/jobs", timeout=5).json()["total"] == 1


@pytest.mark.parametrize("raw, reason", [
    (b"\xff\xfe", "is not valid UTF-8"),
    ("[1,", "is not valid JSON: Expecting value at line 1, column 4"),
    ("[" * 100_000, f"nests deeper than {MAX_JSON_DEPTH} levels"),
    ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), f"nests deeper than {MAX_JSON_DEPTH} levels"),
])
def test_parse_json_names_what_is_wrong(raw, reason):
    with pytest.raises(MalformedJson) as info:
        parse_json(raw)
    assert str(info.value) == reason


def test_parse_json_accepts_nesting_up_to_the_limit():
    deepest = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert parse_json(deepest.encode()) == json.loads(deepest)
    assert parse_json('{"jobs": [{"a": [1]}]}') == {"jobs": [{"a": [1]}]}
