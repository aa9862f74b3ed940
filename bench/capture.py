"""Capture's CPU per published frame: JPEG pass-through next to decode + resize + encode, same run.

Makes an MJPEG AVI (the demo scene at the given size, so it has a real picture's detail and
noise), then runs the real capture process on it three ways, each for the same number of frames
at the same rate, looping:
  - pass-through: the source's own size, so each JPEG is published as it came;
  - resized: --width/--height 640x480, a decode + resize + encode per frame: what every source
    cost before pass-through, at the old default size (the baseline);
  - decode + encode at the source's size, measured on an MP4 (mp4v) copy of the same clip.
CPU is the process's user + system time from /proc while a subscriber received the frames,
divided by the frames received (pacing and ZeroMQ included). Ratios are against the baseline.

    python bench/capture.py                     # 768x576 at 10 fps, 300 frames each
    python bench/capture.py --size 1280x720 --frames 600
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import zmq
from common import Processes, clean_env, cpu_seconds, free_port, make_clip, stop_cleanly_on_signals

from pipeline.bus.sockets import Decoder, receive, subscriber
from pipeline.protocol import Frame, frame_topic

CLIP_FRAMES = 100


def run_capture(args: list[str], frames: int, fps: int, logs: Path) -> tuple[int, float, float]:
    """(frames received, CPU seconds while publishing them, wall seconds)."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    decoder = Decoder(logging.getLogger("bench"))
    with (zmq.Context() as ctx, subscriber(ctx, [endpoint], [frame_topic()], 1000) as sock,
          Processes(logs) as procs):
        procs.stage("capture", clean_env(), "--frames", endpoint, "--loop", "--fps", str(fps), *args)
        pid = procs.popen["capture"].pid
        first = None
        while first is None:
            procs.check()
            first = next((m for m in receive(sock, 1000, decoder) if isinstance(m, Frame)), None)
        cpu0, wall0 = cpu_seconds(pid), time.monotonic()
        received = 0
        while received < frames:
            received += sum(isinstance(m, Frame) for m in receive(sock, 1000, decoder))
        return received, cpu_seconds(pid) - cpu0, time.monotonic() - wall0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="768x576")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    stop_cleanly_on_signals()
    width, height = (int(n) for n in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        avi = make_clip(Path(tmp) / "clip.avi", width, height, args.fps, CLIP_FRAMES / args.fps)
        mp4 = make_clip(Path(tmp) / "clip.mp4", width, height, args.fps, CLIP_FRAMES / args.fps, fourcc="mp4v")
        runs = {
            "pass-through (MJPEG file, own size)": ["--source", str(avi)],
            "resized to 640x480 (MJPEG file)": ["--source", str(avi), "--width", "640", "--height", "480"],
            "decode + encode, own size (mp4v file)": ["--source", str(mp4)],
        }
        results = {name: run_capture(run, args.frames, args.fps, Path(tmp) / "logs") for name, run in runs.items()}
    baseline = results["resized to 640x480 (MJPEG file)"]
    base_ms = 1000 * baseline[1] / baseline[0]
    print(f"capture, {width}x{height} source at {args.fps} fps, {args.frames} frames each")
    print(f"{'run':40} {'fps':>6} {'CPU ms/frame':>13} {'vs resized':>11}")
    for name, (received, cpu, wall) in results.items():
        ms = 1000 * cpu / received
        print(f"{name:40} {received / wall:6.1f} {ms:13.2f} {ms / base_ms:10.2f}x")


if __name__ == "__main__":
    main()
