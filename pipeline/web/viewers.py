"""Live viewers that write to their client's socket themselves, and the cap on them per client address.

The hub's loop over the viewers writes to each socket there and then (``StreamViewer``): no task
wakes up per viewer and frame. A viewer whose socket still holds its last message is skipped and
keeps only the newest frame for when the socket drains, so a slow client neither holds up the
others nor piles up stale frames in the gateway. Nor in the kernel: a live socket takes only
UNSENT_BYTES more than it has sent (TCP_NOTSENT_LOWAT), where Linux would otherwise let a slow
client's socket buffer grow to megabytes, seconds of old frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import Counter, deque
from collections.abc import Callable, Container
from typing import Literal

import tornado.iostream
import tornado.web
import tornado.websocket

from pipeline.protocol import Event, Frame

# Events waiting for a slow viewer at most; the oldest are dropped.
EVENT_BACKLOG = 200
# Bytes a live socket may hold not yet sent: what a slow client gets late is at most this and its own window.
UNSENT_BYTES = 32 * 1024
# Why a viewer ended: the hub let go of it, its client's socket is gone, or sending to it failed (a bug).
Ending = Literal["closed", "lost", "failed"]


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


def make_live(stream: tornado.iostream.IOStream) -> None:
    """Tune a live view's socket for fresh frames: a frame's tail goes out without waiting for the client's
    acknowledgement (TCP_NODELAY), and no more than UNSENT_BYTES wait in the kernel (where the platform can)."""
    stream.set_nodelay(True)
    option = getattr(socket, "TCP_NOTSENT_LOWAT", None)
    if option is not None and stream.socket is not None:
        with contextlib.suppress(OSError):
            stream.socket.setsockopt(socket.IPPROTO_TCP, option, UNSENT_BYTES)


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
