"""The gateway's web application: its route table, and the guard every route passes.

Every route is closed unless its handler says it is public (pipeline/web/base.py): with a password
set, only /healthz and /login answer without one. The routes are documented in docs/web-api.md.
"""

from __future__ import annotations

import logging
from pathlib import Path

import tornado.web

from pipeline.bus.sockets import Decoder
from pipeline.config.options import Config
from pipeline.record.library import Library
from pipeline.stage.ratelog import RateLimitedLog
from pipeline.web.auth import Credentials, FailedLogins, cookie_secret
from pipeline.web.base import Guard, Guarded
from pipeline.web.hosts import HostPolicy, is_loopback
from pipeline.web.hub import Hub
from pipeline.web.live import LiveSocket, MjpegStream, Snapshot
from pipeline.web.login import Login, Logout, Session
from pipeline.web.metrics import Metrics, registry_for
from pipeline.web.mse import MseSocket
from pipeline.web.page import Page
from pipeline.web.recordings import Recording, RecordingFile, RecordingList
from pipeline.web.status import Health, Status
from pipeline.web.tracks import Tracks
from pipeline.web.viewers import StreamQuota
from pipeline.web.wire import Wire

STATIC_DIR = Path(__file__).parent / "static"

log = logging.getLogger("camserver.gateway")


def make_guard(cfg: Config) -> Guard:
    credentials = Credentials.from_config(cfg)
    return Guard(
        hosts=HostPolicy(cfg),
        credentials=credentials,
        secret=cookie_secret(cfg.recordings) if credentials is not None else None,
        tls=cfg.tls_cert is not None,
        failures=FailedLogins(),
        notes=RateLimitedLog(log),
    )


def announce(cfg: Config, guard: Guard) -> None:
    """Say at every start where the page is and who can reach it; running without a password is a WARNING."""
    log.info("live view on %s://%s:%d/ (frames from %s, events from %s)", "https" if guard.tls else "http",
             cfg.host, cfg.port, ",".join(cfg.frames), ",".join(cfg.events))
    if guard.credentials is not None:
        log.info("login required: user %r, password from %s", guard.credentials.user,
                 "--password-file" if cfg.password_file else "--password/CAMSERVER_PASSWORD")
    elif is_loopback(cfg.host):
        log.info("no password set: reachable from this machine only (set CAMSERVER_PASSWORD to open it to the LAN)")
    else:
        log.warning("listening on %s WITHOUT a password (--insecure-no-auth): anyone who can reach port %d can "
                    "watch the camera and delete recordings", cfg.host, cfg.port)


def make_app(hub: Hub, library: Library, guard: Guard, viewers_per_client: int, decoder: Decoder,
             metrics_token: str | None = None, tracks: Tracks | None = None) -> tornado.web.Application:
    """The application; without ``tracks`` (tests of the other routes) there is no H.264 live view."""
    quota = StreamQuota(viewers_per_client)
    live = {"hub": hub, "quota": quota, "wire": Wire()}
    h264 = [(r"/api/ws", MseSocket, {"hub": hub, "tracks": tracks, "quota": quota})] if tracks is not None else []
    return tornado.web.Application(
        [
            *h264,
            (r"/()", Page, {"path": STATIC_DIR, "default_filename": "index.html"}),
            (r"/static/(.*)", Page, {"path": STATIC_DIR}),
            (r"/login", Login),
            (r"/logout", Logout),
            (r"/api/session", Session),
            (r"/webcam", LiveSocket, live),
            (r"/snapshot\.jpg", Snapshot, {"hub": hub}),
            (r"/stream\.mjpg", MjpegStream, live),
            (r"/healthz", Health, {"hub": hub}),
            (r"/api/recordings", RecordingList, {"library": library, "hub": hub}),
            (r"/api/recordings/([^/]+)", Recording, {"library": library}),
            (r"/api/status", Status, {"hub": hub, "library": library, "decoder": decoder}),
            (r"/recordings/([^/]+)", RecordingFile, {"path": str(library.root)}),
            (r"/metrics", Metrics, {"registry": registry_for(hub, library, decoder), "token": metrics_token}),
        ],
        default_handler_class=NotFound,
        guard=guard,
        cookie_secret=guard.secret,
        cross_origin_protection=True,
        xsrf_cookie_kwargs={"samesite": "Strict", "secure": guard.tls},
        template_path=STATIC_DIR,
        log_function=log_request,
        websocket_ping_interval=10,
        websocket_ping_timeout=10,
        websocket_max_message_size=4096,
    )


class NotFound(Guarded):
    """Any other path: 404 after the same host and login checks, so unknown paths reveal nothing."""

    async def prepare(self) -> None:
        await super().prepare()
        raise tornado.web.HTTPError(404)


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Requests at DEBUG: a health check every few seconds is noise, and failures log themselves."""
    log.debug("%d %s %.1f ms", handler.get_status(), handler._request_summary(),
              1000 * handler.request.request_time())
