"""What the studio and the study server check on every request, so that a web page from
elsewhere can neither read nor write through them.

Both servers listen on this computer and have no login. Two browser attacks remain, and these
checks close them: DNS rebinding (a page of ``attacker.example`` whose name later resolves to
127.0.0.1 is same-origin with the server; the ``Host`` header still says ``attacker.example``)
and cross-site writes (any page may POST to 127.0.0.1; the browser then sends its ``Origin``).
"""

from __future__ import annotations

import ipaddress
from email.message import Message
from urllib.parse import urlsplit

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
# Headers of every answer: nothing from other origins, no framing, no type sniffing, no caching.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(value: str) -> str:
    try:
        return urlsplit("//" + value).hostname or ""
    except ValueError:
        return ""


def host_refusal(headers: Message, loopback_only: bool) -> str | None:
    """Why a request's ``Host`` is refused (a server bound to loopback takes loopback names
    only), or None."""
    if not loopback_only:
        return None
    host = _host_name(headers.get("Host") or "")
    if is_loopback(host):
        return None
    return (f"host {host!r} refused: this server listens on this computer only; open it as "
            "http://127.0.0.1")


def origin_refusal(headers: Message) -> str | None:
    """Why a POST from a browser page of another origin is refused, or None.

    Browsers send ``Origin`` with every POST a page makes (and ``Sec-Fetch-Site``); clients
    that are not browsers (curl, Python) send neither and are let through. A page of this
    server sends its own origin: ``http://`` + the ``Host`` it asked for.
    """
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return f"a {site} request was refused: only this server's own page may write"
    origin = headers.get("Origin")
    if origin is None:
        return None
    try:
        parts = urlsplit(origin)
    except ValueError:
        parts = None
    host = (headers.get("Host") or "").lower()
    if parts is None or parts.scheme != "http" or parts.netloc.lower() != host or not host:
        return (f"origin {origin!r} refused: only this server's own page (http://{host}) may "
                "write")
    return None
