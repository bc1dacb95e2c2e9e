"""E-mail alerts: an endpoint whose URL is ``mailto:<address>`` gets a plain-text and HTML mail, through the
SMTP server of ``SMTP_URL``, instead of a POST (the same deliveries, retries and attempt log as webhooks)."""
from __future__ import annotations

import json
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import unquote, urlsplit

from flask import render_template

from app.webhooks.guard import Refused

MAILTO = "mailto:"
ADDRESS = re.compile(r"[^@\s,;:<>()\[\]\\\"']{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\.[A-Za-z]{2,63}")
EVENTS = ("job.succeeded", "job.failed")  # what an address hears of unless it asks otherwise
SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


def is_mail(url: str) -> bool:
    """Whether the endpoint is an e-mail address rather than a URL."""
    return isinstance(url, str) and url.strip().lower().startswith(MAILTO)


def address_of(url: str) -> str:
    """The one address of a ``mailto:`` URL, or ``Refused`` saying what is wrong with it."""
    address = url.strip()[len(MAILTO):]
    if not ADDRESS.fullmatch(address):
        raise Refused(f"{address[:80]!r} is not an e-mail address (one address, like mailto:alice@example.com)")
    return address


def check_smtp(smtp_url: str) -> tuple[str, str, int, str | None, str | None]:
    """The parts of ``SMTP_URL`` (scheme, host, port, user, password), or ``Refused`` when e-mail is off or the URL
    is malformed."""
    if not smtp_url:
        raise Refused("e-mail alerts are off: the operator has not set SMTP_URL")
    parts = urlsplit(smtp_url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise Refused("SMTP_URL must look like smtp://host:25, smtp+starttls://user:password@host:587 or smtps://…")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.scheme, parts.hostname, parts.port or SCHEMES[parts.scheme], user, password


def compose(payload: str, sender: str, to: str) -> EmailMessage:
    """The mail for one delivery's payload: subject, plain text and HTML with the outcome and the links."""
    message = json.loads(payload)
    data = message["data"]
    mail = EmailMessage()
    mail["Subject"] = f"{data['report']} {data['state'].lower()} (job {data['id'][:8]})"
    mail["From"], mail["To"] = sender, to
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    mail.set_content(render_template("webhooks/email.txt", event=message["type"], job=data))
    mail.add_alternative(render_template("webhooks/email.html", event=message["type"], job=data), subtype="html")
    return mail


def send(mail: EmailMessage, smtp_url: str, timeout: float) -> tuple[int | None, str]:
    """Hand ``mail`` to the SMTP server: its reply code (250 when accepted, None without one) and a few words."""
    try:
        scheme, host, port, user, password = check_smtp(smtp_url)
        connect = smtplib.SMTP_SSL if scheme == "smtps" else smtplib.SMTP
        with connect(host, port, timeout=timeout) as smtp:
            if scheme == "smtp+starttls":
                smtp.starttls(context=ssl.create_default_context())
            if user:
                smtp.login(user, password or "")
            smtp.send_message(mail)  # returns only when the server accepted the message (250)
        return 250, f"accepted by {host}"
    except Refused as exc:
        return None, f"refused: {exc}"
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        return code, f"recipient refused: {text.decode('utf-8', 'replace')}"
    except smtplib.SMTPResponseException as exc:
        error = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return exc.smtp_code, error
    except (smtplib.SMTPException, OSError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
