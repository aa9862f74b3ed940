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
from pipeline.stage import Tally, consume, setup_logging, stop_event

OPTIONS = ("frames", "events", "log_level")

log = logging.getLogger("camserver.detector")


def run(cfg: config.Config, stop: threading.Event) -> int:
    ctx = zmq.Context()
    try:
        events = bus.publisher(ctx, cfg.events, bus.EVENT_HWM)
    except zmq.ZMQError as exc:
        log.error("cannot bind events endpoint %s: %s", ",".join(cfg.events), exc)
        ctx.term()
        return 1
    frames = bus.subscriber(ctx, cfg.frames, [frame_topic()], bus.FRAME_HWM)
    log.info("reading frames from %s, publishing events on %s", ",".join(cfg.frames), ",".join(cfg.events))
    try:
        consume(frames, stop, Tally(log), log)
    finally:
        frames.close()
        events.close()
        ctx.term()
    return 0


def main() -> None:
    cfg = config.load_or_exit("detector", OPTIONS, __doc__.splitlines()[0])
    setup_logging("detector", cfg.log_level)
    raise SystemExit(run(cfg, stop_event()))


if __name__ == "__main__":
    main()
