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
from pipeline.stage import consume, setup_logging, stop_event

OPTIONS = ("events", "log_level")

log = logging.getLogger("camserver.logger")


def format_event(event: Event) -> str:
    when = datetime.fromtimestamp(event.ts).isoformat(timespec="milliseconds")
    extra = " ".join(f"{key}={value}" for key, value in event.data.items())
    return f"{when} {event.camera} {event.type} seq={event.seq} {extra}".rstrip()


def run(cfg: config.Config, stop: threading.Event) -> int:
    ctx = zmq.Context()
    sock = bus.subscriber(ctx, cfg.events, [event_topic()], bus.EVENT_HWM)
    log.info("printing events from %s", ",".join(cfg.events))

    def handle(message: Frame | Event) -> None:
        if isinstance(message, Event):
            print(format_event(message), flush=True)

    try:
        consume(sock, stop, handle, log)
    finally:
        sock.close()
        ctx.term()
    return 0


def main() -> None:
    cfg = config.load_or_exit("logger", OPTIONS, __doc__.splitlines()[0])
    setup_logging("logger", cfg.log_level)
    raise SystemExit(run(cfg, stop_event()))


if __name__ == "__main__":
    main()
