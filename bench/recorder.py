"""Recorder cost per frame: H.264 via PyAV against the seed's OpenCV mp4v writer, same frames.

Both write the same JPEG frames of the demo scene (a visitor walking through, sensor noise) and
each pays the JPEG decode it needs:
  - baseline (the seed's approach): cv2.VideoWriter with MPEG-4 part 2 ('mp4v'), which browsers
    cannot play;
  - camserver: pipeline.mp4.Mp4Writer, H.264 (libx264 veryfast, zerolatency) in fragmented MP4,
    fsynced once per fragment.
It prints ms/frame, the frame rate one core sustains, and whether that keeps up with 30 fps.

    python bench/recorder.py                       # 640x480, 1280x720, 1920x1080; 150 frames each
    python bench/recorder.py --sizes 1280x720 --frames 300
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from pipeline.demo import DemoScene
from pipeline.mp4 import Mp4Writer, probe

FPS = 30


def frames(width: int, height: int, count: int) -> list[bytes]:
    scene = DemoScene(width, height, seed=0)
    return [cv2.imencode(".jpg", scene.render(3 + i / FPS, 1.7e9 + i / FPS), [cv2.IMWRITE_JPEG_QUALITY, 80])[1]
            .tobytes() for i in range(count)]


def baseline(jpegs: list[bytes], width: int, height: int, folder: Path) -> tuple[float, int]:
    path = folder / "seed.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (width, height))
    started = time.perf_counter()
    for jpeg in jpegs:
        writer.write(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
    writer.release()
    return 1000 * (time.perf_counter() - started) / len(jpegs), path.stat().st_size


def camserver(jpegs: list[bytes], width: int, height: int, folder: Path) -> tuple[float, int, str]:
    path = folder / "camserver.mp4"
    writer = Mp4Writer(path, width, height, FPS)
    started = time.perf_counter()
    for i, jpeg in enumerate(jpegs):
        writer.write(jpeg, 1.7e9 + i / FPS)
    writer.close()
    elapsed = time.perf_counter() - started
    info = probe(path)
    return 1000 * elapsed / len(jpegs), path.stat().st_size, info[2] if info else "unreadable"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="640x480,1280x720,1920x1080")
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # the recorder runs on one core
    for size in args.sizes.split(","):
        width, height = (int(n) for n in size.split("x"))
        jpegs = frames(width, height, args.frames)
        with tempfile.TemporaryDirectory() as tmp:
            seed_ms, seed_size = baseline(jpegs, width, height, Path(tmp))
            our_ms, our_size, codec = camserver(jpegs, width, height, Path(tmp))
        print(f"{width}x{height}, {len(jpegs)} frames")
        print(f"  baseline cv2 mp4v (no browser plays it): {seed_ms:6.2f} ms/frame  {seed_size / 1024:7.0f} KB")
        print(f"  camserver H.264 fragmented MP4 ({codec}) : {our_ms:6.2f} ms/frame  {our_size / 1024:7.0f} KB")
        print(f"  camserver/baseline: time x{our_ms / seed_ms:.2f}, size x{our_size / seed_size:.2f}; one core "
              f"sustains {1000 / our_ms:.0f} fps: {'keeps up with' if 1000 / our_ms >= FPS else 'too slow for'} "
              f"{FPS} fps")


if __name__ == "__main__":
    main()
