"""Capture stage: reads pictures from one camera and publishes them as JPEG frames.

One process per camera. It binds the frames PUB socket, so every consumer connects to it and
may come and go; when it restarts, its ``seq`` starts again from 0. A source that delivers JPEGs
(an MJPEG webcam, file or HTTP stream) is passed through byte for byte (pipeline/video/frames.py):
nothing is decoded or encoded unless a smaller size than the source's own is asked for. Sources
are described in docs/cameras.md.
"""

from __future__ import annotations

import logging
import threading

import zmq

from pipeline.bus import curve
from pipeline.bus.sockets import FRAME_HWM, Heartbeats, publisher
from pipeline.config.options import DEFAULT_FPS, Config, ConfigError
from pipeline.stage.lifecycle import main
from pipeline.video.frames import FrameEncoder
from pipeline.video.pacing import Pacer
from pipeline.video.sources import EndOfStream, FrameSource, open_source

OPTIONS = ("camera", "source", "fps", "width", "height", "quality", "loop", "seed", "frames", "log_level", "log_time",
           "curve_keys", "insecure_bus")

log = logging.getLogger("camserver.capture")


def check(cfg: Config) -> None:
    if (cfg.width is None) != (cfg.height is None):
        raise ConfigError("give both --width and --height (CAMSERVER_WIDTH, CAMSERVER_HEIGHT), or neither "
                          "for the source's own size")


def run(cfg: Config, stop: threading.Event) -> int:
    keys = curve.bus_curve(cfg.curve_keys, cfg.insecure_bus, binds=cfg.frames, connects=())
    source: FrameSource = open_source(cfg)
    fps = cfg.fps or source.native_fps or DEFAULT_FPS
    encoder = FrameEncoder(cfg, source.demo)
    pacer = Pacer(fps)
    size = f"at most {cfg.width}x{cfg.height} in the source's shape" if cfg.width else "the source's own size"
    try:
        with (
            zmq.Context() as ctx,
            curve.authenticated(ctx, keys),
            publisher(ctx, cfg.frames, FRAME_HWM, keys) as pub,
        ):
            log.info("camera %s: %s at %g fps, %s, publishing on %s",
                     cfg.camera, source.description, fps, size, ",".join(cfg.frames))
            heartbeats = Heartbeats("capture", pub, lambda: {
                "frames_published": encoder.passed + encoder.encoded, "frames_passed": encoder.passed,
                "frames_encoded": encoder.encoded}, cfg.camera)
            while not stop.wait(pacer.delay()):
                heartbeats.tick()
                try:
                    grab = source.read()
                except EndOfStream:
                    log.info("end of %s", source.description)
                    break
                frame = encoder.encode(grab) if grab is not None else None
                if frame is not None:
                    pub.send_multipart(frame.encode())
    finally:
        source.close()
        log.info("published %d frames: %d passed through as the source's JPEGs, %d encoded",
                 encoder.passed + encoder.encoded, encoder.passed, encoder.encoded)
    return 0


if __name__ == "__main__":
    main("capture", OPTIONS, __doc__, run, check)
