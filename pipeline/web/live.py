"""The live view: the page's WebSocket, the snapshot and the MJPEG stream for tools.

A camera may have a hundred viewers, so a frame costs each of them as little as can be:

- Each frame's message is made once, bytes on the wire included, and the same bytes object goes to
  every viewer (``Wire``): on the WebSocket the JSON description as a text frame, then the JPEG
  as a binary frame; on MJPEG one multipart part, already in HTTP/1.1 chunked framing. A viewer
  adds no JSON encoding, concatenation or copy of the JPEG of its own; its socket's buffer keeps a
  view of the shared bytes until the kernel has taken them.
- The hub's loop over the viewers writes to each socket there and then (``StreamViewer``): no
  task wakes up per viewer and frame.
- A viewer whose socket still holds its last message is skipped and keeps only the newest frame
  for when the socket drains, so a slow client neither holds up the others nor piles up stale
  frames in the gateway. Nor in the kernel: a live socket takes only UNSENT_BYTES more than it
  has sent (TCP_NOTSENT_LOWAT), where Linux would otherwise let a slow client's socket buffer
  grow to megabytes, seconds of old frames.

A page of several cameras' tiles opens one WebSocket of the second kind (``LiveSocket``) and says
which tiles are on screen; the frames of the others are not sent at all, so a tile scrolled away
or a hidden tab costs neither the gateway nor the network anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
from collections import Counter, deque
from collections.abc import Callable, Container
from typing import Any, Generic, Literal, TypeVar

import tornado.iostream
import tornado.web
import tornado.websocket

from pipeline.protocol import Event, Frame, ProtocolError, check_camera_id
from pipeline.web.base import Guarded, GuardedSocket, camera_argument, known_camera
from pipeline.web.hub import EVENT_BACKLOG, MAX_CAMERAS, OFFLINE_AFTER_S, Hub

STATUS_EVERY_S = 1.0
MJPEG_BOUNDARY = "camserverframe"
WS_TEXT, WS_BINARY = 0x1, 0x2
# Bytes a live socket may hold not yet sent: what a slow client gets late is at most this and its own window.
UNSENT_BYTES = 32 * 1024
# Why a viewer ended: the hub let go of it, its client's socket is gone, or sending to it failed (a bug).
Ending = Literal["closed", "lost", "failed"]
Message = TypeVar("Message", Frame, Event)


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


def websocket_header(opcode: int, length: int) -> bytes:
    """The header of a whole (FIN), unmasked, uncompressed WebSocket frame, as a server sends it (RFC 6455 5.2)."""
    if length < 126:
        return struct.pack("!BB", 0x80 | opcode, length)
    if length <= 0xFFFF:
        return struct.pack("!BBH", 0x80 | opcode, 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, 127, length)


def websocket_text(message: dict[str, Any]) -> bytes:
    """A JSON message as a WebSocket text frame on the wire."""
    data = json.dumps(message, allow_nan=False, separators=(",", ":")).encode()
    return websocket_header(WS_TEXT, len(data)) + data


def websocket_frame(frame: Frame) -> bytes:
    """A frame's two WebSocket messages as one buffer: its JSON description, then its JPEG."""
    description = websocket_text({"type": "frame", "camera": frame.camera, "seq": frame.seq, "ts": frame.ts,
                                  "w": frame.width, "h": frame.height, "demo": frame.demo})
    return description + websocket_header(WS_BINARY, len(frame.jpeg)) + frame.jpeg


def websocket_event(event: Event) -> bytes:
    return websocket_text({"type": "event", "event": event.body()})


def mjpeg_part(frame: Frame) -> bytes:
    """A frame as one part of the multipart MJPEG stream; Seq and Ts headers as on /snapshot.jpg."""
    return (f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n"
            f"X-Camserver-Seq: {frame.seq}\r\nX-Camserver-Ts: {frame.ts:.6f}\r\n\r\n").encode() + frame.jpeg + b"\r\n"


def mjpeg_chunk(frame: Frame) -> bytes:
    """The part as one HTTP/1.1 chunk, which is how an HTTP/1.1 response of unknown length is sent."""
    part = mjpeg_part(frame)
    return b"%x\r\n%b\r\n" % (len(part), part)


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


def make_live(stream: tornado.iostream.IOStream) -> None:
    """Tune a live view's socket for fresh frames: a frame's tail goes out without waiting for the client's
    acknowledgement (TCP_NODELAY), and no more than UNSENT_BYTES wait in the kernel (where the platform can)."""
    stream.set_nodelay(True)
    option = getattr(socket, "TCP_NOTSENT_LOWAT", None)
    if option is not None and stream.socket is not None:
        with contextlib.suppress(OSError):
            stream.socket.setsockopt(socket.IPPROTO_TCP, option, UNSENT_BYTES)


class Shared(Generic[Message]):
    """The wire bytes of the newest message of each camera, made on first use and then handed out.

    Keyed by the message object itself (``is``), not by its value: the hub gives every viewer the
    same object, and hashing or comparing a JPEG would cost what sharing saves.
    """

    def __init__(self, encode: Callable[[Message], bytes]) -> None:
        self._encode = encode
        self._made: dict[str, tuple[Message, bytes]] = {}

    def __call__(self, message: Message) -> bytes:
        made = self._made.get(message.camera)
        if made is not None and made[0] is message:
            return made[1]
        data = self._encode(message)
        if len(self._made) >= MAX_CAMERAS and message.camera not in self._made:
            self._made.clear()  # made-up cameras come and go; the real ones fill it again at their next frame
        self._made[message.camera] = (message, data)
        return data


class Wire:
    """Every live route's shared encodings; one per application."""

    def __init__(self) -> None:
        self.websocket_frame = Shared(websocket_frame)
        self.websocket_event = Shared(websocket_event)
        self.mjpeg_chunk = Shared(mjpeg_chunk)
        self.mjpeg_part = Shared(mjpeg_part)


class StreamViewer:
    """A viewer that writes to its client's socket itself, from within the hub's call.

    At most one write is outstanding: while the socket still holds the last one, a newer frame
    replaces the one of its camera waiting (newest wins, per camera: one camera's frames never push
    out another's), as a newer status replaces the status waiting, and events queue (at most
    EVENT_BACKLOG, oldest dropped); once the socket has taken it all, what waits goes out at once.
    ``write`` hands bytes to the client's IOStream (raising when the socket is gone) and returns
    the future of that write; ``end`` is told once why the viewer ended; ``wants_event``, when
    given, picks the events worth sending.
    """

    def __init__(self, camera: str | None, write: Callable[[bytes], asyncio.Future[None]],
                 frame_bytes: Callable[[Frame], bytes], event_bytes: Callable[[Event], bytes] | None,
                 end: Callable[[Ending], None], wants_event: Callable[[Event], bool] | None = None) -> None:
        self.camera = camera
        self.wants_events = event_bytes is not None
        self.closed = False
        self._write, self._frame_bytes, self._event_bytes, self._end = write, frame_bytes, event_bytes, end
        self._wants_event = wants_event
        self._frames: dict[str, Frame] = {}
        self._status: bytes | None = None
        self._events: deque[bytes] = deque(maxlen=EVENT_BACKLOG)
        self._in_flight = False

    def offer_frame(self, frame: Frame) -> bool:
        dropped = frame.camera in self._frames
        self._frames[frame.camera] = frame
        self._send()
        return dropped

    def offer_event(self, event: Event) -> None:
        if self._event_bytes is None or self.closed or (self._wants_event is not None and not self._wants_event(event)):
            return
        try:
            self._events.append(self._event_bytes(event))
        except Exception:
            self._finish("failed")
            return
        self._send()

    def offer_status(self, message: bytes) -> None:
        self._status = message
        self._send()

    def keep_frames(self, cameras: Container[str]) -> None:
        """Drop the waiting frames of cameras not in ``cameras``: a tile paused gets no frame after the pause."""
        for name in [name for name in self._frames if name not in cameras]:
            del self._frames[name]

    def close(self) -> None:
        self._finish("closed")

    def _send(self) -> None:
        if self._in_flight or self.closed:
            return
        try:
            written = None
            for data in self._take():
                written = self._write(data)
        except (tornado.iostream.StreamClosedError, tornado.websocket.WebSocketClosedError):
            self._finish("lost")
            return
        except Exception:
            self._finish("failed")
            return
        if written is not None and not written.done():
            self._in_flight = True
            written.add_done_callback(self._drained)

    def _take(self) -> list[bytes]:
        """What waits, in the order it goes out: the status, the events, then each camera's newest frame."""
        waiting = [] if self._status is None else [self._status]
        waiting.extend(self._events)
        waiting.extend(self._frame_bytes(frame) for frame in self._frames.values())
        self._status = None
        self._frames.clear()
        self._events.clear()
        return waiting

    def _drained(self, written: asyncio.Future[None]) -> None:
        self._in_flight = False
        if written.exception() is None:
            self._send()
        else:
            self._finish("lost")

    def _finish(self, why: Ending) -> None:
        if not self.closed:
            self.closed = True
            self._status = None
            self._frames.clear()
            self._events.clear()
            self._end(why)


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
