"""Browser fixtures: one headless Chromium per session, a fresh context (= a new anonymous owner) per test.

The app runs as in production: the session's gunicorn (``web``) and prefork Celery worker (``worker``),
real PostgreSQL and Redis. Every test leaves a full-page screenshot in test-artifacts/screenshots/.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator

import psycopg2
import pytest
import redis
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright

from app.channels import Namespace
from app.config import default_instance
from tests.conftest import ARTIFACTS, TEST_DATABASE_URL, TEST_REDIS_URL, WebServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ARTIFACTS / "screenshots"

# Generous: the machine may be busy with benchmarks. These bound waits, they do not time anything.
EXPECT_TIMEOUT_MS = 30_000
ACTION_TIMEOUT_MS = 30_000
expect.set_options(timeout=EXPECT_TIMEOUT_MS)

# Remote access to the dashboard: a client address that is not loopback, through one trusted proxy.
REMOTE_ENV = {"LONGRUN_PROXY_COUNT": "1", "LONGRUN_OPERATOR_TOKEN": "op-secret", "LONGRUN_VIEWER_TOKEN": "view-secret"}
REMOTE_CLIENT = {"X-Forwarded-For": "203.0.113.9"}

UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, never a downloaded one."""
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


@pytest.fixture
def screenshot(request) -> Callable[[Page, str | None], None]:
    """``screenshot(page)`` saves ``<test-name>.png``; ``screenshot(page, "label")`` ``<test-name>-label.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Page, label: str | None = None) -> None:
        name = _safe(request.node.name) + (f"-{_safe(label)}" if label else "")
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return take


@pytest.fixture
def new_context(browser) -> Iterator[Callable[..., BrowserContext]]:
    """A factory of fresh contexts (own cookie jar: a new anonymous owner each); all closed after the test."""
    contexts: list[BrowserContext] = []

    def make(base_url: str, **options) -> BrowserContext:
        context = browser.new_context(base_url=base_url, **{"viewport": {"width": 1280, "height": 900}, **options})
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(web, new_context, screenshot) -> Iterator[Page]:
    """A page in a fresh context on the session's gunicorn; its final state is screenshotted."""
    page = new_context(web.url).new_page()
    yield page
    if not page.is_closed():
        screenshot(page)


@pytest.fixture(scope="session")
def remote_web(app, worker) -> Iterator[WebServer]:
    """A second gunicorn behind 'one proxy', with operator and viewer credentials configured."""
    server = WebServer("browser-remote", env=REMOTE_ENV)
    yield server
    server.stop()


# -- helpers -------------------------------------------------------------------------------------------------

def shorten_demo(page: Page, path: str, **params) -> None:
    """Make the panel button at ``path`` (which posts no body: a 10 s demo) start a shorter demo instead.

    Only the body changes: the request stays the panel's own htmx POST with its cookie and CSRF header.
    """
    def handle(route: Route) -> None:
        headers = {**route.request.all_headers(), "content-type": "application/json"}
        headers.pop("content-length", None)
        route.continue_(post_data=json.dumps({"report": "demo", "params": params}), headers=headers)

    page.route(re.compile(rf"^[^?#]*{re.escape(path)}$"), handle)


def api_job(page: Page, job_id: str) -> dict:
    """The job as the JSON API shows it to this page's owner (same cookie jar)."""
    response = page.request.get(f"/jobs/{job_id}", headers={"Accept": "application/json"})
    assert response.ok, (response.status, response.text())
    return response.json()


def api_events(page: Page, job_id: str) -> list[dict]:
    response = page.request.get(f"/jobs/{job_id}/events", headers={"Accept": "application/json"})
    assert response.ok, (response.status, response.text())
    return response.json()["items"]


def api_submit(page: Page, **params) -> dict:
    """Start a demo job for this page's owner through the JSON API."""
    response = page.request.post("/reports/v2", data=json.dumps({"report": "demo", "params": params}),
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    assert response.status == 202, (response.status, response.text())
    return response.json()


def wait_api_state(page: Page, job_id: str, states: set[str], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    body = api_job(page, job_id)
    while body["state"] not in states:
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} did not reach {states} in {timeout}s: {body['state']}")
        page.wait_for_timeout(200)
        body = api_job(page, job_id)
    return body


def wait_until_idle(timeout: float = 90) -> None:
    """Until no job runs, retries or waits in the queue (other tests' jobs must not move the counters)."""
    queue = redis.Redis.from_url(TEST_REDIS_URL)
    deadline = time.monotonic() + timeout
    busy: tuple = ()
    while time.monotonic() < deadline:
        with psycopg2.connect(TEST_DATABASE_URL) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM jobs WHERE state IN ('Processing', 'Retrying')")
            active = cur.fetchone()[0]
        waiting = queue.llen(Namespace(default_instance(TEST_DATABASE_URL)).queue_key("longrun"))
        busy = (active, waiting)
        if busy == (0, 0):
            return
        time.sleep(0.2)
    raise AssertionError(f"the worker did not become idle within {timeout}s (active, queued) = {busy}")
