"""Soak: the whole pipeline for a long stretch, watching each stage's memory for growth.

Starts capture (demo scene), detector, recorder, gateway and logger as processes on free loopback
ports, keeps a WebSocket viewer reading the live view, and samples every stage's resident memory
(VmRSS) every few seconds. A leak shows as memory that keeps rising after the warm-up; the demo's
visitor comes every 16 s, so there are recordings made and episodes opened and closed all along.

Prints one row per sample and a summary per stage: memory after the warm-up, at the end, and the
growth between them, with the growth per hour it would mean. ``--json`` prints the summary as one
JSON line instead, for the CI test that runs a short soak.

    python bench/soak.py                          # 10 minutes at 30 fps
    python bench/soak.py --seconds 3600 --fps 15  # an hour
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from common import Processes, connect, pipeline_env, read, rss_bytes, stop_cleanly_on_signals

STAGES = ("capture", "detector", "recorder", "gateway", "logger")


def start(folder: Path, fps: float, procs: Processes) -> int:
    """Every stage, on the demo scene at ``fps``; the gateway's port."""
    env, port = pipeline_env(folder)
    # INFO, the stages' default rather than pipeline_env's WARNING: the logger's memory is soaked too.
    env.update(CAMSERVER_FPS=str(fps), CAMSERVER_SOURCE="demo", CAMSERVER_LOG_LEVEL="INFO")
    for stage in STAGES:
        procs.stage(stage, env)
    return port


async def view(port: int, until: float, procs: Processes) -> int:
    """A viewer reading the live view the whole time, as a browser would; returns the frames it got."""
    conn = await connect(f"ws://127.0.0.1:{port}/webcam", procs)
    frames = 0
    while time.monotonic() < until:
        frames += isinstance(await read(conn), bytes)
    conn.close()
    return frames


async def sample(procs: Processes, until: float, every: float, rows: list[dict[str, float]], quiet: bool) -> None:
    started = time.monotonic()
    while time.monotonic() < until:
        procs.check()
        row = {"t": round(time.monotonic() - started, 1),
               **{s: round(rss_bytes(p.pid) / 2**20, 1) for s, p in procs.popen.items()}}
        rows.append(row)
        if not quiet:
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        await asyncio.sleep(every)


def summary(rows: list[dict[str, float]], warmup: float, seconds: float) -> dict[str, dict[str, float]]:
    """Per stage: the highest memory in the first 10 s after warm-up, in the last 10 s, and the growth."""
    settled = [r for r in rows if warmup <= r["t"] < warmup + 10]
    last = [r for r in rows if r["t"] >= rows[-1]["t"] - 10]
    result = {}
    for stage in STAGES:
        before, after = max(r[stage] for r in settled), max(r[stage] for r in last)
        hours = max(rows[-1]["t"] - warmup, 1) / 3600
        result[stage] = {"after_warmup_mb": before, "end_mb": after, "growth_mb": round(after - before, 1),
                         "growth_mb_per_hour": round((after - before) / hours, 1)}
    return result


async def soak(seconds: float, fps: float, warmup: float, every: float, quiet: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder, Processes(Path(folder) / "logs") as procs:
        port = start(Path(folder), fps, procs)
        until = time.monotonic() + seconds
        rows: list[dict[str, float]] = []
        frames, _ = await asyncio.gather(view(port, until, procs), sample(procs, until, every, rows, quiet))
        recordings = len(list((Path(folder) / "recordings").glob("*.mp4")))
    return {"seconds": seconds, "fps": fps, "viewer_fps": round(frames / seconds, 2), "recordings": recordings,
            "stages": summary(rows, warmup, seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--fps", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=30, help="seconds before memory counts as settled")
    parser.add_argument("--every", type=float, default=2, help="seconds between samples")
    parser.add_argument("--json", action="store_true", help="print only the summary, as one JSON line")
    args = parser.parse_args()
    if args.seconds < args.warmup + 20:
        parser.error("--seconds must be at least --warmup + 20")
    stop_cleanly_on_signals()
    result = asyncio.run(soak(args.seconds, args.fps, args.warmup, args.every, args.json))
    if args.json:
        print(json.dumps(result))
        return
    print(f"\n{result['seconds']:.0f} s at {result['fps']:g} fps: the viewer got {result['viewer_fps']} fps, "
          f"{result['recordings']} recordings made")
    print(f"{'stage':10} {'after warm-up':>14} {'end':>8} {'growth':>8} {'per hour':>9}")
    for stage, figures in result["stages"].items():  # type: ignore[union-attr]
        print(f"{stage:10} {figures['after_warmup_mb']:>11.1f} MB {figures['end_mb']:>5.1f} MB "
              f"{figures['growth_mb']:>5.1f} MB {figures['growth_mb_per_hour']:>6.1f} MB")


if __name__ == "__main__":
    main()
