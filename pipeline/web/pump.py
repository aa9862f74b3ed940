"""ZeroMQ into the hub and the H.264 tracks, on Tornado's own event loop: the gateway's only reader of the bus."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import zmq

from pipeline.bus.sockets import Decoder
from pipeline.protocol import Event, Frame, Heartbeat, Video, video_topic
from pipeline.stage.lifecycle import message_summary
from pipeline.stage.ratelog import RateLimitedLog
from pipeline.web.hub import Hub
from pipeline.web.tracks import Tracks

log = logging.getLogger("camserver.gateway")


class Pump:
    """Moves messages from one ZeroMQ socket into the hub, on the event loop, skipping to each camera's newest frame.

    The socket's file descriptor is watched with ``add_reader`` and drained with non-blocking
    receives: zmq.asyncio's futures and flag enums cost more per message than the hub's own work.
    ZeroMQ's descriptor is edge-triggered, so a drain goes on until the socket says it holds
    nothing more; a flood is taken MAX_BATCH messages at a time, so HTTP is served in between.
    One message the hub cannot take costs that message and a rate-limited ERROR, not the live view.
    """

    MAX_BATCH = 1000

    def __init__(self, sock: zmq.Socket, hub: Hub, decoder: Decoder, tracks: Tracks | None = None) -> None:
        self._sock, self._hub, self._decoder, self._tracks = sock, hub, decoder, tracks
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
            elif isinstance(message, Video) and self._tracks is not None:  # every access unit: each needs the last
                _publish(self._tracks.publish, message, self._failures)
        for frame in newest.values():
            if _publish(self._hub.publish_frame, frame, self._failures) is False:
                self._failures.warning("cameras", "ignoring frames of camera %s: already %d cameras", frame.camera,
                                       len(self._hub.cameras))


class VideoSubscriptions:
    """The gateway's wants on the bus: a subscription to a camera's ``video.`` topic is the request for its track.

    Subscribing again to a topic already held, then dropping the extra hold, sends the publisher a
    second subscription (which its XPUB_VERBOSE socket passes on) and nothing else: that is how a
    key frame is asked for (docs/protocol.md).
    """

    def __init__(self, sock: zmq.Socket) -> None:
        self._sock = sock

    def want(self, camera: str) -> None:
        self._sock.subscribe(video_topic(camera))

    def release(self, camera: str) -> None:
        self._sock.unsubscribe(video_topic(camera))

    def key_frame(self, camera: str) -> None:
        self._sock.subscribe(video_topic(camera))
        self._sock.unsubscribe(video_topic(camera))


def _publish(publish: Callable[[Any], bool | None], message: Frame | Event | Video,
             failures: RateLimitedLog) -> bool | None:
    try:
        return publish(message)
    except Exception:
        failures.log(logging.ERROR, "hub", "skipped a message the hub could not take: %s", message_summary(message),
                     exc_info=True)
        return None
