"""Recorder stage: subscribes to frames and events (writing recordings: issue 4).

For now it only counts what it receives and logs the counts, so that the pipeline's shape, its
sockets and its process management are in place for the recorder to fill in. It subscribes to
every frame with a deep queue, unlike viewers, because a recording needs every frame.
"""

from __future__ import annotations

import logging
import threading

import zmq

from pipeline import bus, config
from pipeline.protocol import event_topic, frame_topic
from pipeline.stage import Tally, consume, setup_logging, stop_event

OPTIONS = ("frames", "events", "log_level")
RECORDER_FRAME_HWM = 100

log = logging.getLogger("camserver.recorder")


def run(cfg: config.Config, stop: threading.Event) -> int:
    ctx = zmq.Context()
    sock = bus.subscriber(ctx, cfg.frames, [frame_topic()], RECORDER_FRAME_HWM)
    for endpoint in cfg.events:
        sock.connect(endpoint)
    sock.setsockopt(zmq.SUBSCRIBE, event_topic())
    log.info("reading frames from %s and events from %s", ",".join(cfg.frames), ",".join(cfg.events))
    try:
        consume(sock, stop, Tally(log), log)
    finally:
        sock.close()
        ctx.term()
    return 0


def main() -> None:
    cfg = config.load_or_exit("recorder", OPTIONS, __doc__.splitlines()[0])
    setup_logging("recorder", cfg.log_level)
    raise SystemExit(run(cfg, stop_event()))


if __name__ == "__main__":
    main()
