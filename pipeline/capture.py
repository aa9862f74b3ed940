"""Capture stage: reads pictures from one camera and publishes them as JPEG frames.

One process per camera. It binds the frames PUB socket, so every consumer connects to it and
may come and go; when it restarts, its ``seq`` starts again from 0. A source that delivers JPEGs
(an MJPEG file or HTTP stream) is passed through byte for byte: nothing is decoded or encoded
unless a smaller size than the source's own is asked for (pipeline.video.scaling: the picture keeps its
shape).
"""

from __future__ import annotations

import logging
import threading

import cv2
import zmq

from pipeline.bus import curve
from pipeline.bus.sockets import FRAME_HWM, Heartbeats, publisher
from pipeline.config.options import DEFAULT_FPS, Config, ConfigError
from pipeline.protocol import Frame, ProtocolError, jpeg_size
from pipeline.stage.lifecycle import main
from pipeline.stage.ratelog import RateLimitedLog
from pipeline.video.pacing import Pacer
from pipeline.video.scaling import Size, decode_scaled, fit, shrink
from pipeline.video.sources import EndOfStream, FrameSource, Grab, open_source

OPTIONS = ("camera", "source", "fps", "width", "height", "quality", "loop", "seed", "frames", "log_level", "log_time",
           "curve_keys", "insecure_bus")

log = logging.getLogger("camserver.capture")


def check(cfg: Config) -> None:
    if (cfg.width is None) != (cfg.height is None):
        raise ConfigError("give both --width and --height (CAMSERVER_WIDTH, CAMSERVER_HEIGHT), or neither "
                          "for the source's own size")


class FrameEncoder:
    """Turns grabbed pictures into numbered JPEG frames: JPEGs of the right size as they are, others encoded."""

    def __init__(self, cfg: Config, demo: bool) -> None:
        self._camera, self._demo = cfg.camera, demo
        self._box = (cfg.width, cfg.height) if cfg.width and cfg.height else None
        self._params = [cv2.IMWRITE_JPEG_QUALITY, cfg.quality]
        self._seq = 0
        self._told: tuple[Size, Size] | None = None
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
            target = self._target(size)
            if target == size:
                self.passed += 1
                return self._frame(grab.ts, size, grab.jpeg)
            image = decode_scaled(grab.jpeg, size, target)
            if image is None:
                self._notes.warning("jpeg", "skipping a picture from the source that does not decode")
                return None
        else:
            assert grab.image is not None
            image = grab.image
            target = self._target((image.shape[1], image.shape[0]))
            if target != (image.shape[1], image.shape[0]):
                image = shrink(image, target)
        ok, jpeg = cv2.imencode(".jpg", image, self._params)
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        self.encoded += 1
        return self._frame(grab.ts, target, jpeg.tobytes())

    def _target(self, size: Size) -> Size:
        """The size to publish a picture of ``size`` at; said once in the log whenever it changes."""
        if self._box is None:
            return size
        target = fit(size, self._box)
        if target != size and self._told != (size, target):
            log.info("source gives %dx%d; publishing %dx%d, the largest of its shape within %dx%d",
                     *size, *target, *self._box)
            self._told = (size, target)
        return target

    def _frame(self, ts: float, size: Size, jpeg: bytes) -> Frame:
        frame = Frame(self._camera, self._seq, ts, size[0], size[1], self._demo, jpeg)
        self._seq += 1
        return frame


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
