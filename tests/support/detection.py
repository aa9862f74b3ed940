"""The detector's per-camera logic run in the test process, on pictures the test makes.

Frames go through pipeline.motion.camera.CameraDetector exactly as the detector stage feeds it, with the
default settings its configuration makes (or some changed), so a test judges the events it would
publish without a process or a socket.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from pipeline.config.options import Config
from pipeline.motion.camera import CameraDetector, motion_settings
from pipeline.motion.differ import MotionSettings
from pipeline.protocol import Event, Frame

FPS = 10
W, H = 640, 480  # the size every frame's header gives


def settings(**changes: object) -> MotionSettings:
    """The detector's default settings, as its configuration makes them, with some changed."""
    return dataclasses.replace(motion_settings(Config()), **changes)


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()


def run(images: list[np.ndarray], chosen: MotionSettings | None = None, keep: list[int] | None = None) -> list[Event]:
    """Feed pictures as frames seq 0, 1, ... (only those whose index is in ``keep``); all events."""
    detector = CameraDetector("cam0", chosen or settings())
    events: list[Event] = []
    for seq, image in enumerate(images):
        if keep is None or seq in keep:
            events += detector.process(Frame("cam0", seq, 1000.0 + seq / FPS, W, H, False, jpeg(image)))
    closing = detector.close("end of test")
    return events + ([closing] if closing else [])


def of_type(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.type == kind]
