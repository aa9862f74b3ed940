"""Ceiling: how fast frames go capture -> gateway -> one WebSocket viewer, next to the bare work done in one process.

Capture has no unpaced mode: it paces at --fps, which config caps at 120, or, without --fps, at a
video file's own rate, believed up to 240. So the sources are clips of the demo scene (1280x720 by
default) whose own rate is 240 fps, the fastest capture will go:
  - pass-through: an MJPEG AVI, whose JPEGs capture publishes as they are;
  - decode + encode: an MP4 (mp4v) of the same frames, which capture decodes and encodes as JPEG.
Each runs as real capture and gateway processes with one WebSocket viewer (this process) for the
measured seconds. Printed: frames capture published (from the sequence numbers the viewer saw) and
frames the viewer got, per second; latency p50/p99 from the capture time; capture's and the
gateway's CPU ms per published frame; and the rate the busier of the two would allow with a core
of its own (1000 / its ms per frame), which is the ceiling when pacing, not CPU, is what stops it.

Next to them, the same work bare, in this one process, one thing after another: merely reading the
AVI's JPEGs (PyAV demux, the least pass-through can do), decoding the MP4 and encoding each frame
as JPEG at quality 80 (the least the other path can do), and merely encoding the same frames
(decoded beforehand).

    python bench/ceiling.py                       # 1280x720, 8 s per pipeline run
    python bench/ceiling.py --size 1920x1080 --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import cv2
import numpy as np
from common import (
    Measurement,
    Processes,
    kb,
    make_clip,
    mean_packet_bytes,
    measure,
    pipeline_env,
    stop_cleanly_on_signals,
    watch_live_view,
)

from pipeline.video.sources import jpeg_packets

CLIP_FPS = 240  # the highest own rate capture believes of a file (pipeline/video/sources.py)
CLIP_SECONDS = 1.0
QUALITY = 80
BARE_SECONDS = 2.0


def bare_rate(frames: Callable[[], Iterator[object]], seconds: float) -> tuple[float, float]:
    """(frames per second, CPU ms per frame) of drawing from ``frames()`` again and again for ``seconds``."""
    count, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < seconds:
        for _ in frames():
            count += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return count / wall, 1000 * cpu / count


def read_jpegs(clip: Path) -> Iterator[bytes]:
    with av.open(str(clip)) as container:
        yield from jpeg_packets(container)


def decoded(clip: Path) -> Iterator[np.ndarray]:
    cap = cv2.VideoCapture(str(clip))
    try:
        ok, image = cap.read()
        while ok:
            yield image
            ok, image = cap.read()
    finally:
        cap.release()


def encode(images: Iterator[np.ndarray] | list[np.ndarray]) -> Iterator[bytes]:
    for image in images:
        yield cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])[1].tobytes()


def run_pipeline(clip: Path, folder: Path, warmup: float, seconds: float) -> Measurement:
    env, port = pipeline_env(folder)
    with Processes(folder / "logs") as procs:
        procs.stage("gateway", env)
        procs.stage("capture", env, "--source", str(clip), "--loop")
        return asyncio.run(measure(procs, f"ws://127.0.0.1:{port}/webcam", watch_live_view, warmup, seconds))



def print_pipeline(label: str, m: Measurement) -> None:
    published = m.tally.published() or m.tally.frames
    per_frame = {name: 1000 * cpu / published for name, cpu in m.cpu_s.items()}
    busiest = max(per_frame, key=per_frame.__getitem__)
    print(f"  {label:34} {published / m.seconds:9.1f} {m.fps:9.1f} {m.tally.latency(0.5):7.1f} "
          f"{m.tally.latency(0.99):7.1f} {per_frame['capture']:10.2f} {per_frame['gateway']:10.2f}   "
          f"{1000 / per_frame[busiest]:6.0f} ({busiest})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[-3:]))
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured per pipeline run")
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    stop_cleanly_on_signals()
    width, height = (int(n) for n in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="camserver-ceiling-") as tmp:
        folder = Path(tmp)
        avi = make_clip(folder / "clip.avi", width, height, CLIP_FPS, CLIP_SECONDS)
        mp4 = make_clip(folder / "clip.mp4", width, height, CLIP_FPS, CLIP_SECONDS, fourcc="mp4v")
        print(f"ceiling at {width}x{height}: clips of {CLIP_FPS * CLIP_SECONDS:.0f} frames, own rate {CLIP_FPS} fps "
              f"(capture paces at most there; it has no unpaced mode), AVI JPEGs {kb(mean_packet_bytes(avi))}")
        print(f"  {'pipeline, one viewer':34} {'published':>9} {'viewer':>9} {'p50':>7} {'p99 ms':>7} "
              f"{'capture':>10} {'gateway':>10}   {'CPU-bound fps':>13}")
        print(f"  {'':34} {'fps':>9} {'fps':>9} {'':>7} {'':>7} {'ms/frame':>10} {'ms/frame':>10}")
        for label, clip in (("pass-through (MJPEG AVI)", avi), ("decode + encode (mp4v MP4)", mp4)):
            print_pipeline(label, run_pipeline(clip, folder / clip.suffix[1:], args.warmup, args.seconds))
        images = list(decoded(mp4))
        bare = {
            "read the AVI's JPEGs (PyAV demux)": lambda: read_jpegs(avi),
            "decode the MP4 + encode JPEG q80": lambda: encode(decoded(mp4)),
            "encode JPEG q80 only": lambda: encode(images),
        }
        print(f"  {'the bare work, one process':34} {'fps':>9} {'CPU ms/frame':>13}")
        for label, frames in bare.items():
            fps, ms = bare_rate(frames, BARE_SECONDS)
            print(f"  {label:34} {fps:9.0f} {ms:13.2f}", flush=True)


if __name__ == "__main__":
    main()
