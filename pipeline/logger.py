"""Logger stage: prints one line per event, the example of attaching your own subscriber.

Any program can do what this one does: connect a SUB socket to the events endpoint, subscribe to
``b"event."`` and decode with pipeline.protocol. It binds nothing, so it can come and go freely.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

import zmq

from pipeline import bus, config
from pipeline.protocol import Event, Frame, event_topic
from pipeline.stage import consume, main

OPTIONS = ("events", "log_level")

log = logging.getLogger("camserver.logger")


def format_event(event: Event) -> str:
    when = datetime.fromtimestamp(event.ts).isoformat(timespec="milliseconds")
    extra = " ".join(f"{key}={value}" for key, value in event.data.items())
    return f"{when} {event.camera} {event.type} seq={event.seq} {extra}".rstrip()


def run(cfg: config.Config, stop: threading.Event) -> int:
    def handle(message: Frame | Event) -> None:
        if isinstance(message, Event):
            print(format_event(message), flush=True)

    with zmq.Context() as ctx, bus.subscriber(ctx, cfg.events, [event_topic()], bus.EVENT_HWM) as sock:
        log.info("printing events from %s", ",".join(cfg.events))
        consume(sock, stop, handle, log)
    return 0


if __name__ == "__main__":
    main("logger", OPTIONS, __doc__, run)
