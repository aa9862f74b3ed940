"""Capture stage: reads pictures from one camera and publishes them as JPEG frames.

One process per camera. It binds the frames PUB socket, so every consumer connects to it and
may come and go; when it restarts, its ``seq`` starts again from 0. A source that delivers JPEGs
(an MJPEG file or HTTP stream) is passed through byte for byte: nothing is decoded or encoded
unless a size other than the source's own is asked for.
"""

from __future__ import annotations

import logging
import threading

import cv2
import numpy as np
import zmq

from pipeline import bus, config
from pipeline.pacing import Pacer
from pipeline.protocol import Frame, ProtocolError, jpeg_size
from pipeline.ratelog import RateLimitedLog
from pipeline.sources import EndOfStream, FrameSource, Grab, open_source
from pipeline.stage import main

OPTIONS = ("camera", "source", "fps", "width", "height", "quality", "loop", "seed", "frames", "log_level", "log_time")

log = logging.getLogger("camserver.capture")


def check(cfg: config.Config) -> None:
    if (cfg.width is None) != (cfg.height is None):
        raise config.ConfigError("give both --width and --height (CAMSERVER_WIDTH, CAMSERVER_HEIGHT), or neither "
                                 "for the source's own size")


class FrameEncoder:
    """Turns grabbed pictures into numbered JPEG frames: JPEGs of the right size as they are, others encoded."""

    def __init__(self, cfg: config.Config, demo: bool) -> None:
        self._camera, self._demo = cfg.camera, demo
        self._size = (cfg.width, cfg.height) if cfg.width and cfg.height else None
        self._params = [cv2.IMWRITE_JPEG_QUALITY, cfg.quality]
        self._seq = 0
        self._warned_size = False
        self._notes = RateLimitedLog(log)
        self.passed = self.encoded = 0

    def encode(self, grab: Grab) -> Frame | None:
        """The frame to publish, or None for a JPEG from the source that is not one (logged)."""
        if grab.jpeg is not None:
            try:  # the size from the JPEG's own header, which also tells a damaged picture
                size = jpeg_size(grab.jpeg)
            except ProtocolError as exc:
                self._notes.warning("jpeg", "skipping a picture from the source: %s", exc)
                return None
            if self._size is None or size == self._size:
                self.passed += 1
                return self._frame(grab.ts, size, grab.jpeg)
            image = cv2.imdecode(np.frombuffer(grab.jpeg, np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                self._notes.warning("jpeg", "skipping a picture from the source that does not decode")
                return None
        else:
            assert grab.image is not None
            image = grab.image
        height, width = image.shape[:2]
        if self._size is not None and (width, height) != self._size:
            if not self._warned_size:
                log.info("source gives %dx%d; scaling to %dx%d", width, height, *self._size)
                self._warned_size = True
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", image, self._params)
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        self.encoded += 1
        return self._frame(grab.ts, (image.shape[1], image.shape[0]), jpeg.tobytes())

    def _frame(self, ts: float, size: tuple[int, int], jpeg: bytes) -> Frame:
        frame = Frame(self._camera, self._seq, ts, size[0], size[1], self._demo, jpeg)
        self._seq += 1
        return frame


def run(cfg: config.Config, stop: threading.Event) -> int:
    source: FrameSource = open_source(cfg)
    fps = cfg.fps or source.native_fps or config.DEFAULT_FPS
    encoder = FrameEncoder(cfg, source.demo)
    pacer = Pacer(fps)
    size = f"{cfg.width}x{cfg.height}" if cfg.width else "the source's own size"
    try:
        with zmq.Context() as ctx, bus.publisher(ctx, cfg.frames, bus.FRAME_HWM) as pub:
            log.info("camera %s: %s at %g fps, %s, publishing on %s",
                     cfg.camera, source.description, fps, size, ",".join(cfg.frames))
            heartbeats = bus.Heartbeats("capture", pub)
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
