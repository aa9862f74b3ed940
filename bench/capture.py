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
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import zmq

from pipeline.bus.sockets import Decoder, receive, subscriber
from pipeline.protocol import Frame, frame_topic
from pipeline.video.demo import DemoScene

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_clip(folder: Path, width: int, height: int, fps: int, frames: int) -> dict[str, Path]:
    scene = DemoScene(width, height, seed=0)
    clips = {"mjpeg": folder / "clip.avi", "mp4v": folder / "clip.mp4"}
    writers = {name: cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*("MJPG" if name == "mjpeg" else "mp4v")),
                                     fps, (width, height)) for name, path in clips.items()}
    for n in range(frames):
        image = scene.render(n / fps, 1_700_000_000 + n / fps)
        for writer in writers.values():
            writer.write(image)
    for writer in writers.values():
        writer.release()
    return clips


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def run_capture(args: list[str], frames: int, fps: int) -> tuple[int, float, float]:
    """(frames received, CPU seconds while publishing them, wall seconds)."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMSERVER_")}
    ctx = zmq.Context()
    sock = subscriber(ctx, [endpoint], [frame_topic()], 1000)
    decoder = Decoder(logging.getLogger("bench"))
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.capture", "--frames", endpoint, "--loop",
                             "--fps", str(fps), *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    try:
        first = None
        while first is None:
            if proc.poll() is not None:
                raise SystemExit(f"capture {' '.join(args)} exited with status {proc.returncode} before any frame")
            first = next((m for m in receive(sock, 1000, decoder) if isinstance(m, Frame)), None)
        cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
        received = 0
        while received < frames:
            received += sum(isinstance(m, Frame) for m in receive(sock, 1000, decoder))
        return received, cpu_seconds(proc.pid) - cpu0, time.monotonic() - wall0
    finally:
        proc.terminate()
        proc.wait(10)
        sock.close()
        ctx.term()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="768x576")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        clips = make_clip(Path(tmp), width, height, args.fps, 100)
        runs = {
            "pass-through (MJPEG file, own size)": ["--source", str(clips["mjpeg"])],
            "resized to 640x480 (MJPEG file)": ["--source", str(clips["mjpeg"]), "--width", "640", "--height", "480"],
            "decode + encode, own size (mp4v file)": ["--source", str(clips["mp4v"])],
        }
        results = {name: run_capture(run, args.frames, args.fps) for name, run in runs.items()}
    baseline = results["resized to 640x480 (MJPEG file)"]
    base_ms = 1000 * baseline[1] / baseline[0]
    print(f"capture, {width}x{height} source at {args.fps} fps, {args.frames} frames each")
    print(f"{'run':40} {'fps':>6} {'CPU ms/frame':>13} {'vs resized':>11}")
    for name, (received, cpu, wall) in results.items():
        ms = 1000 * cpu / received
        print(f"{name:40} {received / wall:6.1f} {ms:13.2f} {ms / base_ms:10.2f}x")


if __name__ == "__main__":
    main()
