"""Where a webhook may go: an http(s) URL whose every address is public, unless the operator allows others.

Checked when an endpoint is registered and again before every attempt, on the addresses the name resolves to
then; the attempt connects to the address that was checked (no second lookup to rebind), and redirects are
never followed, so neither DNS nor a 3xx can turn a public endpoint into a request to this network.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL = 2048


class Refused(ValueError):
    """A URL Longrun will not post to, with the reason in words."""


@dataclass(frozen=True)
class Target:
    """A checked URL's parts: where to connect and what to ask for."""

    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        """The Host header: the name as written, with the port when it is not the scheme's."""
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def parse(url: str) -> Target:
    """The parts of an endpoint URL, or ``Refused`` saying what is wrong with it."""
    if not isinstance(url, str) or not url.strip():
        raise Refused("a URL is required")
    if len(url) > MAX_URL:
        raise Refused(f"a URL may have at most {MAX_URL} characters")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise Refused("the URL must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise Refused("the URL must not hold credentials: messages are signed instead")
    if not parts.hostname:
        raise Refused("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused("the URL's port is not a number from 1 to 65535") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, path)


def public(address: str) -> bool:
    """Whether ``address`` is on the public internet (not private, loopback, link-local, reserved, …)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return ip.is_global and not ip.is_multicast


def resolve(target: Target, allow_private: bool) -> str:
    """The address to connect to for ``target``: ``Refused`` if it does not resolve, or if any of its
    addresses is not public (unless ``allow_private``)."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"{target.host} does not resolve ({exc})") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not allow_private:
        hidden = [a for a in addresses if not public(a)]
        if hidden:
            raise Refused(f"{target.host} resolves to {hidden[0]}, a private, loopback or link-local address; "
                          "an operator may allow those with LONGRUN_WEBHOOK_ALLOW_PRIVATE=1")
    return addresses[0]
