"""One URL, three renderings: JSON for API clients, a page for browsers, a fragment for htmx."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import Response, current_app, make_response, render_template, request
from markupsafe import Markup


def is_htmx() -> bool:
    """An htmx request that wants a fragment (not a boosted navigation or a history restore)."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-Boosted") != "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def wants_page() -> bool:
    """A browser navigation: HTML is preferred over JSON."""
    if is_htmx():
        return True
    accept = request.accept_mimetypes
    return accept.best_match(["application/json", "text/html"]) == "text/html" and accept["text/html"] > accept["application/json"]


def render_page_or_fragment(page_template: str, fragment_template: str, /, **context: Any) -> Response:
    """Render the fragment for htmx and the page otherwise; caches must key on both headers."""
    template = fragment_template if is_htmx() else page_template
    response = make_response(render_template(template, **context))
    vary(response)
    return response


def vary(response: Response) -> Response:
    """Mark a negotiated response so caches keep the renderings apart."""
    response.vary.add("HX-Request")
    response.vary.add("Accept")
    return response


def duration(seconds: float | None) -> str:
    """Seconds as a short human duration: ``4.2 s``, ``3 min 05 s``, ``2 h 10 min``."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


STAMP_FORMATS = {"full": "%Y-%m-%d %H:%M:%S", "time": "%H:%M:%S"}


def when(moment: datetime | None, style: str = "full") -> Markup:
    """A timestamp people read: UTC to the second (the page's script shows it in the reader's local time), the
    exact ISO instant in its ``title``; an em dash for none."""
    if moment is None:
        return Markup("—")
    iso = moment.isoformat()
    text = moment.astimezone(timezone.utc).strftime(STAMP_FORMATS[style]) + " UTC"
    return Markup('<time datetime="{0}" title="{0}" data-local="{1}">{2}</time>').format(iso, style, text)


def trace_url(trace_id: str | None) -> str | None:
    """Link to the tracing UI from ``LONGRUN_TRACE_URL_TEMPLATE`` (``{trace_id}`` is replaced)."""
    template = current_app.config.get("LONGRUN_TRACE_URL_TEMPLATE")
    return template.replace("{trace_id}", trace_id) if template and trace_id else None
