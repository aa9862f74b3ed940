"""Live-view throughput and latency: what a WebSocket viewer of the gateway receives.

Starts the real capture (demo scene) and gateway processes on free loopback ports, then, for the
same stretch of time, reads frames both ways at once:
  - baseline: a ZeroMQ SUB socket straight on capture's frames endpoint (no gateway);
  - gateway: a WebSocket client of /webcam.
It prints frames per second and capture→client latency (p50/p99, from the header ``ts``) for
each, and the gateway's figures as ratios of the baseline's.

    python bench/live_view.py                    # 640x480@10 and 1280x720@30, 10 s each
    python bench/live_view.py --seconds 30 --sizes 1920x1080@15
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import tornado.websocket
import zmq
import zmq.asyncio
from common import Processes, percentile, pipeline_env, stop_cleanly_on_signals

from pipeline.bus.sockets import FRAME_HWM, subscriber
from pipeline.protocol import Frame, frame_topic


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)

    def add(self, seq: int, ts: float) -> None:
        self.latencies.append(time.time() - ts)
        self.seqs.append(seq)

    def summary(self, seconds: float) -> tuple[float, float, float]:
        lat = self.latencies or [float("nan")]
        return len(self.seqs) / seconds, 1000 * statistics.median(lat), 1000 * percentile(lat, 0.99)


async def direct(endpoint: str, tally: Tally, until: float) -> None:
    ctx = zmq.asyncio.Context()
    sock = subscriber(ctx, [endpoint], [frame_topic()], FRAME_HWM)
    try:
        while time.monotonic() < until:
            if await sock.poll(100):
                frame = Frame.decode(await sock.recv_multipart())
                tally.add(frame.seq, frame.ts)
    finally:
        sock.close()
        ctx.term()


async def websocket(port: int, tally: Tally, until: float) -> None:
    conn = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/webcam")
    meta = None
    while time.monotonic() < until:
        try:
            message = await asyncio.wait_for(conn.read_message(), max(0.01, until - time.monotonic()))
        except TimeoutError:
            break
        if isinstance(message, bytes) and meta is not None:
            tally.add(meta["seq"], meta["ts"])
        elif isinstance(message, str) and json.loads(message)["type"] == "frame":
            meta = json.loads(message)
    conn.close()


def measure(width: int, height: int, fps: float, seconds: float, folder: Path) -> None:
    env, port = pipeline_env(folder)
    frames = env["CAMSERVER_FRAMES"]
    with Processes(folder / "logs") as procs:
        procs.stage("gateway", env)
        procs.stage("capture", env, "--source", "demo", "--width", str(width), "--height", str(height),
                    "--fps", str(fps))
        time.sleep(3.0)  # start-up and ZeroMQ's slow joiner: measure steady state only
        procs.check()
        base, gate = Tally(), Tally()

        async def both() -> None:
            until = time.monotonic() + seconds
            await asyncio.gather(direct(frames, base, until), websocket(port, gate, until))

        asyncio.run(both())
    b_fps, b_p50, b_p99 = base.summary(seconds)
    g_fps, g_p50, g_p99 = gate.summary(seconds)
    print(f"{width}x{height}@{fps:g} for {seconds:g} s")
    print(f"  baseline ZeroMQ SUB : {b_fps:6.2f} fps  latency p50 {b_p50:6.2f} ms  p99 {b_p99:6.2f} ms")
    print(f"  gateway WebSocket   : {g_fps:6.2f} fps  latency p50 {g_p50:6.2f} ms  p99 {g_p99:6.2f} ms")
    print(f"  gateway/baseline    : fps x{g_fps / b_fps:.3f}  p50 x{g_p50 / b_p50:.2f}  p99 x{g_p99 / b_p99:.2f}"
          f"  (gateway adds {g_p50 - b_p50:.2f} ms at p50)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sizes", default="640x480@10,1280x720@30", help="comma-separated WIDTHxHEIGHT@FPS")
    args = parser.parse_args()
    stop_cleanly_on_signals()
    with tempfile.TemporaryDirectory(prefix="camserver-live-view-") as tmp:
        for spec in args.sizes.split(","):
            size, fps = spec.split("@")
            width, height = size.split("x")
            measure(int(width), int(height), float(fps), args.seconds, Path(tmp) / spec)


if __name__ == "__main__":
    main()
