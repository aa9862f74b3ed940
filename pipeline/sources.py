"""Where capture gets its pictures: a webcam, a network stream, a video file or the demo scene.

Every source answers ``read()`` with the newest picture it has and when it was taken, or None when
it has nothing new yet. Live sources (webcams and URLs) are read by a thread of their own that
never stops grabbing, because OpenCV and the camera driver queue frames: a loop that read only
at our pace would publish pictures that are seconds old. Files are read in order instead, since
every frame of a recording matters and nothing is lost by waiting.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from pipeline.config import Config, Source
from pipeline.demo import DemoScene
from pipeline.redact import mask_url

log = logging.getLogger("camserver.capture")

# Our own log lines say what failed; OpenCV's would repeat it on every reconnect attempt.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 10.0


@dataclass(frozen=True, slots=True)
class Grab:
    image: np.ndarray
    ts: float


class EndOfStream(Exception):
    """A video file ended and is not looped."""


class FrameSource(Protocol):
    demo: bool
    description: str
    native_fps: float | None

    def read(self) -> Grab | None: ...

    def close(self) -> None: ...


class DemoSource:
    """The synthetic scene: moves on its own clock so that pacing, not rendering, sets the rate."""

    demo = True
    native_fps = None

    def __init__(self, width: int, height: int, seed: int) -> None:
        self.description = f"built-in DEMO SCENE (synthetic, not a camera), seed {seed}"
        self._scene = DemoScene(width, height, seed)
        self._start = time.monotonic()

    def read(self) -> Grab:
        ts = time.time()
        return Grab(self._scene.render(time.monotonic() - self._start, ts), ts)

    def close(self) -> None:
        pass


class FileSource:
    """A video file read frame by frame, from the start again when looping."""

    demo = False

    def __init__(self, path: str, loop: bool) -> None:
        self.description = f"video file {path}" + (" (looping)" if loop else "")
        self._path, self._loop = path, loop
        self._cap = cv2.VideoCapture(path)
        if not self._cap.isOpened():
            raise OSError(f"cannot open video file {path}")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.native_fps = fps if 0 < fps <= 240 else None

    def read(self) -> Grab:
        ok, image = self._cap.read()
        if not ok and self._loop:
            self._cap.release()
            self._cap = cv2.VideoCapture(self._path)
            ok, image = self._cap.read()
        if not ok:
            raise EndOfStream(self._path)
        return Grab(image, time.time())

    def close(self) -> None:
        self._cap.release()


class LiveSource:
    """A webcam or network stream, drained continuously by a reader thread that reconnects.

    Its description masks the URL's password: every log line names the source by it.
    """

    demo = False
    native_fps = None

    def __init__(self, target: int | str, width: int, height: int, first: cv2.VideoCapture | None = None) -> None:
        self.description = f"webcam {target}" if isinstance(target, int) else f"stream {mask_url(target)}"
        self._target, self._width, self._height = target, width, height
        self._lock = threading.Lock()
        self._newest: Grab | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(first,), name="reader", daemon=True)
        self._thread.start()

    def read(self) -> Grab | None:
        with self._lock:
            grab, self._newest = self._newest, None
        return grab

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=1.0)

    def _run(self, cap: cv2.VideoCapture | None) -> None:
        delay = RECONNECT_MIN_S
        last: np.ndarray | None = None
        # After a reconnect, the last picture from before it, until a different one arrives. A relay
        # whose own camera is dead (an MJPEG server sends its newest frame to every new client)
        # answers each reconnect with that same old picture; publishing it would fake a live camera.
        stale: np.ndarray | None = None
        while not self._stopping.is_set():
            cap = cap if cap is not None else open_live(self._target, self._width, self._height)
            while not self._stopping.is_set():
                ok, image = cap.read()
                if not ok:
                    break
                if stale is not None and np.array_equal(image, stale):
                    continue
                stale, last, delay = None, image, RECONNECT_MIN_S
                with self._lock:
                    self._newest = Grab(image, time.time())
            cap.release()
            cap = None
            stale = last
            if not self._stopping.is_set():
                log.warning("%s gives no frames; trying again in %.1f s", self.description, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)


def open_live(target: int | str, width: int, height: int) -> cv2.VideoCapture:
    """Open a webcam asking for our size and the shortest driver queue, or a network stream."""
    cap = cv2.VideoCapture(target)
    if isinstance(target, int):
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    return cap


def open_source(cfg: Config) -> FrameSource:
    """Open the configured source; ``auto`` falls back to the demo scene, loudly, without a webcam."""
    source: Source = cfg.source
    if source.kind == "demo":
        return DemoSource(cfg.width, cfg.height, cfg.seed)
    if source.kind == "file":
        return FileSource(str(source.target), cfg.loop)
    if source.kind in ("webcam", "url"):
        return LiveSource(source.target, cfg.width, cfg.height)
    first = open_live(0, cfg.width, cfg.height)
    if first.isOpened() and first.read()[0]:
        return LiveSource(0, cfg.width, cfg.height, first)
    first.release()
    log.warning("no webcam found (source auto): streaming the built-in DEMO SCENE instead, not a real camera")
    return DemoSource(cfg.width, cfg.height, cfg.seed)
