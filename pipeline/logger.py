"""Logger stage: prints one line per episode event, the example of attaching your own subscriber.

Any program can do what this one does: connect a SUB socket to the events endpoint (and, for
``--frame-stats``, the frames endpoint), subscribe to ``b"event."`` / ``b"frame."`` and decode
with pipeline.protocol. It binds nothing, so it can come and go freely. Per-frame ``delta``
events and the recorder's ``recorder_status`` heartbeats are left out: they are for machines.

It is the one place events are printed (the stages that send them log them at DEBUG only), as
log lines like every stage's, or with ``--json`` as bare JSON lines on stdout for a program.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import zmq

from pipeline.bus.curve import bus_curve
from pipeline.bus.sockets import EVENT_HWM, subscriber
from pipeline.config.options import Config
from pipeline.protocol import Event, Frame, event_topic, frame_topic
from pipeline.stage.lifecycle import consume, main

OPTIONS = ("events", "recorder_events", "frames", "json", "frame_stats", "log_level", "log_time", "curve_keys",
           "insecure_bus")
QUIET_TYPES = frozenset({"delta", "recorder_status"})

log = logging.getLogger("camserver.logger")


def format_event(event: Event, as_json: bool) -> str:
    """A JSON line, or the text of a log line (the log line carries the time)."""
    if as_json:
        return json.dumps(event.body(), separators=(",", ":"))
    extra = " ".join(f"{key}={value}" for key, value in event.data.items())
    return f"{event.camera} {event.type} seq={event.seq} {extra}".rstrip()


class FrameStats:
    """Frames received and dropped (gaps in ``seq``) per camera, printed once a second."""

    def __init__(self, as_json: bool) -> None:
        self._json = as_json
        self._last_seq: dict[str, int] = {}
        self._counts: dict[str, list[int]] = {}
        self._since = time.monotonic()

    def add(self, frame: Frame) -> None:
        received_dropped = self._counts.setdefault(frame.camera, [0, 0])
        received_dropped[0] += 1
        last = self._last_seq.get(frame.camera)
        if last is not None and frame.seq > last + 1:
            received_dropped[1] += frame.seq - last - 1
        self._last_seq[frame.camera] = frame.seq

    def lines(self) -> list[str]:
        """The summary lines when a second has passed since the last ones, else nothing."""
        elapsed = time.monotonic() - self._since
        if elapsed < 1.0:
            return []
        lines = []
        for camera, (received, dropped) in sorted(self._counts.items()):
            stats = {"camera": camera, "type": "frame_stats", "fps": round(received / elapsed, 2), "dropped": dropped}
            lines.append(json.dumps(stats) if self._json
                         else f"{camera} frames: {stats['fps']} fps, {dropped} dropped")
        self._counts = {camera: [0, 0] for camera in self._counts}
        self._since = time.monotonic()
        return lines


def run(cfg: Config, stop: threading.Event) -> int:
    stats = FrameStats(cfg.json) if cfg.frame_stats else None

    def show(line: str) -> None:
        if cfg.json:
            print(line, flush=True)
        else:
            log.info("%s", line)

    def handle(message: Frame | Event) -> None:
        if isinstance(message, Event) and message.type not in QUIET_TYPES:
            show(format_event(message, cfg.json))
        elif isinstance(message, Frame) and stats is not None:
            stats.add(message)
        for line in stats.lines() if stats is not None else ():
            show(line)

    endpoints = (*cfg.events, *cfg.recorder_events, *(cfg.frames if stats is not None else ()))
    topics = [event_topic(), frame_topic()] if stats is not None else [event_topic()]
    keys = bus_curve(cfg.curve_keys, cfg.insecure_bus, binds=(), connects=endpoints)
    with zmq.Context() as ctx, subscriber(ctx, endpoints, topics, EVENT_HWM, keys) as sock:
        log.info("printing events from %s%s", ",".join((*cfg.events, *cfg.recorder_events)),
                 f" and frame statistics from {','.join(cfg.frames)}" if stats is not None else "")
        consume(sock, stop, handle, log)
    return 0


if __name__ == "__main__":
    main("logger", OPTIONS, __doc__, run)
