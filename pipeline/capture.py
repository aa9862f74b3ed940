"""Capture stage: reads pictures from one camera, encodes them as JPEG and publishes them.

One process per camera. It binds the frames PUB socket, so every consumer connects to it and
may come and go; when it restarts, its ``seq`` starts again from 0.
"""

from __future__ import annotations

import logging
import threading

import cv2
import zmq

from pipeline import bus, config
from pipeline.pacing import Pacer
from pipeline.protocol import Frame
from pipeline.sources import EndOfStream, FrameSource, Grab, open_source
from pipeline.stage import main

OPTIONS = ("camera", "source", "fps", "width", "height", "quality", "loop", "seed", "frames", "log_level", "log_time")

log = logging.getLogger("camserver.capture")


class FrameEncoder:
    """Turns grabbed pictures into numbered JPEG frames of the configured size."""

    def __init__(self, cfg: config.Config, demo: bool) -> None:
        self._camera, self._demo = cfg.camera, demo
        self._size = (cfg.width, cfg.height)
        self._params = [cv2.IMWRITE_JPEG_QUALITY, cfg.quality]
        self._seq = 0
        self._warned_size = False

    def encode(self, grab: Grab) -> Frame:
        image = grab.image
        height, width = image.shape[:2]
        if (width, height) != self._size:
            if not self._warned_size:
                log.info("source gives %dx%d; scaling to %dx%d", width, height, *self._size)
                self._warned_size = True
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", image, self._params)
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        frame = Frame(self._camera, self._seq, grab.ts, self._size[0], self._size[1], self._demo, jpeg.tobytes())
        self._seq += 1
        return frame


def run(cfg: config.Config, stop: threading.Event) -> int:
    source: FrameSource = open_source(cfg)
    fps = cfg.fps or source.native_fps or config.DEFAULT_FPS
    encoder = FrameEncoder(cfg, source.demo)
    pacer = Pacer(fps)
    try:
        with zmq.Context() as ctx, bus.publisher(ctx, cfg.frames, bus.FRAME_HWM) as pub:
            log.info("camera %s: %s at %g fps, %dx%d, publishing on %s",
                     cfg.camera, source.description, fps, cfg.width, cfg.height, ",".join(cfg.frames))
            heartbeats = bus.Heartbeats("capture", pub)
            while not stop.wait(pacer.delay()):
                heartbeats.tick()
                try:
                    grab = source.read()
                except EndOfStream:
                    log.info("end of %s", source.description)
                    break
                if grab is not None:
                    pub.send_multipart(encoder.encode(grab).encode())
    finally:
        source.close()
    return 0


if __name__ == "__main__":
    main("capture", OPTIONS, __doc__, run)
