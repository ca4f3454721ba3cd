"""A lean WSGI fast path for /t/o and /t/c, mounted in front of Flask with `wrap(app)`.

Tracking hits are the product's hottest requests. Flask's routing, request objects and
context push cost more than the one Redis write the hit needs, so these two paths are
answered here with precomputed headers, one token HMAC and one Redis round trip (XADD for
an open; one Lua call that reads the cached link target and appends the click). Everything
else passes through to Flask untouched.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from flask import Flask

from tracking.bots import HOW_HEAD, HOW_PREFETCH
from tracking.services import HONEYPOT, Recorder, get_recorder

# The smallest transparent 1x1 GIF.
PIXEL = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00"
         b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
NO_CACHE = [
    ("Cache-Control", "no-store, no-cache, must-revalidate, private, max-age=0"),
    ("Pragma", "no-cache"),
    ("Expires", "0"),
]
PIXEL_HEADERS = [("Content-Type", "image/gif"), ("Content-Length", str(len(PIXEL))), *NO_CACHE]
NOT_FOUND_BODY = b"Not found\n"
NOT_FOUND_HEADERS = [("Content-Type", "text/plain; charset=utf-8"),
                     ("Content-Length", str(len(NOT_FOUND_BODY))), *NO_CACHE]
HONEYPOT_BODY = b"OK\n"
HONEYPOT_HEADERS = [("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(HONEYPOT_BODY))), *NO_CACHE]
UNAVAILABLE_BODY = b"Temporarily unavailable\n"
METHOD_BODY = b"Method not allowed\n"
METHOD_HEADERS = [("Content-Type", "text/plain; charset=utf-8"), ("Allow", "GET, HEAD"),
                  ("Content-Length", str(len(METHOD_BODY))), *NO_CACHE]

StartResponse = Callable[..., object]


def pixel_response(start_response: StartResponse) -> Iterable[bytes]:
    """Answer with the 1x1 GIF and no-cache headers."""
    start_response("200 OK", PIXEL_HEADERS)
    return [PIXEL]


def not_found(start_response: StartResponse) -> Iterable[bytes]:
    """Answer 404 (a token that does not verify, or a link the message did not contain)."""
    start_response("404 Not Found", NOT_FOUND_HEADERS)
    return [NOT_FOUND_BODY]


def redirect(start_response: StartResponse, url: str) -> Iterable[bytes]:
    """Answer 302 to `url` (already validated as one of the message's own http(s) links)."""
    start_response("302 Found", [("Location", url), ("Content-Length", "0"), *NO_CACHE])
    return [b""]


def handle_open(rec: Recorder, token: str, user_agent: str, ip: str,
                start_response: StartResponse, how: str = "") -> Iterable[bytes]:
    """Record an open (if the token verifies) and always answer with the pixel."""
    try:
        rec.open(token, user_agent, ip, how)
    except Exception:  # noqa: BLE001 - nothing could record it: say so rather than pretend
        start_response("503 Service Unavailable", [("Content-Type", "text/plain"),
                                                   ("Retry-After", "5"), *NO_CACHE])
        return [UNAVAILABLE_BODY]
    return pixel_response(start_response)


def handle_click(rec: Recorder, token: str, user_agent: str, ip: str,
                 start_response: StartResponse, how: str = "") -> Iterable[bytes]:
    """Record a click and redirect to the message's own link, or 404 recording nothing."""
    try:
        url = rec.click(token, user_agent, ip, how)
    except Exception:  # noqa: BLE001
        start_response("503 Service Unavailable", [("Content-Type", "text/plain"),
                                                   ("Retry-After", "5"), *NO_CACHE])
        return [UNAVAILABLE_BODY]
    if url is None:
        return not_found(start_response)
    if url == HONEYPOT:
        start_response("200 OK", HONEYPOT_HEADERS)
        return [HONEYPOT_BODY]
    return redirect(start_response, url)


_PREFETCH_HEADERS = ("HTTP_PURPOSE", "HTTP_SEC_PURPOSE", "HTTP_X_PURPOSE", "HTTP_X_MOZ")


def request_how(environ: dict) -> str:
    """Return how a hit was requested: '' for a GET, 'HEAD', or 'prefetch' (machine evidence).

    Browsers announce speculative fetches (`Purpose: prefetch`, `Sec-Purpose: prefetch`,
    `X-Moz: prefetch`, `X-Purpose: preview`); nobody reads a page fetched that way.
    """
    if environ.get("REQUEST_METHOD") == "HEAD":
        return HOW_HEAD
    for name in _PREFETCH_HEADERS:
        value = environ.get(name)
        if value and ("prefetch" in value or "preview" in value):
            return HOW_PREFETCH
    return ""


class TrackingFastPath:
    """WSGI middleware answering GET/HEAD /t/o/<token> and /t/c/<token> without Flask."""

    def __init__(self, app: Flask, inner: Callable):
        self.app = app
        self.inner = inner
        self._rec: Recorder | None = None
        self._pid = 0

    def recorder(self) -> Recorder:
        # One per process: gunicorn forks workers after import, so build it lazily.
        if self._rec is None or self._pid != os.getpid():
            self._rec = get_recorder(self.app)
            self._pid = os.getpid()
        return self._rec

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        if path.startswith(("/t/o/", "/t/c/")):
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                start_response("405 Method Not Allowed", METHOD_HEADERS)
                return [METHOD_BODY]
            token = path[5:]
            ua = environ.get("HTTP_USER_AGENT", "")
            ip = environ.get("REMOTE_ADDR", "")
            how = request_how(environ)
            if path[3] == "o":
                return handle_open(self.recorder(), token, ua, ip, start_response, how)
            return handle_click(self.recorder(), token, ua, ip, start_response, how)
        return self.inner(environ, start_response)


def wrap(app: Flask) -> Flask:
    """Mount the tracking fast path in front of `app` (idempotent); return `app`."""
    if not isinstance(app.wsgi_app, TrackingFastPath):
        app.wsgi_app = TrackingFastPath(app, app.wsgi_app)
    return app
