"""The live view's routes: the page's WebSocket, the snapshot and the MJPEG stream for tools.

Each frame's bytes are made once for every viewer (pipeline/web/wire.py) and each viewer writes
them to its own socket, skipping what a slow client cannot take (pipeline/web/viewers.py). A page
of several cameras' tiles opens one WebSocket of the second kind (``LiveSocket``) and says which
tiles are on screen; the frames of the others are not sent at all, so a tile scrolled away or a
hidden tab costs neither the gateway nor the network anything. The messages are documented in
docs/web-api.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import tornado.iostream
import tornado.web
import tornado.websocket

from pipeline.protocol import Event, ProtocolError, check_camera_id
from pipeline.web.base import Guarded, GuardedSocket, camera_argument, known_camera
from pipeline.web.camera_state import OFFLINE_AFTER_S
from pipeline.web.hub import MAX_CAMERAS, Hub
from pipeline.web.viewers import Ending, StreamQuota, StreamViewer, make_live
from pipeline.web.wire import MJPEG_BOUNDARY, Wire, websocket_text

STATUS_EVERY_S = 1.0


def watch_argument(handler: tornado.web.RequestHandler, camera: str | None) -> set[str] | None:
    """The cameras of ``?watch=ID,ID`` (empty: none yet), or None when the request has no ``watch``.

    400 for an id no camera can have, for more than MAX_CAMERAS, or for a camera other than the
    request's own ``?camera=``. Cameras not seen yet may be named: their frames come once they stream.
    """
    raw = handler.get_argument("watch", None)
    if raw is None:
        return None
    names = {name for name in raw.split(",") if name}
    if len(names) > MAX_CAMERAS:
        raise tornado.web.HTTPError(400, "watch at most %d cameras", MAX_CAMERAS)
    for name in names:
        try:
            check_camera_id(name)
        except ProtocolError as exc:
            raise tornado.web.HTTPError(400, str(exc)) from None
        if camera is not None and name != camera:
            raise tornado.web.HTTPError(400, "this socket is for camera %r only, not %r", camera, name)
    return names


class Snapshot(Guarded):
    def initialize(self, hub: Hub) -> None:
        self.hub = hub

    def get(self) -> None:
        """The newest frame of ``?camera=`` (404 for a camera never seen), or of the default camera."""
        camera = known_camera(self, self.hub.cameras)
        frame = self.hub.newest(camera)
        if frame is None and camera is None:
            raise tornado.web.HTTPError(503, "no frame has arrived from the camera yet")
        if frame is None:
            raise tornado.web.HTTPError(503, "camera %s is offline: no frame from it for %g s", camera,
                                        OFFLINE_AFTER_S)
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Camserver-Camera", frame.camera)
        self.set_header("X-Camserver-Seq", str(frame.seq))
        self.set_header("X-Camserver-Ts", f"{frame.ts:.6f}")
        self.finish(frame.jpeg)


class MjpegStream(Guarded):
    """One MJPEG part per frame; a client that reads slowly gets the newest frame when it is ready.

    ``?camera=`` names the camera; one not seen yet is waited for, as an offline one is: a player
    started before its camera, or across a restart of the gateway, gets the picture once it comes.

    The headers go out through Tornado; the parts go straight to the connection's stream, made
    once per frame for every viewer (``Wire``), in the framing Tornado itself uses for a response
    of unknown length: chunked for an HTTP/1.1 request, plain until the close for HTTP/1.0.
    """

    def initialize(self, hub: Hub, quota: StreamQuota, wire: Wire) -> None:
        self.hub, self.quota, self.wire = hub, quota, wire
        self.viewer: StreamViewer | None = None
        self.ended = asyncio.Event()

    async def get(self) -> None:
        camera = camera_argument(self)
        address = self.request.remote_ip or "?"
        self.quota.refuse_if_full(address)
        self.quota.take(address)
        try:
            self.set_header("Content-Type", f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}")
            self.set_header("Cache-Control", "no-store")
            await self.flush()
            stream = self.request.connection.stream  # type: ignore[attr-defined]
            make_live(stream)
            parts = self.wire.mjpeg_chunk if self.request.version == "HTTP/1.1" else self.wire.mjpeg_part
            self.viewer = self.hub.add(StreamViewer(camera, stream.write, parts, None, self._ended))
            await self.ended.wait()
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            if self.viewer is not None:
                self.hub.detach(self.viewer)
            self.quota.give_back(address)

    def _ended(self, why: Ending) -> None:
        if why == "failed":
            self.settings["guard"].notes.log(logging.ERROR, "live", "MJPEG stream of %s failed; closing it",
                                             self.viewer.camera if self.viewer else "?", exc_info=True)
            self.request.connection.stream.close()  # type: ignore[attr-defined]
        self.ended.set()

    def on_connection_close(self) -> None:
        self.ended.set()


class LiveSocket(GuardedSocket):
    """The live view over a WebSocket, of one of two kinds, chosen by the URL.

    One camera's (``/webcam``, ``/webcam?camera=ID``): a ``status`` message now and every second,
    then per frame its ``frame`` description and its JPEG, and the camera's events. Without
    ``?camera=``, the default camera's; a camera not seen yet is waited for, as on MJPEG.

    A page of tiles (``/webcam?watch=ID,ID``, ``?watch=`` for none yet): frames of the watched
    cameras only, each with a description naming its camera; a ``cameras`` message now and every
    second with each camera's status (as /api/status has it: online, fps, size, demo, motion,
    recording, viewers), so a new camera gets a tile; and every camera's events but the per-frame
    ``delta`` of cameras not watched. The client changes the set with text messages
    ``{"type": "watch", "camera": ID}`` and ``{"type": "unwatch", "camera": ID}``, one camera at a
    time, so that no message grows with the number of cameras; after an unwatch no frame of that
    camera is sent (one already written to the socket may still arrive). With ``?camera=ID`` too,
    only that camera may be watched and only its events come. A malformed message closes the
    socket with 1008.
    """

    def initialize(self, hub: Hub, quota: StreamQuota, wire: Wire) -> None:
        self.hub, self.quota, self.wire = hub, quota, wire
        self.camera: str | None = None
        self.watching: set[str] | None = None  # the cameras of a page of tiles; None: a one-camera socket
        self.viewer: StreamViewer | None = None
        self.statuses: asyncio.Task[None] | None = None  # held: the loop keeps only weak references to tasks

    async def get(self, *args: Any, **kwargs: Any) -> None:
        self.camera = camera_argument(self)
        self.watching = watch_argument(self, self.camera)
        self.quota.refuse_if_full(self.request.remote_ip or "?")
        await super().get(*args, **kwargs)

    def open(self) -> None:
        self.quota.take(self.request.remote_ip or "?")
        make_live(self.ws_connection.stream)  # type: ignore[union-attr]
        viewer = StreamViewer(self.camera, self._write, self.wire.websocket_frame, self.wire.websocket_event,
                              self._ended, None if self.watching is None else self._wants_event)
        self.viewer = viewer
        viewer.offer_status(self._status())  # the status first, as the page expects
        self.hub.add(viewer, self.watching)
        self.statuses = asyncio.create_task(self._send_statuses(viewer))

    def on_message(self, message: str | bytes) -> None:
        """A page of tiles says which cameras it shows; a one-camera socket is one-way and ignores messages."""
        if self.watching is None or self.viewer is None or self.viewer.closed:
            return
        problem = self._change_watch(message)
        if problem is not None:
            self.close(1008, problem[:120])

    def _change_watch(self, message: str | bytes) -> str | None:
        """Apply a watch or unwatch message; what is wrong with it otherwise."""
        assert self.watching is not None and self.viewer is not None
        try:
            request = json.loads(message) if isinstance(message, str) else None
        except ValueError:
            request = None
        if (not isinstance(request, dict) or request.get("type") not in ("watch", "unwatch")
                or not isinstance(request.get("camera"), str)):
            return 'expected {"type": "watch" or "unwatch", "camera": ID}'
        camera = request["camera"]
        try:
            check_camera_id(camera)
        except ProtocolError:
            return "bad camera id"
        if self.camera is not None and camera != self.camera:
            return f"this socket is for camera {self.camera} only"
        if request["type"] == "watch":
            if camera not in self.watching and len(self.watching) >= MAX_CAMERAS:
                return f"watch at most {MAX_CAMERAS} cameras"
            self.watching.add(camera)
        else:
            self.watching.discard(camera)
            self.viewer.keep_frames(self.watching)
        self.hub.watch(self.viewer, self.watching)
        return None

    def _wants_event(self, event: Event) -> bool:
        """A page of tiles gets every event but the per-frame ``delta`` of the cameras it does not show."""
        return event.type != "delta" or (self.watching is not None and event.camera in self.watching)

    def on_close(self) -> None:
        if self.viewer is not None:
            self.hub.detach(self.viewer)
            self.quota.give_back(self.request.remote_ip or "?")
        if self.statuses is not None:
            self.statuses.cancel()

    def _write(self, data: bytes) -> asyncio.Future[None]:
        """Whole WebSocket frames made by ``Wire``, written as Tornado's ``write_message`` would: this
        socket neither compresses nor masks, so its frames are the same bytes for every viewer."""
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            raise tornado.websocket.WebSocketClosedError()
        return connection.stream.write(data)  # type: ignore[attr-defined]

    def _status(self) -> bytes:
        if self.watching is None:
            return websocket_text(self.hub.status(self.camera))
        return websocket_text({"type": "cameras", "cameras": self.hub.overview(self.camera)["cameras"]})

    async def _send_statuses(self, viewer: StreamViewer) -> None:
        while not viewer.closed:
            await asyncio.sleep(STATUS_EVERY_S)
            viewer.offer_status(self._status())

    def _ended(self, why: Ending) -> None:
        """Close the socket unless its client is gone: 1001 when the gateway stops, 1011 after a failure (a
        socket that stays open but shows nothing would leave the page waiting; closed, the page reconnects)."""
        if why == "failed":
            camera = self.viewer.camera if self.viewer is not None else None
            self.settings["guard"].notes.log(logging.ERROR, "live", "live view of %s failed; closing it so the "
                                             "page reconnects", camera or "the default camera", exc_info=True)
            self.close(1011, "internal error")
        elif why == "closed" and self.ws_connection is not None:
            self.close(1001, "gateway stopping")
