"""Grabbed pictures to numbered JPEG frames: a source's JPEGs pass through as they are, others are encoded once.

A JPEG larger than the --width x --height box is decoded at reduced scale and shrunk keeping its
shape (pipeline.video.scaling); its size is read from the JPEG's own header, which also tells a
damaged picture, so a bad JPEG from a camera costs a rate-limited warning and that frame only.
"""

from __future__ import annotations

import logging

import cv2

from pipeline.config.options import Config
from pipeline.protocol import Frame, ProtocolError, jpeg_size
from pipeline.stage.ratelog import RateLimitedLog
from pipeline.video.scaling import Size, decode_scaled, fit, shrink
from pipeline.video.sources import Grab

log = logging.getLogger("camserver.capture")


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
