"""The original camserver design re-stated as one small process: the yardstick bench/end_to_end.py measures against.

A capture thread reads a video file (looped) or the demo scene, paced at the source's rate, and per
frame does what the original did: looks for motion (grey, 21x21 Gaussian blur, absdiff with the
previous frame, threshold, dilate, contours), encodes a JPEG at quality 80 and base64s it. With
--record it also writes the frames with motion, and a second after the last, through cv2's mp4v
writer, one file per episode. A Tornado WebSocket on 127.0.0.1 /webcam answers each client message
with the newest frame as base64 text, prefixed by its capture time (``<ts>,<base64>``, 18 bytes,
so that a client can measure latency). A message that comes before a frame newer than the client's
last exists is answered when one does: a client asking in a loop costs one send per frame, not a
busy loop. It is meant as a fair yardstick, not a straw man: one process, no copies between
stages, the JPEG and its base64 made once per frame whatever the number of clients.

    python bench/baseline.py --source clip.avi --port 8765
    python bench/baseline.py --source demo --width 1280 --height 720 --fps 30 --port 8765 --record /tmp/rec
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import tornado.web
import tornado.websocket

from pipeline.video.demo import DemoScene

QUALITY = 80
PIXEL_THRESHOLD = 25  # grey levels
MIN_AREA = 100  # pixels: a smaller changed region is noise
POST_S = 1.0  # seconds recorded after the last frame with motion


class Newest:
    """The newest frame's text and number, handed from the capture thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.number = 0
        self.text = ""
        self.arrived = asyncio.Event()

    def put(self, text: str) -> None:
        """From the capture thread."""
        self._loop.call_soon_threadsafe(self._set, text)

    def _set(self, text: str) -> None:
        self.number, self.text = self.number + 1, text
        arrived, self.arrived = self.arrived, asyncio.Event()
        arrived.set()


class Live(tornado.websocket.WebSocketHandler):
    def initialize(self, newest: Newest) -> None:
        self.newest = newest
        self.sent = 0

    async def on_message(self, message: str | bytes) -> None:
        while self.newest.number <= self.sent:
            await self.newest.arrived.wait()
        self.sent = self.newest.number
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):  # the client left
            await self.write_message(self.newest.text)


class MotionDetector:
    def __init__(self) -> None:
        self._previous: np.ndarray | None = None
        self._kernel = np.ones((3, 3), np.uint8)

    def moved(self, image: np.ndarray) -> bool:
        grey = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (21, 21), 0)
        previous, self._previous = self._previous, grey
        if previous is None:
            return False
        _, changed = cv2.threshold(cv2.absdiff(previous, grey), PIXEL_THRESHOLD, 255, cv2.THRESH_BINARY)
        contours, _ = cv2.findContours(cv2.dilate(changed, self._kernel, iterations=2), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        return any(cv2.contourArea(contour) >= MIN_AREA for contour in contours)


class MotionRecorder:
    """One mp4v file per episode: the frames with motion and POST_S after the last one."""

    def __init__(self, folder: Path, fps: float) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._folder, self._fps = folder, fps
        self._writer: cv2.VideoWriter | None = None
        self._last_motion = float("-inf")

    def write(self, image: np.ndarray, moved: bool, ts: float) -> None:
        if moved:
            self._last_motion = ts
        if ts - self._last_motion > POST_S:
            self.close()
            return
        if self._writer is None:
            height, width = image.shape[:2]
            self._writer = cv2.VideoWriter(str(self._folder / f"{ts:.3f}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                           self._fps, (width, height))
        self._writer.write(image)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def open_source(args: argparse.Namespace) -> tuple[Iterator[np.ndarray], float]:
    """Endless pictures from the source, and the rate to pace them at."""
    if args.source == "demo":
        return demo_pictures(args.width, args.height), args.fps or 10.0
    cap = cv2.VideoCapture(args.source)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {args.source}")
    fps = args.fps or cap.get(cv2.CAP_PROP_FPS) or 10.0
    cap.release()
    return file_pictures(args.source), fps


def demo_pictures(width: int, height: int) -> Iterator[np.ndarray]:
    scene, start = DemoScene(width, height, seed=0), time.monotonic()
    while True:
        yield scene.render(time.monotonic() - start, time.time())


def file_pictures(path: str) -> Iterator[np.ndarray]:
    while True:
        cap = cv2.VideoCapture(path)
        ok, image = cap.read()
        if not ok:
            raise OSError(f"no picture in {path}")
        while ok:
            yield image
            ok, image = cap.read()
        cap.release()


def capture(pictures: Iterator[np.ndarray], fps: float, record: Path | None, newest: Newest,
            stop: threading.Event) -> None:
    detector = MotionDetector()
    recorder = MotionRecorder(record, fps) if record is not None else None
    period, due = 1.0 / fps, time.monotonic()
    try:
        for image in pictures:
            ts = time.time()
            moved = detector.moved(image)
            _, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
            newest.put(f"{ts:.6f},{base64.b64encode(jpeg).decode()}")
            if recorder is not None:
                recorder.write(image, moved, ts)
            due = max(due + period, time.monotonic() - period)  # late by a whole period: skip, do not burst
            if stop.wait(max(0.0, due - time.monotonic())):
                break
    finally:
        if recorder is not None:
            recorder.close()


async def serve(args: argparse.Namespace, pictures: Iterator[np.ndarray], fps: float) -> int:
    loop = asyncio.get_running_loop()
    newest, stop, done = Newest(loop), threading.Event(), asyncio.Event()

    def on_signal() -> None:
        stop.set()
        done.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    server = tornado.web.Application([(r"/webcam", Live, {"newest": newest})]).listen(args.port, "127.0.0.1")

    def run_capture() -> None:
        try:
            capture(pictures, fps, args.record, newest, stop)
        finally:
            loop.call_soon_threadsafe(done.set)

    thread = threading.Thread(target=run_capture, name="capture")
    thread.start()
    await done.wait()
    stopped_early = not stop.is_set()  # the capture thread ended by itself: it failed
    stop.set()
    thread.join()
    server.stop()
    return 1 if stopped_early else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="a video file, read in a loop, or 'demo'")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fps", type=float, default=None, help="default: a file's own rate; 10 for the demo")
    parser.add_argument("--width", type=int, default=640, help="of the demo scene")
    parser.add_argument("--height", type=int, default=480, help="of the demo scene")
    parser.add_argument("--record", type=Path, default=None, help="folder to record motion into (mp4v)")
    args = parser.parse_args()
    pictures, fps = open_source(args)  # here, not in the thread: a source that does not open ends the process
    raise SystemExit(asyncio.run(serve(args, pictures, fps)))


if __name__ == "__main__":
    main()
