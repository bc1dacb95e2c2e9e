"""The reads bench_history.py times, found from the running app: its URLs, filters and paging links.

Paging links are followed, not built: the dashboard's "older" link and the API's ``links.next`` are taken
from each answer, so the bench keeps working whatever the cursor parameters are called.
"""
from __future__ import annotations

import html
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from history_seed import BIG_OWNER, SPAN_DAYS, SeedPlan


def _deepest_pages() -> tuple[int, int]:
    """The deepest ``page=`` the dashboard and ``GET /jobs`` still serve (the issue measured page=2000)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    try:  # page= now reaches the newest SKIP_LIMIT jobs of a list only; past them it answers 422
        from app.dashboard.queries import PAGE_SIZE
        from app.jobs.cursor import SKIP_LIMIT
    except ImportError:
        return 2000, 2000
    return SKIP_LIMIT // PAGE_SIZE, SKIP_LIMIT // 20  # GET /jobs: per_page 20 by default


DASHBOARD_PAGE, API_PAGE = _deepest_pages()
# A page the owner's list has at every size (it holds 5,000 jobs at 10 k, 100,000 from 200 k on): the same
# request at every size, for the ratio. API_PAGE is past the end of that owner's list at 10 k.
EVERY_SIZE_PAGE = 240


@dataclass
class Read:
    """One read to time: a name for the tables, a path, headers (a bearer token for the API)."""

    name: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    note: str = ""  # what the name leaves out, e.g. how many links were followed to reach the page


class _Links(HTMLParser):
    """Every <a href> of a page with its rel and text."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str]] = []
        self._open: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            a = {k: v or "" for k, v in attrs}
            self._open = {"href": a.get("href", ""), "rel": a.get("rel", ""), "text": ""}
            self.links.append(self._open)

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._open = None


def older_link(page: str) -> str | None:
    """The dashboard's link to the next older page of the list (rel=next, or a link saying older/next)."""
    parser = _Links()
    parser.feed(page)
    for link in parser.links:
        words = f"{link['rel']} {link['text']}".lower()
        if link["href"] and ("older" in words or re.search(r"\bnext\b", words)):
            return html.unescape(link["href"])
    return None


def follow(site: Any, path: str, hops: int, nxt: Any, headers: dict | None = None) -> tuple[str | None, int]:
    """Follow ``nxt(response)`` from ``path`` up to ``hops`` times: (the last URL reached, hops made)."""
    url, made = path, 0
    for _ in range(hops):
        r = site.get(url, headers)
        link = nxt(r) if r.status_code == 200 else None
        if not link:
            break
        url, made = link, made + 1
    return (url if made else None), made


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M")


def dashboard_reads(site: Any, terms: dict[str, str], hops: int) -> list[Read]:
    """The dashboard: no filter, each filter, combined, deep pages, counts, charts, a job, search."""
    now = datetime.now(timezone.utc)
    mid = now - timedelta(days=SPAN_DAYS / 2)
    hour = {"from": _iso(mid - timedelta(minutes=30)), "to": _iso(mid + timedelta(minutes=30))}
    day = {"from": _iso(mid - timedelta(hours=12)), "to": _iso(mid + timedelta(hours=12))}
    q = lambda **kw: "/dashboard/?" + urlencode(kw)  # noqa: E731
    reads = [
        Read("dashboard", "/dashboard/"),
        Read("dashboard state=Failed", q(state="Failed")),
        Read("dashboard report=sales_summary", q(report="sales_summary")),
        Read("dashboard owner=<100k jobs>", q(owner=BIG_OWNER)),
        Read("dashboard time range (1 h)", q(**hour)),
        Read("dashboard combined", q(state="Failed", report="sales_summary", owner=BIG_OWNER, **day)),
    ]
    deep, made = follow(site, "/dashboard/", hops, lambda r: older_link(r.text))
    if deep:
        reads.append(Read("dashboard deep (older links)", deep, note=f"×{made}"))
    deep, made = follow(site, q(state="Failed"), hops, lambda r: older_link(r.text))
    if deep:
        reads.append(Read("dashboard state=Failed deep", deep, note=f"×{made}"))
    reads.append(Read(f"dashboard page={DASHBOARD_PAGE}", q(page=DASHBOARD_PAGE)))
    reads += [Read("dashboard counts", "/dashboard/counts"), *chart_reads(site)]
    reads.append(Read("dashboard job detail", f"/dashboard/jobs/{terms['id']}"))
    reads += [Read("search id", q(q=terms["id"])), Read("search params", q(q=terms["params"])),
              Read("search error", q(q=terms["error"])),
              # Starts inside a word ("ard 01742"): no word matches, so the trigram index answers.
              Read("search inside a word", q(q=terms["error"][2:]))]
    return reads


def chart_reads(site: Any) -> list[Read]:
    """The throughput charts: their own fragments if the dashboard loads them (hx-get); else they are drawn by
    every /dashboard/ request and timed within it."""
    page = site.get("/dashboard/").text
    urls = sorted({html.unescape(u) for u in re.findall(r'hx-get="([^"]+)"', page)
                   if any(w in u for w in ("chart", "throughput"))})
    return [Read(f"chart {u.split('/dashboard/', 1)[-1] or u}", u) for u in urls]


def api_reads(site: Any, terms: dict[str, str], token: str, hops: int) -> list[Read]:
    """The JSON API as the owner with 100,000 jobs: its list (first, deep), one job, its events."""
    auth = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    first = site.get("/jobs", auth).json()
    job_id = first["items"][len(first["items"]) // 2]["id"]
    reads = [Read("GET /jobs (owner, first page)", "/jobs", auth)]
    deep, made = follow(site, "/jobs", hops, lambda r: r.json().get("links", {}).get("next"), auth)
    if deep:
        reads.append(Read("GET /jobs deep (next links)", deep, auth, note=f"×{made}"))
    reads += [Read(f"GET /jobs?page={API_PAGE}", f"/jobs?page={API_PAGE}", auth),
              Read(f"GET /jobs?page={EVERY_SIZE_PAGE}", f"/jobs?page={EVERY_SIZE_PAGE}", auth,
                   note="a page every size has"),
              Read("GET /jobs/{id}", f"/jobs/{job_id}", auth),
              Read("GET /jobs/{id}/events", f"/jobs/{job_id}/events", auth),
              Read("/metrics", "/metrics")]
    return reads


def discover_reads(site: Any, plan: SeedPlan, terms: dict[str, str], token: str, hops: int) -> list[Read]:
    """Every read of the issue's list, found on the running app."""
    return dashboard_reads(site, terms, hops) + api_reads(site, terms, token, hops)
