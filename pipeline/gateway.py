"""Gateway stage: the web server. Live view over a WebSocket, snapshot, MJPEG, recordings, health.

It subscribes to frames and events over ZeroMQ on Tornado's own event loop (class Pump), keeps
the newest frame per camera in a Hub, and pushes frames to every client as fast as that client
takes them. Every route is closed unless its handler says it is public (pipeline/web/base.py):
with a password set, only /healthz and /login answer without one. Routes:

    GET /               the live page (pipeline/web/static/)
    GET, POST /login    the login page and its form; POST /logout ends the session
    GET /api/session    whether a login is in use, and as whom
    WS  /webcam         JSON status/frame/event text messages; each frame as one binary JPEG
    GET /snapshot.jpg   the newest frame
    GET /stream.mjpg    multipart/x-mixed-replace MJPEG for VLC, ffmpeg, Home Assistant, <img>
    GET /healthz        JSON ages of the newest frame and event per camera; 503 when stale
    GET /api/recordings the recordings' sidecars, newest first, with the URLs of video and thumbnail
    GET, DELETE /api/recordings/NAME   one recording
    GET /api/status     cameras, stage health, motion and recording, disk use
    GET /recordings/F   a recording's files, with HTTP Range (browsers seek with it)
    GET /metrics        Prometheus metrics; also open to ``Authorization: Bearer`` --metrics-token
    GET /static/F       the page's scripts and styles

Every route takes ``?camera=ID``; without it, the first camera that sent a frame is shown (or, for
the recordings, every camera's). An id no camera can have is 400; a camera the gateway has not seen
is 404 on /snapshot.jpg, /healthz and /api/status (and on /api/recordings unless it has recordings),
and waited for on the live streams; a recording or file of another camera than ``?camera=`` is 404.
``/healthz?camera=ID`` is that camera's health alone (200 while it sends frames, 503 once silent,
404 unknown). The page's tiles share one WebSocket, ``/webcam?watch=``, which sends the frames of
the tiles on screen only. Details in pipeline/web/status.py, live.py and recordings.py.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.web
import zmq

from pipeline.bus.curve import bus_curve
from pipeline.bus.sockets import EVENT_HWM, FRAME_HWM, Decoder, subscriber
from pipeline.config.loading import load_or_exit
from pipeline.config.options import Config, ConfigError
from pipeline.protocol import Event, Frame, Heartbeat, event_topic, frame_topic, stage_topic
from pipeline.record.library import Library
from pipeline.stage.lifecycle import async_stop_event, message_summary, setup_logging
from pipeline.stage.ratelog import RateLimitedLog
from pipeline.web import server
from pipeline.web.auth import Credentials, FailedLogins, cookie_secret
from pipeline.web.base import Guard, Guarded
from pipeline.web.hosts import HostPolicy, is_loopback
from pipeline.web.hub import Hub
from pipeline.web.live import LiveSocket, MjpegStream, Snapshot, StreamQuota, Wire
from pipeline.web.login import Login, Logout, Session
from pipeline.web.metrics import Metrics, registry_for
from pipeline.web.page import Page
from pipeline.web.recordings import Recording, RecordingFile, RecordingList
from pipeline.web.status import Health, Status

OPTIONS = ("host", "port", "frames", "events", "recorder_events", "recordings", "log_level", "log_time", "user",
           "password", "password_file", "insecure_no_auth", "allowed_hosts", "tls_cert", "tls_key", "max_connections",
           "max_connections_per_client", "max_viewers_per_client", "curve_keys", "insecure_bus", "metrics_token")
WEB_DIR = Path(__file__).parent / "web" / "static"

log = logging.getLogger("camserver.gateway")


def check(cfg: Config) -> None:
    """Rules across options; above all, never listen beyond loopback without a password by accident."""
    if cfg.password is not None and cfg.password_file is not None:
        raise ConfigError("give either --password (CAMSERVER_PASSWORD) or --password-file "
                          "(CAMSERVER_PASSWORD_FILE), not both")
    if (cfg.tls_cert is None) != (cfg.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key (CAMSERVER_TLS_CERT, CAMSERVER_TLS_KEY) go together")
    tls_context(cfg)
    has_password = cfg.password is not None or cfg.password_file is not None
    if not is_loopback(cfg.host) and not has_password and not cfg.insecure_no_auth:
        raise ConfigError(
            f"refusing to listen on {cfg.host} without a password: set one with CAMSERVER_PASSWORD=..., or "
            "--password-file FILE made by `python -m pipeline.passwd -o FILE` (or pass --insecure-no-auth)")


def tls_context(cfg: Config) -> ssl.SSLContext | None:
    if cfg.tls_cert is None or cfg.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"invalid --tls-cert/--tls-key ({cfg.tls_cert}, {cfg.tls_key}): {exc}") from None
    return context


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


def make_app(hub: Hub, library: Library, guard: Guard, viewers_per_client: int,
             decoder: Decoder, metrics_token: str | None = None) -> tornado.web.Application:
    live = {"hub": hub, "quota": StreamQuota(viewers_per_client), "wire": Wire()}
    return tornado.web.Application(
        [
            (r"/()", Page, {"path": WEB_DIR, "default_filename": "index.html"}),
            (r"/static/(.*)", Page, {"path": WEB_DIR}),
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
        template_path=WEB_DIR,
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


class Pump:
    """Moves messages from one ZeroMQ socket into the hub, on the event loop, skipping to each camera's newest frame.

    The socket's file descriptor is watched with ``add_reader`` and drained with non-blocking
    receives: zmq.asyncio's futures and flag enums cost more per message than the hub's own work.
    ZeroMQ's descriptor is edge-triggered, so a drain goes on until the socket says it holds
    nothing more; a flood is taken MAX_BATCH messages at a time, so HTTP is served in between.
    One message the hub cannot take costs that message and a rate-limited ERROR, not the live view.
    """

    MAX_BATCH = 1000

    def __init__(self, sock: zmq.Socket, hub: Hub, decoder: Decoder) -> None:
        self._sock, self._hub, self._decoder = sock, hub, decoder
        self._failures = RateLimitedLog(log)
        self._loop = asyncio.get_running_loop()
        self._fd = sock.getsockopt(zmq.FD)
        self._loop.add_reader(self._fd, self.drain)
        self._loop.call_soon(self.drain)  # messages that came before the reader was added signal nothing

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        self._sock.close()

    def drain(self) -> None:
        if self._sock.closed:  # a drain still scheduled when the gateway stopped
            return
        batch: list[list[bytes]] = []
        while len(batch) < self.MAX_BATCH and self._sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            batch.append(self._sock.recv_multipart(zmq.NOBLOCK))
        if len(batch) == self.MAX_BATCH:
            self._loop.call_soon(self.drain)
        newest: dict[str, Frame] = {}
        for parts in batch:
            message = self._decoder(parts)
            if isinstance(message, Frame):
                newest[message.camera] = message
            elif isinstance(message, Event):
                _publish(self._hub.publish_event, message, self._failures)
            elif isinstance(message, Heartbeat):
                self._hub.publish_heartbeat(message)
        for frame in newest.values():
            if _publish(self._hub.publish_frame, frame, self._failures) is False:
                self._failures.warning("cameras", "ignoring frames of camera %s: already %d cameras", frame.camera,
                                       len(self._hub.cameras))


def _publish(publish: Callable[[Any], bool | None], message: Frame | Event, failures: RateLimitedLog) -> bool | None:
    try:
        return publish(message)
    except Exception:
        failures.log(logging.ERROR, "hub", "skipped a message the hub could not take: %s", message_summary(message),
                     exc_info=True)
        return None


async def serve(cfg: Config) -> int:
    stop = async_stop_event()
    hub = Hub()
    try:
        guard = make_guard(cfg)
    except OSError as exc:
        log.error("cannot keep the login's cookie secret in %s: %s", cfg.recordings, exc)
        return 1
    try:
        keys = bus_curve(cfg.curve_keys, cfg.insecure_bus, binds=(),
                         connects=(*cfg.frames, *cfg.events, *cfg.recorder_events))
    except OSError as exc:
        log.error("%s", exc)
        return 1
    decoder = Decoder(log)
    app = make_app(hub, Library(cfg.recordings), guard, cfg.max_viewers_per_client, decoder, cfg.metrics_token)
    try:
        http = server.listen(app, cfg.port, cfg.host, tls_context(cfg), cfg.max_connections,
                             cfg.max_connections_per_client)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", cfg.host, cfg.port, exc)
        return 1
    ctx = zmq.Context()
    pumps = [
        Pump(subscriber(ctx, cfg.frames, [frame_topic(), stage_topic()], FRAME_HWM, keys), hub, decoder),
        Pump(subscriber(ctx, (*cfg.events, *cfg.recorder_events), [event_topic(), stage_topic()], EVENT_HWM,
                        keys), hub, decoder),
    ]
    announce(cfg, guard)
    await stop.wait()
    http.stop()
    hub.close()
    for each in pumps:
        each.close()
    try:
        await asyncio.wait_for(http.close_all_connections(), timeout=1.0)
    except TimeoutError:
        log.warning("some connections did not close in time")
    ctx.term()
    return 0


def main() -> None:
    cfg = load_or_exit("gateway", OPTIONS, __doc__.splitlines()[0], check)
    setup_logging("gateway", cfg.log_level, cfg.log_time)
    raise SystemExit(asyncio.run(serve(cfg)))


if __name__ == "__main__":
    main()
