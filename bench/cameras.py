"""Many cameras: what each camera's viewer gets, what each stage costs, and shared stages against one per camera.

Each camera is its own capture process (demo scene, its own seed) publishing on its own
endpoint; the detector, recorder and gateway subscribe to all of them, as issue 12 runs them.
For each setup, after a warm-up and for the same measured seconds, it prints:
  - per camera: the rate asked for, what capture published (the span of sequence numbers a
    viewer saw), what one WebSocket viewer of ``/webcam?camera=ID`` received, its capture-to-viewer
    latency p50, the share of the published frames the detector sent a ``delta`` event for (a SUB
    on every events endpoint) and how late the 95th percentile of those came after their frame's
    capture, and the recordings saved by the end of the run (a visit still going on when the run
    stops is saved too, cut short);
  - per stage: CPU ms per second (user + system over the window) and peak RSS (sampled
    every 0.25 s); PSS, which splits the pages that processes share (the libraries' code) among
    them, once at the end of the window.
Setups: 1, 2 and 4 cameras at 640x480@10; a 1920x1080@30 camera ("burst") beside a 640x480@10 one
("calm"); and 4 cameras at 640x480@10 with one detector and one recorder per camera. The last
against the 4-camera shared run is the choice of issue 12, one detector and recorder for all
cameras or one per camera: the ratio per camera / shared of their total memory and CPU, measured
in the same run of this script.

Every demo camera's walker enters 2 s after its capture starts and walks for 5.5 s of each
16 s, and all cameras start together: a 16 s window (the default) holds one visit of each,
so the recorder's encoding counts in its share; a shorter one, most of the visit.

    python bench/cameras.py                       # every setup, 16 s measured each after 2 s
    python bench/cameras.py --seconds 8
    python bench/cameras.py --only vga4,vga4-split
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import psutil
import zmq
from common import (
    Meter,
    Processes,
    Tally,
    Window,
    clean_env,
    connect,
    free_port,
    percentile,
    sample_until,
    stop_cleanly_on_signals,
    watch_live_view,
)

from pipeline.bus.sockets import EVENT_HWM, Decoder, receive, subscriber
from pipeline.protocol import Event, event_topic
from pipeline.video.demo import CYCLE_SECONDS

# Subscribers connect before the first frame, as they would in use: a recorder's pre-roll is full.
SUBSCRIBERS_SETTLE_S = 1.0
FIRST_FRAME_TIMEOUT_S = 30.0
EVENT_POLL_MS = 100


@dataclass(frozen=True)
class Camera:
    name: str
    width: int
    height: int
    fps: float
    seed: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}@{self.fps:g}"


@dataclass(frozen=True)
class Setup:
    key: str
    title: str
    cameras: tuple[Camera, ...]
    split: bool = False  # one detector and one recorder per camera, instead of one of each for all


def vga(count: int) -> tuple[Camera, ...]:
    return tuple(Camera(f"cam{n}", 640, 480, 10, n) for n in range(count))


SETUPS = (
    Setup("vga1", "1 camera 640x480@10", vga(1)),
    Setup("vga2", "2 cameras 640x480@10", vga(2)),
    Setup("vga4", "4 cameras 640x480@10, one detector and one recorder for all", vga(4)),
    Setup("burst", "a 1920x1080@30 camera beside a 640x480@10 one, one detector and one recorder for both",
          (Camera("burst", 1920, 1080, 30, 1), Camera("calm", 640, 480, 10, 2))),
    Setup("vga4-split", "4 cameras 640x480@10, one detector and one recorder per camera", vga(4), split=True),
)
CHOICE = ("vga4", "vga4-split")


def endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@dataclass
class Pipeline:
    """The endpoints of one setup's running stages."""

    port: int
    events: list[str]
    detectors: list[str]
    recorders: list[str]


def start_pipeline(setup: Setup, folder: Path, procs: Processes) -> Pipeline:
    """Gateway, detector(s) and recorder(s) first, then every camera's capture once they are connected."""
    env = clean_env(CAMSERVER_LOG_LEVEL="WARNING", CAMSERVER_RECORDINGS=str(folder / "recordings"))
    frames = {camera.name: endpoint() for camera in setup.cameras}
    groups = [(camera,) for camera in setup.cameras] if setup.split else [setup.cameras]
    pipeline = Pipeline(free_port(), [], [], [])
    recorder_events = []
    for group in groups:
        suffix = f":{group[0].name}" if setup.split else ""
        sources = ",".join(frames[camera.name] for camera in group)
        events, own = endpoint(), endpoint()
        pipeline.events.append(events)
        recorder_events.append(own)
        pipeline.detectors.append(f"detector{suffix}")
        pipeline.recorders.append(f"recorder{suffix}")
        procs.start(f"detector{suffix}", ["-m", "pipeline.detector", "--frames", sources, "--events", events], env)
        procs.start(f"recorder{suffix}", ["-m", "pipeline.recorder", "--frames", sources, "--events", events,
                                          "--recorder-events", own], env)
    procs.start("gateway", ["-m", "pipeline.gateway", "--port", str(pipeline.port), "--frames",
                            ",".join(frames.values()), "--events", ",".join(pipeline.events),
                            "--recorder-events", ",".join(recorder_events)], env)
    time.sleep(SUBSCRIBERS_SETTLE_S)
    for camera in setup.cameras:
        procs.start(f"capture:{camera.name}", [
            "-m", "pipeline.capture", "--source", "demo", "--camera", camera.name, "--frames", frames[camera.name],
            "--width", str(camera.width), "--height", str(camera.height), "--fps", f"{camera.fps:g}",
            "--seed", str(camera.seed)], env)
    return pipeline


class DeltaCounter:
    """Every ``delta`` event of every camera with the time it arrived, from a SUB on all events endpoints.

    A thread of its own drains the socket every EVENT_POLL_MS, so the viewers' work in the event
    loop never makes this script drop events the detector did send.
    """

    def __init__(self, endpoints: list[str]) -> None:
        self._ctx = zmq.Context()
        self._sock = subscriber(self._ctx, endpoints, [event_topic()], EVENT_HWM)
        self.seen: list[tuple[float, str, int, float]] = []  # arrival (monotonic), camera, seq, seconds late
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        decoder = Decoder(logging.getLogger("bench.cameras"))
        while not self._stop.is_set():
            for message in receive(self._sock, EVENT_POLL_MS, decoder):
                if isinstance(message, Event) and message.type == "delta":
                    self.seen.append((time.monotonic(), message.camera, message.seq, time.time() - message.ts))

    def share(self, camera: str, start: float, end: float) -> float:
        """Deltas for ``camera`` that arrived in [start, end], over the frames capture published across them."""
        seqs = {seq for at, name, seq, _ in self.seen if name == camera and start <= at <= end}
        return len(seqs) / (max(seqs) - min(seqs) + 1) if seqs else 0.0

    def late_ms(self, camera: str, start: float, end: float, share: float) -> float:
        """The ``share`` percentile of how late ``camera``'s deltas that arrived in [start, end] came after capture."""
        return 1000 * percentile([late for at, name, _, late in self.seen if name == camera and start <= at <= end],
                                 share)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()
        self._ctx.term()


@dataclass
class CameraResult:
    camera: Camera
    published_fps: float
    viewer_fps: float
    latency_p50_ms: float
    delta_share: float
    delta_p95_ms: float
    recordings: int = 0


@dataclass
class Result:
    setup: Setup
    seconds: float
    cameras: list[CameraResult]
    cpu_ms_per_s: dict[str, float]
    peak_rss: dict[str, int]
    pss: dict[str, int]
    detectors: list[str]
    recorders: list[str]

    def total(self, figures: dict[str, float] | dict[str, int], names: list[str] | None = None) -> float:
        return sum(value for name, value in figures.items() if names is None or name in names)

    def worst(self, figure: str) -> float:
        return min(getattr(camera, figure) for camera in self.cameras)


async def measure(setup: Setup, pipeline: Pipeline, procs: Processes, deltas: DeltaCounter, warmup: float,
                  seconds: float) -> Result:
    """One viewer per camera; every process metered over ``seconds`` once every viewer has had ``warmup`` of frames."""
    meter = Meter(procs)
    windows = {camera.name: Window() for camera in setup.cameras}
    conns = [await connect(f"ws://127.0.0.1:{pipeline.port}/webcam?camera={name}", procs) for name in windows]
    viewers = asyncio.gather(*(watch_live_view(conn, window) for conn, window in zip(conns, windows.values(),
                                                                                      strict=True)))
    every_first = asyncio.gather(*(window.first_frame.wait() for window in windows.values()))
    await sample_until(meter, viewers, every_first, FIRST_FRAME_TIMEOUT_S, "a camera's first frame")
    await sample_until(meter, viewers, asyncio.sleep(warmup), warmup + 1, "warm-up")
    before, started = meter.cpu(), time.monotonic()
    for window in windows.values():
        window.open = True
    await sample_until(meter, viewers, asyncio.sleep(seconds), seconds + 1, "measure")
    after, ended = meter.cpu(), time.monotonic()
    pss = {name: psutil.Process(proc.pid).memory_full_info().pss for name, proc in procs.popen.items()}
    for window in windows.values():
        window.closed = True
    tallies: list[Tally] = await viewers
    elapsed = ended - started
    cameras = []
    for camera, tally in zip(setup.cameras, tallies, strict=True):
        cameras.append(CameraResult(camera, (tally.published() or 0) / elapsed, tally.frames / elapsed,
                                    tally.latency(0.5), deltas.share(camera.name, started, ended),
                                    deltas.late_ms(camera.name, started, ended, 0.95)))
    return Result(setup, elapsed, cameras, {name: 1000 * (after[name] - before[name]) / elapsed for name in after},
                  meter.peak_rss, pss, pipeline.detectors, pipeline.recorders)


def run_setup(setup: Setup, folder: Path, warmup: float, seconds: float) -> Result:
    with Processes(folder / "logs") as procs:
        pipeline = start_pipeline(setup, folder, procs)
        deltas = DeltaCounter(pipeline.events)
        try:
            result = asyncio.run(measure(setup, pipeline, procs, deltas, warmup, seconds))
        finally:
            deltas.close()
    saved: dict[str, int] = defaultdict(int)
    for sidecar in (folder / "recordings").glob("*.json"):
        saved[json.loads(sidecar.read_text()).get("camera", "?")] += 1
    for camera in result.cameras:
        camera.recordings = saved[camera.camera.name]
    return result


def mb(n: float) -> str:
    return f"{n / 2**20:.0f} MB"


def print_result(result: Result) -> None:
    print(f"  {'camera':8} {'asked':>12} {'published':>9} {'viewer':>10} {'view p50':>8} {'deltas':>7} "
          f"{'delta p95':>9} {'saved':>5}")
    for c in result.cameras:
        print(f"  {c.camera.name:8} {c.camera!s:>12} {c.published_fps:5.1f} fps {c.viewer_fps:6.1f} fps "
              f"{c.latency_p50_ms:5.1f} ms {100 * c.delta_share:6.1f}% {c.delta_p95_ms:6.1f} ms {c.recordings:5d}")
    print(f"  {'stage':16} {'CPU ms/s':>8} {'peak RSS':>9} {'PSS':>7}")
    for name in result.cpu_ms_per_s:
        print(f"  {name:16} {result.cpu_ms_per_s[name]:8.0f} {mb(result.peak_rss[name]):>9} "
              f"{mb(result.pss[name]):>7}")
    print(f"  {'all stages':16} {result.total(result.cpu_ms_per_s):8.0f} {mb(result.total(result.peak_rss)):>9} "
          f"{mb(result.total(result.pss)):>7}", flush=True)


def print_choice(shared: Result, split: Result) -> None:
    """Detector + recorder of the shared run against those of the per-camera run, and what each camera got."""
    shared_names, split_names = shared.detectors + shared.recorders, split.detectors + split.recorders
    rows = (
        ("detector+recorder peak RSS, sum", lambda r, n: r.total(r.peak_rss, n), mb),
        ("detector+recorder PSS, sum", lambda r, n: r.total(r.pss, n), mb),
        ("detector+recorder CPU ms/s", lambda r, n: r.total(r.cpu_ms_per_s, n), lambda v: f"{v:.0f}"),
        ("all stages CPU ms/s", lambda r, _: r.total(r.cpu_ms_per_s), lambda v: f"{v:.0f}"),
        ("delta events, worst camera", lambda r, _: 100 * r.worst("delta_share"), lambda v: f"{v:.1f}%"),
        ("delta p95 ms late, worst camera", lambda r, _: max(c.delta_p95_ms for c in r.cameras),
         lambda v: f"{v:.1f}"),
        ("viewer fps, worst camera", lambda r, _: r.worst("viewer_fps"), lambda v: f"{v:.1f}"),
    )
    cameras = len(shared.cameras)
    print(f"\n== the choice, {cameras} cameras at {shared.cameras[0].camera}: one detector and one recorder for "
          f"all ({len(shared_names)} processes) or one of each per camera ({len(split_names)} processes), "
          "same run")
    print(f"  {'':34} {'shared':>9} {'per camera':>10} {'per camera / shared':>20}")
    for label, figure, text in rows:
        ours, theirs = figure(shared, shared_names), figure(split, split_names)
        ratio = f"x{theirs / ours:.2f}" if ours else "-"
        print(f"  {label:34} {text(ours):>9} {text(theirs):>10} {ratio:>20}")
    print(f"  delta events per camera: shared {', '.join(f'{100 * c.delta_share:.1f}%' for c in shared.cameras)}; "
          f"per camera {', '.join(f'{100 * c.delta_share:.1f}%' for c in split.cameras)}", flush=True)


def main() -> None:
    keys = [setup.key for setup in SETUPS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[-3:]))
    parser.add_argument("--only", default=",".join(keys), help=f"comma-separated setups of {','.join(keys)}")
    parser.add_argument("--seconds", type=float, default=CYCLE_SECONDS,
                        help="measured per setup (default: one visit of the demo's walker)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds after every camera's first frame")
    args = parser.parse_args()
    chosen = [key.strip() for key in args.only.split(",") if key.strip()]
    if not chosen or set(chosen) - set(keys):
        parser.error(f"--only takes some of {','.join(keys)}")
    stop_cleanly_on_signals()
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="camserver-cameras-") as tmp:
        for setup in SETUPS:
            if setup.key not in chosen:
                continue
            print(f"\n== {setup.key}: {setup.title}; {args.seconds:g} s measured after {args.warmup:g} s",
                  flush=True)
            results[setup.key] = run_setup(setup, Path(tmp) / setup.key, args.warmup, args.seconds)
            print_result(results[setup.key])
    if all(key in results for key in CHOICE):
        print_choice(results[CHOICE[0]], results[CHOICE[1]])
    fps = [c.viewer_fps / c.camera.fps for result in results.values() for c in result.cameras]
    print(f"\nviewer fps / asked, every camera of every setup: median {statistics.median(fps):.2f}, "
          f"worst {min(fps):.2f}")


if __name__ == "__main__":
    main()
