"""The review server's protections, as one ASGI middleware (docs/review.md, "Security").

Every request must pass, in order:

1. **Host allow-list** (DNS rebinding): the ``Host`` header must be one of
   :func:`allowed_hosts` — ``127.0.0.1``, ``localhost`` and ``[::1]`` with the server's port,
   plus ``--host``'s value — else 403.  A page on another site whose name was rebound to
   127.0.0.1 sends its own name as ``Host``, and page scripts cannot forge it.
2. **Token**: the secret of the printed URL, either ``?token=`` (which sets the cookie and
   redirects to the same URL without it), the cookie (``HttpOnly``, ``SameSite=Strict``), or an
   ``Authorization: token <secret>`` header; anything else gets 403.
3. **CSRF** for every state-changing method (anything but GET/HEAD): the ``X-CSRF-Token``
   header must carry the page's CSRF token (a second secret, given to the page in a ``<meta>``),
   the body must be JSON, and an ``Origin`` header, when sent, must be an allowed host.

Responses carry a strict Content-Security-Policy (same origin only, no inline script),
``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and
``X-Frame-Options: DENY``.
"""

from __future__ import annotations

import hmac
from http import cookies
from typing import Iterable
from urllib.parse import parse_qsl, urlencode

COOKIE = "oldphoto_review"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD"})
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def allowed_hosts(port: int, host: str | None = None) -> frozenset[str]:
    """The ``Host`` header values the server answers (lower case, with the port)."""
    names = {"127.0.0.1", "localhost", "[::1]"}
    if host:
        names.add(f"[{host}]" if ":" in host and not host.startswith("[") else host)
    return frozenset(f"{name.lower()}:{port}" for name in names)


def _same(given: str | None, secret: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode("utf-8", "replace"),
                                               secret.encode("utf-8"))


class Guard:
    """ASGI middleware: Host allow-list, token/cookie, CSRF and security headers."""

    def __init__(self, app, *, token: str, csrf: str, hosts: Iterable[str]) -> None:
        self.app = app
        self.token = token
        self.csrf = csrf
        self.hosts = frozenset(h.lower() for h in hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        host = headers.get("host", "").strip().lower()
        if host not in self.hosts:
            await _refuse(send, 403, "unknown Host header: this server answers only "
                                     "127.0.0.1/localhost on its own port")
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        jar = cookies.SimpleCookie()
        try:
            jar.load(headers.get("cookie", ""))
        except cookies.CookieError:
            jar = cookies.SimpleCookie()
        cookie = jar[COOKIE].value if COOKIE in jar else None
        authorization = headers.get("authorization", "")
        bearer = authorization[6:].strip() if authorization.lower().startswith("token ") else None
        method = scope["method"].upper()
        if _same(query.get("token"), self.token) and method in SAFE_METHODS:
            rest = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode(
                "latin-1")) if k != "token"]
            location = scope["path"] + ("?" + urlencode(rest) if rest else "")
            await send({"type": "http.response.start", "status": 303, "headers": [
                (b"location", location.encode("latin-1", "replace")),
                (b"set-cookie", f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
                 .encode("latin-1")),
                (b"cache-control", b"no-store"), (b"referrer-policy", b"no-referrer"),
                (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if not (_same(cookie, self.token) or _same(bearer, self.token)):
            await _refuse(send, 403, "open the URL the review server printed (it holds the "
                                     "access token)")
            return
        if method not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None and origin.lower().partition("://")[2] not in self.hosts:
                await _refuse(send, 403, "cross-origin request refused")
                return
            if not _same(headers.get(CSRF_HEADER), self.csrf):
                await _refuse(send, 403, "missing or wrong CSRF token")
                return
            if not headers.get("content-type", "").lower().startswith("application/json"):
                await _refuse(send, 415, "state-changing requests must send JSON")
                return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                extra = [(b"content-security-policy", CSP.encode()),
                         (b"x-content-type-options", b"nosniff"),
                         (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse(send, status: int, reason: str) -> None:
    body = f"{status}: {reason}\n".encode("utf-8")
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})
