"""Detector stage: subscribes to frames and binds the events socket (motion detection: issue 3).

For now it only counts the frames it receives and logs the counts, so that the pipeline's shape,
its sockets and its process management are in place for the detector to fill in.
"""

from __future__ import annotations

import logging
import threading

import zmq

from pipeline import bus, config
from pipeline.protocol import frame_topic
from pipeline.stage import Tally, consume, main

OPTIONS = ("frames", "events", "log_level")

log = logging.getLogger("camserver.detector")


def run(cfg: config.Config, stop: threading.Event) -> int:
    with (
        zmq.Context() as ctx,
        bus.publisher(ctx, cfg.events, bus.EVENT_HWM),
        bus.subscriber(ctx, cfg.frames, [frame_topic()], bus.FRAME_HWM) as frames,
    ):
        log.info("reading frames from %s, publishing events on %s", ",".join(cfg.frames), ",".join(cfg.events))
        consume(frames, stop, Tally(log), log)
    return 0


if __name__ == "__main__":
    main("detector", OPTIONS, __doc__, run)
