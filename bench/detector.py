"""Detector cost per frame, against the seed's approach measured in the same run.

Both methods see the same JPEG frames of the demo scene (a visitor walks through) and feed the
same EpisodeTracker, so the episodes they find can be compared as well as their speed:
  - baseline (the seed's approach): full JPEG decode, grayscale, 21x21 Gaussian blur, absdiff,
    threshold, dilate, contours;
  - camserver: pipeline.motion.differ.FrameDiffer (JPEG decoded straight to a reduced grayscale image,
    5x5 blur, brightness-compensated absdiff, threshold, outer contours when significant).

    python bench/detector.py                 # 640x480, 768x576, 1280x720 and 1920x1080, 20 s of scene each
    python bench/detector.py --seconds 40 --sizes 1920x1080
It also feeds camserver's detector one frame every 1/10 s, as a camera does, and prints its CPU
per frame then: the cost a stage pays at a camera's pace, with caches gone cold between frames.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import cv2
import numpy as np

from pipeline.config.options import Config
from pipeline.motion.camera import motion_settings
from pipeline.motion.differ import FrameDiffer
from pipeline.motion.episodes import EpisodeTracker
from pipeline.video.demo import DemoScene

FPS = 10
SETTINGS = motion_settings(Config())


class SeedDetector:
    """The seed's per-frame work, with its changed-pixel share as the delta."""

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None
        self.boxes: list[tuple[int, int, int, int]] = []
        self._kernel = np.ones((3, 3), np.uint8)

    def measure(self, jpeg: bytes, width: int, height: int) -> tuple[float, bool] | None:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        gray = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (21, 21), 0)
        previous, self._previous = self._previous, gray
        if previous is None:
            return None
        _, changed = cv2.threshold(cv2.absdiff(previous, gray), 25, 255, cv2.THRESH_BINARY)
        changed = cv2.dilate(changed, self._kernel, iterations=2)
        contours, _ = cv2.findContours(changed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        self.boxes = [cv2.boundingRect(c) for c in contours if cv2.contourArea(c) >= SETTINGS.min_area]
        delta = 100.0 * cv2.countNonZero(changed) / changed.size
        return delta, delta > SETTINGS.threshold


class OurDetector:
    def __init__(self) -> None:
        self._differ = FrameDiffer(SETTINGS)

    def measure(self, jpeg: bytes, width: int, height: int) -> tuple[float, bool] | None:
        result = self._differ.measure(jpeg, width, height)
        return None if result is None else (result.delta, result.significant)


def frames(width: int, height: int, seconds: float) -> list[bytes]:
    scene = DemoScene(width, height, seed=0)
    return [cv2.imencode(".jpg", scene.render(i / FPS, 1.7e9 + i / FPS), [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
            for i in range(int(seconds * FPS))]


def run(make: Callable[[], SeedDetector | OurDetector], jpegs: list[bytes], width: int, height: int,
        repeats: int) -> tuple[float, list[tuple[int, int, bool]]]:
    """Best ms/frame over ``repeats`` passes, and the episodes (start, end, keep) found."""
    best = float("inf")
    episodes: list[tuple[int, int, bool]] = []
    for _ in range(repeats):
        detector, tracker, found = make(), EpisodeTracker(SETTINGS.stable_frames, SETTINGS.min_motion_frames), []
        started = time.perf_counter()
        for seq, jpeg in enumerate(jpegs):
            result = detector.measure(jpeg, width, height)
            if result is not None:
                for kind, data in tracker.update(seq, seq / FPS, *result):
                    if kind == "motion_end":
                        found.append((data["start_seq"], data["end_seq"], data["keep"]))
        best = min(best, 1000 * (time.perf_counter() - started) / len(jpegs))
        episodes = found
    return best, episodes


def paced_cpu_ms(jpegs: list[bytes], width: int, height: int, frames: int) -> float:
    """CPU ms per frame of camserver's detector fed one frame every 1/FPS s, as a camera feeds it.

    The same work costs about twice as much at a camera's pace as back to back: between frames the
    core runs other processes (or idles), and each frame starts with cold caches. This is the
    figure a stage's CPU at 10 fps is made of.
    """
    detector, cpu = OurDetector(), 0.0
    for jpeg in jpegs[:frames]:
        time.sleep(1 / FPS)
        started = time.thread_time()
        detector.measure(jpeg, width, height)
        cpu += time.thread_time() - started
    return 1000 * cpu / min(frames, len(jpegs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the demo sequence")
    parser.add_argument("--sizes", default="640x480,768x576,1280x720,1920x1080")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paced-frames", type=int, default=50, help="frames fed at the camera's pace (0: skip)")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one core per stage, as in the pipeline; and steadier figures
    for size in args.sizes.split(","):
        width, height = (int(n) for n in size.split("x"))
        jpegs = frames(width, height, args.seconds)
        seed_ms, seed_episodes = run(SeedDetector, jpegs, width, height, args.repeats)
        our_ms, our_episodes = run(OurDetector, jpegs, width, height, args.repeats)
        same = len(seed_episodes) == len(our_episodes) and all(
            abs(a[0] - b[0]) <= 2 and abs(a[1] - b[1]) <= 2 and a[2] == b[2]
            for a, b in zip(seed_episodes, our_episodes, strict=True))
        print(f"{width}x{height}, {len(jpegs)} frames")
        print(f"  baseline (seed approach): {seed_ms:6.2f} ms/frame  episodes {seed_episodes}")
        print(f"  camserver detector      : {our_ms:6.2f} ms/frame  episodes {our_episodes}")
        print(f"  ratio baseline/camserver: x{seed_ms / our_ms:.2f}   same episodes (±2 frames): {same}")
        if args.paced_frames:
            paced = paced_cpu_ms(jpegs, width, height, args.paced_frames)
            print(f"  camserver detector at {FPS} fps: {paced:6.2f} CPU ms/frame (x{paced / our_ms:.2f} back to back)")


if __name__ == "__main__":
    main()
