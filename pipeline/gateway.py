"""Gateway stage: the web server. Live view over a WebSocket, snapshot, MJPEG and health.

It subscribes to frames and events over ZeroMQ on Tornado's own event loop (zmq.asyncio), keeps
the newest frame per camera in a Hub, and pushes frames to every client as fast as that client
takes them. Routes:

    GET /               the live page (pipeline/web/)
    WS  /webcam         JSON status/frame/event text messages; each frame as one binary JPEG
    GET /snapshot.jpg   the newest frame
    GET /stream.mjpg    multipart/x-mixed-replace MJPEG for VLC, ffmpeg, Home Assistant, <img>
    GET /healthz        JSON ages of the newest frame and event per camera; 503 when stale
    GET /api/recordings the recordings' sidecars, newest first, with the URLs of video and thumbnail
    GET, DELETE /api/recordings/NAME   one recording
    GET /api/status     cameras, stage health, motion and recording, disk use
    GET /recordings/F   a recording's files, with HTTP Range (browsers seek with it)

Every route takes ``?camera=ID``; without it, the first camera that sent a frame is shown.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import tornado.iostream
import tornado.web
import tornado.websocket
import zmq
import zmq.asyncio

from pipeline import bus, config
from pipeline.hub import Hub, Viewer
from pipeline.library import Library, parse_name
from pipeline.protocol import Event, Frame, ProtocolError, check_camera_id, event_topic, frame_topic
from pipeline.stage import async_stop_event, setup_logging

OPTIONS = ("host", "port", "frames", "events", "recorder_events", "recordings", "log_level")
WEB_DIR = Path(__file__).parent / "web"
STATUS_EVERY_S = 1.0
MAX_PAGE = 500
MJPEG_BOUNDARY = "camserverframe"

log = logging.getLogger("camserver.gateway")


def camera_argument(handler: tornado.web.RequestHandler) -> str | None:
    """The ``?camera=`` of a request, checked; HTTPError 400 for an id no camera can have."""
    camera = handler.get_argument("camera", None)
    if camera is None:
        return None
    try:
        return check_camera_id(camera)
    except ProtocolError as exc:
        raise tornado.web.HTTPError(400, str(exc)) from None


class JsonErrors(tornado.web.RequestHandler):
    """Errors as JSON with a message, for scripts as much as for the page."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = self._reason
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            reason = exc.log_message % exc.args if exc.args else exc.log_message
        self.finish({"error": reason, "status": status_code})


class Snapshot(JsonErrors):
    def initialize(self, hub: Hub) -> None:
        self.hub = hub

    def get(self) -> None:
        frame = self.hub.newest(camera_argument(self))
        if frame is None:
            raise tornado.web.HTTPError(503, "no frame has arrived from the camera yet")
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Camserver-Camera", frame.camera)
        self.set_header("X-Camserver-Seq", str(frame.seq))
        self.set_header("X-Camserver-Ts", f"{frame.ts:.6f}")
        self.finish(frame.jpeg)


class MjpegStream(JsonErrors):
    """One MJPEG part per frame; a client that reads slowly gets the newest frame when it is ready."""

    def initialize(self, hub: Hub) -> None:
        self.hub = hub
        self.viewer: Viewer | None = None

    async def get(self) -> None:
        self.viewer = self.hub.attach(camera_argument(self), wants_events=False)
        self.set_header("Content-Type", f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}")
        self.set_header("Cache-Control", "no-store")
        try:
            while not self.viewer.closed:
                _, frame = await self.viewer.next()
                if frame is None:
                    continue
                self.write(f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                           f"Content-Length: {len(frame.jpeg)}\r\n\r\n".encode())
                self.write(frame.jpeg)
                self.write(b"\r\n")
                await self.flush()
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            self.hub.detach(self.viewer)

    def on_connection_close(self) -> None:
        if self.viewer is not None:
            self.hub.detach(self.viewer)


class Health(JsonErrors):
    def initialize(self, hub: Hub) -> None:
        self.hub = hub

    def get(self) -> None:
        healthy, body = self.hub.health()
        self.set_status(200 if healthy else 503)
        self.set_header("Cache-Control", "no-store")
        self.finish(body)


def with_urls(sidecar: dict[str, Any]) -> dict[str, Any]:
    thumbnail = sidecar.get("thumbnail")
    return {**sidecar, "video_url": f"/recordings/{sidecar['video']}",
            "thumbnail_url": f"/recordings/{thumbnail}" if thumbnail else None}


class RecordingList(JsonErrors):
    """A page of recordings, newest first: ?limit=N&before=NAME&from=TS&to=TS."""

    def initialize(self, library: Library) -> None:
        self.library = library

    def get(self) -> None:
        limit = self._number("limit", int, 50)
        if not 1 <= limit <= MAX_PAGE:
            raise tornado.web.HTTPError(400, f"limit must be between 1 and {MAX_PAGE}")
        recordings, cursor = self.library.page(limit, self.get_argument("before", None),
                                               self._number("from", float, None), self._number("to", float, None))
        self.set_header("Cache-Control", "no-store")
        self.finish({"recordings": [with_urls(r) for r in recordings], "next": cursor})

    def _number(self, key: str, kind: type, default: Any) -> Any:
        raw = self.get_argument(key, None)
        if raw is None:
            return default
        try:
            return kind(raw)
        except ValueError:
            raise tornado.web.HTTPError(400, f"{key} must be a number, not {raw!r}") from None


class Recording(JsonErrors):
    def initialize(self, library: Library) -> None:
        self.library = library

    def get(self, name: str) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish(with_urls(self._sidecar(name)))

    def delete(self, name: str) -> None:
        self._sidecar(name)
        self.library.delete(name)
        log.info("deleted recording %s at a client's request", name)
        self.finish({"deleted": name})

    def _sidecar(self, name: str) -> dict[str, Any]:
        sidecar = self.library.get(name)
        if sidecar is None:
            raise tornado.web.HTTPError(404, f"no recording named {name!r}")
        return sidecar


class Status(JsonErrors):
    def initialize(self, hub: Hub, library: Library) -> None:
        self.hub, self.library = hub, library

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish({**self.hub.overview(), "disk": self.library.disk()})


class RecordingFile(tornado.web.StaticFileHandler):
    """Published recording files only: Tornado keeps requests inside the folder, this hides the rest."""

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        path = Path(absolute_path)
        if parse_name(path.stem) is None or path.suffix not in (".mp4", ".jpg", ".json"):
            raise tornado.web.HTTPError(404)
        return super().validate_absolute_path(root, absolute_path)


class LiveSocket(tornado.websocket.WebSocketHandler):
    """The live view: a status message now and every second, then per frame its header and its JPEG."""

    def initialize(self, hub: Hub) -> None:
        self.hub = hub
        self.viewer: Viewer | None = None
        self.sender: asyncio.Task[None] | None = None  # held: the loop keeps only weak references to tasks

    async def get(self, *args: Any, **kwargs: Any) -> None:
        try:
            camera_argument(self)
        except tornado.web.HTTPError as exc:
            self.set_status(400)
            self.finish({"error": exc.log_message, "status": 400})
            return
        await super().get(*args, **kwargs)

    def open(self) -> None:
        self.viewer = self.hub.attach(self.get_argument("camera", None), wants_events=True)
        self.sender = asyncio.create_task(self._send(self.viewer))

    def on_message(self, message: str | bytes) -> None:
        """Clients have nothing to say yet; the socket is one-way."""

    def on_close(self) -> None:
        if self.viewer is not None:
            self.hub.detach(self.viewer)

    async def _send(self, viewer: Viewer) -> None:
        loop = asyncio.get_running_loop()
        last_status = 0.0
        try:
            while not viewer.closed:
                if loop.time() - last_status >= STATUS_EVERY_S:
                    await self.write_message(self.hub.status(viewer.camera))
                    last_status = loop.time()
                events, frame = await viewer.next(timeout=STATUS_EVERY_S)
                for event in events:
                    await self.write_message({"type": "event", "event": event.body()})
                if frame is not None:
                    await self.write_message(_frame_message(frame))
                    await self.write_message(frame.jpeg, binary=True)
        except tornado.websocket.WebSocketClosedError:
            pass
        finally:
            if viewer.closed and self.ws_connection is not None:
                self.close(1001, "gateway stopping")


def _frame_message(frame: Frame) -> str:
    return json.dumps({"type": "frame", "camera": frame.camera, "seq": frame.seq, "ts": frame.ts,
                       "w": frame.width, "h": frame.height, "demo": frame.demo})


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Requests at DEBUG: a health check every few seconds is noise, and failures log themselves."""
    log.debug("%d %s %.1f ms", handler.get_status(), handler._request_summary(),
              1000 * handler.request.request_time())


def make_app(hub: Hub, library: Library) -> tornado.web.Application:
    args = {"hub": hub}
    return tornado.web.Application(
        [
            (r"/()", tornado.web.StaticFileHandler, {"path": WEB_DIR, "default_filename": "index.html"}),
            (r"/webcam", LiveSocket, args),
            (r"/snapshot\.jpg", Snapshot, args),
            (r"/stream\.mjpg", MjpegStream, args),
            (r"/healthz", Health, args),
            (r"/api/recordings", RecordingList, {"library": library}),
            (r"/api/recordings/([^/]+)", Recording, {"library": library}),
            (r"/api/status", Status, {"hub": hub, "library": library}),
            (r"/recordings/([^/]+)", RecordingFile, {"path": str(library.root)}),
        ],
        static_path=WEB_DIR,
        log_function=log_request,
        websocket_ping_interval=10,
        websocket_ping_timeout=10,
    )


async def pump(sock: zmq.asyncio.Socket, hub: Hub) -> None:
    """Move messages from ZeroMQ into the hub, skipping to the newest frame of each camera."""
    while True:
        batch = [await sock.recv_multipart()]
        while sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            batch.append(await sock.recv_multipart())
        newest: dict[str, Frame] = {}
        for parts in batch:
            message = bus.decode_or_log(parts, log)
            if isinstance(message, Frame):
                newest[message.camera] = message
            elif isinstance(message, Event):
                hub.publish_event(message)
        for frame in newest.values():
            hub.publish_frame(frame)


async def serve(cfg: config.Config) -> int:
    stop = async_stop_event()
    hub = Hub()
    try:
        server = make_app(hub, Library(cfg.recordings)).listen(cfg.port, cfg.host)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", cfg.host, cfg.port, exc)
        return 1
    ctx = zmq.asyncio.Context()
    sockets = [
        bus.subscriber(ctx, cfg.frames, [frame_topic()], bus.FRAME_HWM),
        bus.subscriber(ctx, (*cfg.events, *cfg.recorder_events), [event_topic()], bus.EVENT_HWM),
    ]
    pumps = [asyncio.create_task(pump(sock, hub)) for sock in sockets]
    log.info("live view on http://%s:%d/ (frames from %s, events from %s)",
             cfg.host, cfg.port, ",".join(cfg.frames), ",".join(cfg.events))
    await stop.wait()
    server.stop()
    hub.close()
    for task in pumps:
        task.cancel()
    await asyncio.gather(*pumps, return_exceptions=True)
    try:
        await asyncio.wait_for(server.close_all_connections(), timeout=1.0)
    except TimeoutError:
        log.warning("some connections did not close in time")
    for sock in sockets:
        sock.close()
    ctx.term()
    return 0


def main() -> None:
    cfg = config.load_or_exit("gateway", OPTIONS, __doc__.splitlines()[0])
    setup_logging("gateway", cfg.log_level)
    raise SystemExit(asyncio.run(serve(cfg)))


if __name__ == "__main__":
    main()
