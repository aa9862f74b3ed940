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
from pipeline.stage import Tally, consume, main

OPTIONS = ("frames", "events", "log_level")
RECORDER_FRAME_HWM = 100

log = logging.getLogger("camserver.recorder")


def run(cfg: config.Config, stop: threading.Event) -> int:
    endpoints = (*cfg.frames, *cfg.events)
    with (
        zmq.Context() as ctx,
        bus.subscriber(ctx, endpoints, [frame_topic(), event_topic()], RECORDER_FRAME_HWM) as sock,
    ):
        log.info("reading frames from %s and events from %s", ",".join(cfg.frames), ",".join(cfg.events))
        consume(sock, stop, Tally(log), log)
    return 0


if __name__ == "__main__":
    main("recorder", OPTIONS, __doc__, run)
