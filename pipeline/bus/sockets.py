"""ZeroMQ sockets set up the one way every stage needs them, encrypted when they leave the host.

Publishers bind and subscribers connect, so stages may start in any order, restart, or move to
another host: ZeroMQ reconnects by itself. Frame sockets keep tiny queues (a viewer wants the
newest frame, not a backlog of stale ones); event sockets keep long ones, because an event is
small and losing a ``motion_end`` costs a recording. Linger is 0 everywhere, so a stopping stage
never waits on a peer that is gone.

With a ``Curve`` (pipeline.bus.curve) every socket is encrypted and both of its ends authenticated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence

import zmq

from pipeline.bus.curve import secure_client, secure_server
from pipeline.bus.keyfiles import Curve
from pipeline.protocol import HEARTBEAT_EVERY_S, Event, Frame, Heartbeat, ProtocolError, Video, decode
from pipeline.stage.ratelog import RateLimitedLog

FRAME_HWM = 2
EVENT_HWM = 1000
# An H.264 track cannot skip: every access unit after a key frame needs the one before. A subscriber
# that lags holds up to 10 s of a 30 fps track here before ZeroMQ drops (it then waits for a key frame).
VIDEO_HWM = 300


def publisher(ctx: zmq.Context, endpoints: Iterable[str], hwm: int, curve: Curve | None = None) -> zmq.Socket:
    """A PUB socket bound to every endpoint; OSError names the endpoint that cannot be bound.

    With ``curve`` it is a CURVE server, and ``ctx`` must have a running curve.Authenticator
    (RuntimeError if not: without ZAP any client knowing the public key would be admitted).
    """
    return _bound(ctx.socket(zmq.PUB), endpoints, hwm, curve)


def xpublisher(ctx: zmq.Context, endpoints: Iterable[str], hwm: int, curve: Curve | None = None) -> zmq.Socket:
    """A publisher that also hands its stage every subscription, repeated ones included (XPUB_VERBOSE).

    For a stage whose work is on demand: ``recv()`` gives ``b"\\x01" + topic`` for each subscription
    and ``b"\\x00" + topic`` once the last subscriber of a topic unsubscribed or went away. CURVE and
    binding as ``publisher``.
    """
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.XPUB_VERBOSE, 1)
    return _bound(sock, endpoints, hwm, curve)


def _bound(sock: zmq.Socket, endpoints: Iterable[str], hwm: int, curve: Curve | None) -> zmq.Socket:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, hwm)
    if curve is not None:
        secure_server(sock, curve)
    for endpoint in endpoints:
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            sock.close()
            raise OSError(f"cannot bind {endpoint}: {exc}") from None
    return sock


def subscriber(ctx: zmq.Context, endpoints: Iterable[str], topics: Iterable[bytes], hwm: int,
               curve: Curve | None = None) -> zmq.Socket:
    """A SUB socket connected to every endpoint and subscribed to every topic prefix.

    With ``curve`` it is a CURVE client with the bus's pair, and takes messages only from a
    publisher that proves it holds the bus's secret key.
    """
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, hwm)
    if curve is not None:
        secure_client(sock, curve)
    for topic in topics:
        sock.setsockopt(zmq.SUBSCRIBE, topic)
    for endpoint in endpoints:
        sock.connect(endpoint)
    return sock


class Heartbeats:
    """Sends a stage's heartbeat on its PUB socket whenever HEARTBEAT_EVERY_S has passed.

    ``counters``, when given, is asked at each heartbeat for the stage's running totals (names and
    limits in pipeline.protocol), which the gateway shows on /metrics: the stage keeps no HTTP server.
    """

    def __init__(self, stage: str, sock: zmq.Socket, counters: Callable[[], dict[str, int]] | None = None,
                 camera: str | None = None) -> None:
        self._stage, self._sock, self._counters, self._camera = stage, sock, counters, camera
        self._next = 0.0

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self._next:
            counters = self._counters() if self._counters is not None else {}
            self._sock.send_multipart(Heartbeat(self._stage, time.time(), counters, self._camera).encode())
            self._next = now + HEARTBEAT_EVERY_S


class Decoder:
    """A stage's door to the bus: decodes messages, counting and skipping malformed ones.

    A peer can send malformed messages as fast as the network carries them, so they cost one
    warning per interval with a count (RateLimitedLog), never a line each, and never the stage.
    """

    def __init__(self, log: logging.Logger) -> None:
        self.malformed = 0
        self._notes = RateLimitedLog(log)

    def __call__(self, parts: Sequence[bytes]) -> Frame | Event | Heartbeat | Video | None:
        try:
            return decode(parts)
        except ProtocolError as exc:
            self.malformed += 1
            self._notes.warning("malformed", "skipping malformed message (%d parts): %s", len(parts), exc)
            return None


def receive(sock: zmq.Socket, timeout_ms: int, decoder: Decoder) -> list[Frame | Event]:
    """Wait up to ``timeout_ms`` for a message, then take every frame and event already queued, in order.

    Returning after a timeout with nothing lets a stage's loop notice a stop request. Heartbeats
    are for the gateway's pump only; a stage that reads with this function never sees one.
    """
    messages: list[Frame | Event] = []
    if not sock.poll(timeout_ms):
        return messages
    while True:
        try:
            parts = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return messages
        message = decoder(parts)
        if isinstance(message, Frame | Event):
            messages.append(message)
