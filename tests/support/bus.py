"""Listening on the ZeroMQ bus as one more subscriber: the frames capture publishes, the stages' events."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import zmq

from pipeline.bus.sockets import EVENT_HWM, Decoder, receive, subscriber
from pipeline.protocol import Event, Frame, event_topic, frame_topic
from tests.support.ports import Ports

log = logging.getLogger(__name__)


def collect(endpoint: str, until: Callable[[list[Frame]], bool], timeout: float) -> list[Frame]:
    """The frames published at ``endpoint`` until ``until(frames)`` is true or ``timeout`` has passed."""
    ctx = zmq.Context()
    sock = subscriber(ctx, [endpoint], [frame_topic()], 1000)
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(frames):
            if sock.poll(100):
                frames.append(Frame.decode(sock.recv_multipart()))
    finally:
        sock.close()
        ctx.term()
    return frames


class EventLog:
    """Every event of the detector and the recorder, collected by a subscriber of both."""

    def __init__(self, ports: Ports) -> None:
        self._ctx = zmq.Context()
        self._sock = subscriber(self._ctx, [ports.events, ports.recorder_events], [event_topic()], EVENT_HWM)
        self.events: list[Event] = []
        self._decoder = Decoder(log)

    def wait_for(self, kind: str, timeout: float) -> Event:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events if e.type == kind]
            if found:
                return found[0]
            self.events += [m for m in receive(self._sock, 100, self._decoder) if isinstance(m, Event)]
        raise AssertionError(f"no {kind} event within {timeout} s; saw {sorted({e.type for e in self.events})}")

    def close(self) -> None:
        self._sock.close()
        self._ctx.term()
