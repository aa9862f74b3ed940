"""The live view: the page's WebSocket, the snapshot and the MJPEG stream for tools."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from typing import Any

import tornado.iostream
import tornado.web
import tornado.websocket

from pipeline.httpd.base import Guarded, GuardedSocket
from pipeline.hub import Hub, Viewer
from pipeline.protocol import Frame, ProtocolError, check_camera_id

STATUS_EVERY_S = 1.0
MJPEG_BOUNDARY = "camserverframe"


def camera_argument(handler: tornado.web.RequestHandler) -> str | None:
    """The ``?camera=`` of a request, checked; HTTPError 400 for an id no camera can have."""
    camera = handler.get_argument("camera", None)
    if camera is None:
        return None
    try:
        return check_camera_id(camera)
    except ProtocolError as exc:
        raise tornado.web.HTTPError(400, str(exc)) from None


class StreamQuota:
    """Live streams (WebSocket and MJPEG) per client address: one host cannot take every viewer slot."""

    def __init__(self, per_client: int) -> None:
        self.per_client = per_client
        self._open: Counter[str] = Counter()

    def full(self, address: str) -> bool:
        return self._open[address] >= self.per_client

    def take(self, address: str) -> None:
        self._open[address] += 1

    def give_back(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]

    def refuse_if_full(self, address: str) -> None:
        if self.full(address):
            raise tornado.web.HTTPError(429, "too many live streams from your address (at most %d)", self.per_client)


class Snapshot(Guarded):
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


class MjpegStream(Guarded):
    """One MJPEG part per frame; a client that reads slowly gets the newest frame when it is ready."""

    def initialize(self, hub: Hub, quota: StreamQuota) -> None:
        self.hub, self.quota = hub, quota
        self.viewer: Viewer | None = None

    async def get(self) -> None:
        camera = camera_argument(self)
        address = self.request.remote_ip or "?"
        self.quota.refuse_if_full(address)
        self.quota.take(address)
        self.viewer = self.hub.attach(camera, wants_events=False)
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
            self.quota.give_back(address)

    def on_connection_close(self) -> None:
        if self.viewer is not None:
            self.hub.detach(self.viewer)


class LiveSocket(GuardedSocket):
    """The live view: a status message now and every second, then per frame its header and its JPEG."""

    def initialize(self, hub: Hub, quota: StreamQuota) -> None:
        self.hub, self.quota = hub, quota
        self.viewer: Viewer | None = None
        self.sender: asyncio.Task[None] | None = None  # held: the loop keeps only weak references to tasks

    async def get(self, *args: Any, **kwargs: Any) -> None:
        camera_argument(self)
        self.quota.refuse_if_full(self.request.remote_ip or "?")
        await super().get(*args, **kwargs)

    def open(self) -> None:
        self.quota.take(self.request.remote_ip or "?")
        self.viewer = self.hub.attach(self.get_argument("camera", None), wants_events=True)
        self.sender = asyncio.create_task(self._send(self.viewer))

    def on_message(self, message: str | bytes) -> None:
        """Clients have nothing to say yet; the socket is one-way."""

    def on_close(self) -> None:
        if self.viewer is not None:
            self.hub.detach(self.viewer)
            self.quota.give_back(self.request.remote_ip or "?")

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
        except Exception:
            # A sender that dies leaves an open socket that shows nothing: close it, so the page reconnects.
            self.settings["guard"].notes.log(logging.ERROR, "live", "live view of %s failed; closing it so the "
                                             "page reconnects", viewer.camera or "the default camera", exc_info=True)
            self.close(1011, "internal error")
        finally:
            if viewer.closed and self.ws_connection is not None:
                self.close(1001, "gateway stopping")


def _frame_message(frame: Frame) -> str:
    return json.dumps({"type": "frame", "camera": frame.camera, "seq": frame.seq, "ts": frame.ts,
                       "w": frame.width, "h": frame.height, "demo": frame.demo})
