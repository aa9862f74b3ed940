"""Where capture gets its pictures: a webcam, a network stream, a video file or the demo scene.

Every source answers ``read()`` with the newest picture it has and when it was taken, or None when
it has nothing new yet. A picture that comes as a JPEG (an MJPEG file, an HTTP MJPEG stream such as
another camserver's, mjpg-streamer's or an IP camera's, a webcam in its MJPG mode) is handed out as
those very bytes, demuxed by PyAV and never decoded (pipeline.video.mjpeg adds Huffman tables where the
camera left them out): capture publishes it as it is unless a resize is asked for.

Live sources (webcams and URLs) are read by a thread of their own that never stops grabbing,
because OpenCV, FFmpeg and the camera driver queue frames: a loop that read only at our pace
would publish pictures that are seconds old. Files are read in order instead, since
every frame of a recording matters and nothing is lost by waiting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import av
import cv2
import numpy as np

from pipeline.config.options import DEFAULT_FPS, DEFAULT_HEIGHT, DEFAULT_WIDTH, Config
from pipeline.config.parsers import Source
from pipeline.stage.redact import mask_url
from pipeline.video.demo import DemoScene
from pipeline.video.mjpeg import with_huffman_tables

log = logging.getLogger("camserver.capture")

# Our own log lines say what failed; OpenCV's would repeat it on every reconnect attempt.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 10.0
# Seconds to connect to a stream, and to wait for its next bytes, before it counts as gone.
STREAM_TIMEOUT_S = 10.0
# A picture from a live source: decoded pixels (webcams, RTSP) or a JPEG as it arrived.
Picture = np.ndarray | bytes


@dataclass(frozen=True, slots=True)
class Grab:
    """One picture and when it was taken: ``jpeg`` when the source gave a JPEG, else ``image``."""

    ts: float
    image: np.ndarray | None = None
    jpeg: bytes | None = None

    @classmethod
    def of(cls, picture: Picture, ts: float) -> Grab:
        return cls(ts, jpeg=picture) if isinstance(picture, bytes) else cls(ts, image=picture)


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
        return Grab(ts, image=self._scene.render(time.monotonic() - self._start, ts))

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
        return Grab(time.time(), image=image)

    def close(self) -> None:
        self._cap.release()


class MjpegFileSource:
    """A video file whose frames are JPEGs (MJPEG AVI or MOV): each packet is published as it is."""

    demo = False

    def __init__(self, path: str, loop: bool) -> None:
        self.description = f"MJPEG file {path} (passed through)" + (" (looping)" if loop else "")
        self._path, self._loop = path, loop
        self._container, self._packets = self._open()
        rate = self._container.streams.video[0].average_rate
        self.native_fps = float(rate) if rate and 0 < rate <= 240 else None

    def read(self) -> Grab:
        jpeg = next(self._packets, None)
        if jpeg is None and self._loop:
            self._container.close()
            self._container, self._packets = self._open()
            jpeg = next(self._packets, None)
        if jpeg is None:
            raise EndOfStream(self._path)
        return Grab(time.time(), jpeg=jpeg)

    def close(self) -> None:
        self._container.close()

    def _open(self) -> tuple[av.container.InputContainer, Iterator[bytes]]:
        container = av.open(self._path)
        return container, jpeg_packets(container)


class LiveSource:
    """A webcam or network stream, drained continuously by a reader thread that reconnects.

    Its description masks the URL's password: every log line names the source by it.
    """

    demo = False
    native_fps = None

    def __init__(self, description: str, pictures: Callable[[], Iterator[Picture]]) -> None:
        self.description = description
        self._pictures = pictures
        self._lock = threading.Lock()
        self._newest: Grab | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reader", daemon=True)
        self._thread.start()

    def read(self) -> Grab | None:
        with self._lock:
            grab, self._newest = self._newest, None
        return grab

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=1.0)

    def _run(self) -> None:
        delay = RECONNECT_MIN_S
        last: Picture | None = None
        # After a reconnect, the last picture from before it, until a different one arrives. A relay
        # whose own camera is dead (an MJPEG server sends its newest frame to every new client)
        # answers each reconnect with that same old picture; publishing it would fake a live camera.
        stale: Picture | None = None
        while not self._stopping.is_set():
            reason = ""
            try:
                for picture in self._pictures():
                    if self._stopping.is_set():
                        break
                    if stale is not None and _same(picture, stale):
                        continue
                    stale, last, delay = None, picture, RECONNECT_MIN_S
                    with self._lock:
                        self._newest = Grab.of(picture, time.time())
            except (av.FFmpegError, OSError) as exc:
                # strerror, not str(exc): the latter names the URL, password and all.
                reason = f" ({mask_url(exc.strerror or type(exc).__name__)})"
            stale = last
            if not self._stopping.is_set():
                log.warning("%s gives no frames%s; trying again in %.1f s", self.description, reason, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)


def _same(one: Picture, other: Picture) -> bool:
    if isinstance(one, bytes) or isinstance(other, bytes):
        return one == other
    return np.array_equal(one, other)


def jpeg_packets(container: av.container.InputContainer) -> Iterator[bytes]:
    """The JPEG of every packet of an MJPEG container's video, nothing decoded (tables added if missing)."""
    video = container.streams.video[0]
    for packet in container.demux(video):
        if packet.size:
            yield with_huffman_tables(bytes(packet))


def stream_jpegs(url: str) -> Iterator[bytes]:
    """One connection to an HTTP MJPEG stream, its JPEGs as they arrive; ends when the stream does."""
    with av.open(url, timeout=STREAM_TIMEOUT_S) as container:
        if container.streams.video[0].codec_context.name != "mjpeg":
            raise OSError(f"{mask_url(url)} is not an MJPEG stream")
        yield from jpeg_packets(container)


def webcam_jpegs(device: str, width: int, height: int, fps: float) -> Iterator[bytes]:
    """One opening of a V4L2 webcam in its MJPG mode, its JPEGs as the camera made them; OSError without one.

    Most UVC webcams compress on the camera; taking those JPEGs as they are, as mjpg-streamer and
    µStreamer do, spares capture a decode and an encode per frame. The size and rate are asked
    for; a camera that cannot give them picks the nearest it has.
    """
    options = {"input_format": "mjpeg", "video_size": f"{width}x{height}", "framerate": f"{fps:g}"}
    with av.open(device, format="v4l2", options=options, timeout=STREAM_TIMEOUT_S) as container:
        if container.streams.video[0].codec_context.name != "mjpeg":
            raise OSError(f"{device} has no MJPG mode")
        yield from jpeg_packets(container)


def has_mjpeg_mode(device: str, width: int, height: int, fps: float) -> bool:
    """Whether a webcam opens in its MJPG mode and gives a picture; False for no camera or no such mode."""
    pictures = webcam_jpegs(device, width, height, fps)
    try:
        return next(pictures, None) is not None
    except (av.FFmpegError, OSError):
        return False
    finally:
        pictures.close()  # the device is free again for the source that opens it for good


def camera_pictures(target: int | str, width: int, height: int,
                    first: cv2.VideoCapture | None = None) -> Callable[[], Iterator[np.ndarray]]:
    """Connections to a webcam or a non-HTTP stream through OpenCV, each yielding decoded pictures."""
    opened = [first] if first is not None else []

    def pictures() -> Iterator[np.ndarray]:
        cap = opened.pop() if opened else open_live(target, width, height)
        try:
            while True:
                ok, image = cap.read()
                if not ok:
                    return
                yield image
        finally:
            cap.release()

    return pictures


def open_live(target: int | str, width: int, height: int) -> cv2.VideoCapture:
    """Open a webcam (an index or a device path) asking for our size and the shortest driver queue, or a stream."""
    webcam = isinstance(target, int) or target.startswith("/dev/")
    cap = cv2.VideoCapture(target, cv2.CAP_V4L2) if isinstance(target, str) and webcam else cv2.VideoCapture(target)
    if webcam:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    return cap


def open_source(cfg: Config) -> FrameSource:
    """Open the configured source; ``auto`` falls back to the demo scene, loudly, without a webcam."""
    source: Source = cfg.source
    width, height = cfg.width or DEFAULT_WIDTH, cfg.height or DEFAULT_HEIGHT
    if source.kind == "demo":
        return DemoSource(width, height, cfg.seed)
    if source.kind == "file":
        return MjpegFileSource(str(source.target), cfg.loop) if is_mjpeg_file(str(source.target)) \
            else FileSource(str(source.target), cfg.loop)
    if source.kind == "url" and str(source.target).startswith(("http://", "https://")):
        url = str(source.target)
        return LiveSource(f"MJPEG stream {mask_url(url)} (passed through)", lambda: stream_jpegs(url))
    if source.kind in ("webcam", "auto"):
        webcam = source.target if isinstance(source.target, int | str) else 0
        device, fps = webcam if isinstance(webcam, str) else f"/dev/video{webcam}", cfg.fps or DEFAULT_FPS
        if has_mjpeg_mode(device, width, height, fps):
            return LiveSource(f"webcam {webcam} ({device}, MJPG passed through)",
                              lambda: webcam_jpegs(device, width, height, fps))
        first = open_live(webcam, width, height)
        if source.kind == "webcam" or (first.isOpened() and first.read()[0]):
            return LiveSource(f"webcam {webcam}", camera_pictures(webcam, width, height, first))
        first.release()
        log.warning("no webcam found (source auto): streaming the built-in DEMO SCENE instead, not a real camera")
        return DemoSource(width, height, cfg.seed)
    return LiveSource(f"stream {mask_url(str(source.target))}", camera_pictures(str(source.target), width, height))


def is_mjpeg_file(path: str) -> bool:
    """Whether a video file's pictures are JPEGs, which capture can pass on without decoding."""
    try:
        with av.open(path) as container:
            return bool(container.streams.video) and container.streams.video[0].codec_context.name == "mjpeg"
    except (av.FFmpegError, OSError):
        return False
