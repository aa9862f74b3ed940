"""The base every gateway route inherits: closed unless it says it is public.

Each request passes three checks in ``prepare`` before its handler runs:

1. its Host header names this server (DNS rebinding), whether or not a password is set;
2. with a password set, a valid session cookie or HTTP Basic credentials — unless the handler
   class sets ``public = True`` (only /healthz and /login do). A forgotten check therefore fails
   closed: a new route is private until someone decides otherwise;
3. a state-changing request (anything but GET/HEAD/OPTIONS) from a browser, or made with the
   session cookie, carries the page's XSRF token. Tornado's ``cross_origin_protection`` has already
   refused cross-site ones by their Sec-Fetch-Site/Origin headers before ``prepare``.

Scripts and tools (curl, VLC, ffmpeg, Home Assistant) send neither Origin nor Sec-Fetch-Site and
authenticate with Basic; they get a ``WWW-Authenticate`` challenge, which browsers' own requests
do not, so the page never shows the browser's password dialog but goes to /login instead.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, ClassVar

import tornado.web
import tornado.websocket
from tornado.escape import url_escape

from pipeline.protocol import ProtocolError, check_camera_id
from pipeline.stage.ratelog import RateLimitedLog
from pipeline.web.auth import SESSION_DAYS, Credentials, FailedLogins
from pipeline.web.hosts import HostPolicy

log = logging.getLogger("camserver.gateway")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_COOKIE = "camserver_session"
# A wrong password is answered after this long: guessing gets slow even below the rate limit.
WRONG_PASSWORD_DELAY_S = 1.0
REALM = 'Basic realm="camserver", charset="UTF-8"'


@dataclass
class Guard:
    """The security settings and state every handler shares (``settings["guard"]``)."""

    hosts: HostPolicy
    credentials: Credentials | None
    secret: bytes | None
    tls: bool
    failures: FailedLogins
    notes: RateLimitedLog

    def session_value(self) -> bytes:
        """What a valid session cookie holds: the user and a fingerprint of the current password."""
        assert self.credentials is not None and self.secret is not None
        return f"{self.credentials.user}:{self.credentials.fingerprint(self.secret)}".encode()


class Unauthorized(tornado.web.HTTPError):
    def __init__(self, challenge: bool) -> None:
        super().__init__(401, "log in first: the page at /login, or HTTP Basic for tools")
        self.challenge = challenge


class TooManyAttempts(tornado.web.HTTPError):
    def __init__(self, retry_after: float) -> None:
        self.retry_after = math.ceil(retry_after)
        super().__init__(429, "too many wrong passwords from your address: try again in %d s", self.retry_after)


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic`` header, or None for anything else."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class Guarded(tornado.web.RequestHandler):
    """Base of every route: host check, authentication and XSRF in ``prepare``; errors as JSON."""

    public: ClassVar[bool] = False

    @property
    def guard(self) -> Guard:
        return self.settings["guard"]

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Content-Security-Policy", "frame-ancestors 'none'")
        self.set_header("Referrer-Policy", "same-origin")

    async def prepare(self) -> None:
        self._check_host()
        cookie_session = False
        if self.guard.credentials is not None and not self.public:
            cookie_session = await self._authenticate()
            # Whatever needed the password must not outlive the session in the browser's cache: a
            # shared tablet must not show recordings after Log out. Handlers may set stricter.
            self.set_header("Cache-Control", "private, no-cache")
        if self.request.method not in SAFE_METHODS and (cookie_session or self._from_browser()):
            self.check_xsrf_cookie()

    async def attempt_login(self, user: str, password: str) -> bool:
        """Check a password under the per-address limit; a wrong one is logged and answered slowly."""
        credentials, address = self.guard.credentials, self.request.remote_ip or "?"
        assert credentials is not None
        if credentials.known(user, password):
            return True
        wait = self.guard.failures.retry_after(address)
        if wait:
            self.guard.notes.warning(f"blocked {address}", "refused a login from %s: too many wrong passwords, "
                                     "blocked for %.0f s more", address, wait)
            raise TooManyAttempts(wait)
        count = self.guard.failures.fail(address)  # counted before the slow check: parallel guesses count too
        if await asyncio.to_thread(credentials.check, user, password):
            self.guard.failures.succeed(address)
            log.info("user %r logged in from %s", user, address)
            return True
        log.warning("wrong user name or password for %r from %s (%d in the last minute)", user[:64], address, count)
        await asyncio.sleep(WRONG_PASSWORD_DELAY_S)
        return False

    def has_session(self) -> bool:
        """True when the request carries a valid session cookie of the current password."""
        session = self.get_signed_cookie(SESSION_COOKIE, max_age_days=SESSION_DAYS)
        return session is not None and hmac.compare_digest(session, self.guard.session_value())

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = self._reason
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            reason = exc.log_message % exc.args if exc.args else exc.log_message
        if isinstance(exc, Unauthorized) and exc.challenge:
            self.set_header("WWW-Authenticate", REALM)
        if isinstance(exc, TooManyAttempts):
            self.set_header("Retry-After", str(exc.retry_after))
        self.set_header("Cache-Control", "no-store")
        self.finish({"error": reason, "status": status_code})

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Refusals (4xx) at DEBUG: a client can cause them at will, and the ones that matter log themselves."""
        if isinstance(value, tornado.web.HTTPError) and value.status_code < 500:
            log.debug("%d %s: %s", value.status_code, self._request_summary(), value.log_message)
        else:
            super().log_exception(typ, value, tb)

    def _check_host(self) -> None:
        try:
            local = self.request.connection.stream.socket.getsockname()[0]  # type: ignore[union-attr]
        except (AttributeError, OSError):
            local = None
        if not self.guard.hosts.allows(self.request.host, local):
            self.guard.notes.warning("host", "refused a request for Host %r from %s: not a name of this server "
                                     "(DNS rebinding?); if it is one, add it with --allowed-hosts",
                                     self.request.host[:200], self.request.remote_ip)
            raise tornado.web.HTTPError(403, "this server does not answer to the name %r (see --allowed-hosts)",
                                        self.request.host[:200])

    async def _authenticate(self) -> bool:
        """Let the request through or finish it; True when the session cookie let it through."""
        if self.has_session():
            self.current_user = self.guard.credentials.user  # type: ignore[union-attr]
            return True
        basic = basic_credentials(self.request.headers.get("Authorization"))
        if basic is not None and await self.attempt_login(*basic):
            self.current_user = basic[0]
            return False
        if self.request.method in ("GET", "HEAD") and self._navigation():
            self.redirect(f"/login?next={url_escape(self.request.uri or '/')}")
            raise tornado.web.Finish()
        raise Unauthorized(challenge="Sec-Fetch-Mode" not in self.request.headers)

    def _navigation(self) -> bool:
        """A person's browser asking for a page (not a script's fetch, not a tool)."""
        mode = self.request.headers.get("Sec-Fetch-Mode")
        return mode == "navigate" or (mode is None and "text/html" in self.request.headers.get("Accept", ""))

    def _from_browser(self) -> bool:
        return "Origin" in self.request.headers or "Sec-Fetch-Site" in self.request.headers


class GuardedStatic(Guarded, tornado.web.StaticFileHandler):
    """Files of a folder, behind the same checks as every other route."""


class GuardedSocket(Guarded, tornado.websocket.WebSocketHandler):
    """A WebSocket behind the same checks; Tornado refuses foreign Origins after ``prepare``."""


def camera_argument(handler: tornado.web.RequestHandler) -> str | None:
    """The ``?camera=`` of a request, checked; HTTPError 400 for an id no camera can have."""
    camera = handler.get_argument("camera", None)
    if camera is None:
        return None
    try:
        return check_camera_id(camera)
    except ProtocolError as exc:
        raise tornado.web.HTTPError(400, str(exc)) from None


def known_camera(handler: tornado.web.RequestHandler, cameras: Collection[str]) -> str | None:
    """The ``?camera=`` of a request, which must be one of ``cameras``: 400 for an id no camera can have,
    404 for a camera the gateway has had no frame from since it started (or has forgotten)."""
    camera = camera_argument(handler)
    if camera is not None and camera not in cameras:
        raise tornado.web.HTTPError(404, "no camera %r: no frame has come from it (cameras: %s)", camera,
                                    ", ".join(sorted(cameras)) or "none yet")
    return camera
