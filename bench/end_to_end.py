"""camserver's live path and whole pipeline against the one-process baseline: same source, same time, one run.

For each case (a size, a rate and a source) it runs, one after another and each for the same
measured seconds after a warm-up:
  - camserver live path: capture + detector + gateway, real processes on free loopback ports,
    one WebSocket viewer on /webcam reading frames as the page does (JSON header, binary JPEG);
  - camserver full pipeline: the same plus the recorder;
  - baseline: bench/baseline.py, the original design as one process (decode, 21x21 blur + diff,
    JPEG encode, base64), one WebSocket viewer asking for each next frame;
  - baseline --record: the same also writing its motion with cv2's mp4v writer.
Figures: frames delivered to the viewer per second; capture-to-viewer latency p50/p95/p99 from
each frame's capture time (one host, one clock); CPU ms per delivered frame of each process
(user + system over the measured window); peak RSS of each process (sampled every 0.25 s);
bytes on the wire per frame (WebSocket payloads and headers, both ways); the share of the measured
window that was recorded (the span of the saved videos inside it, from their frames' timestamps).
Then camserver/baseline ratios, with the targets of issue 10: live path <= 0.3x and full pipeline
<= 0.4x the baseline's CPU per frame. CPU times tick in 10 ms: a short window at a low rate is coarse.

Sources (KIND after the colon): ``demo``, the demo scene rendered live by capture and by the
baseline alike (decoded pixels: capture encodes each frame, as for a YUYV webcam or an RTSP
camera); ``mjpeg``, the demo scene written by cv2 to an MJPEG AVI in a temporary folder, looped
(capture passes its JPEGs through, as for an MJPEG webcam or HTTP MJPEG camera; the baseline
decodes them). A clip is 16 s, one visit of the demo's walker, so a 16 s window sees one visit.

    python bench/end_to_end.py                                  # the four default cases, 16 s each run
    python bench/end_to_end.py --seconds 8 --cases 768x576@10:mjpeg
    python bench/end_to_end.py --cases 1280x720@30:demo,1280x720@30:mjpeg --runs live,baseline
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
from common import (
    Measurement,
    Processes,
    Tally,
    Window,
    clean_env,
    free_port,
    kb,
    make_clip,
    mean_packet_bytes,
    measure,
    pipeline_env,
    read,
    stop_cleanly_on_signals,
    watch_live_view,
    ws_wire_bytes,
)
from tornado.websocket import WebSocketClientConnection

from pipeline.video.demo import CYCLE_SECONDS

DEFAULT_CASES = "640x480@10:demo,768x576@10:mjpeg,1280x720@30:mjpeg,1920x1080@30:mjpeg"
RUNS = ("live", "baseline", "full", "baseline-record")
LABELS = {"live": "camserver live path", "full": "camserver full pipeline", "baseline": "baseline",
          "baseline-record": "baseline --record"}
TARGETS = {"live": ("baseline", 0.3), "full": ("baseline-record", 0.4)}
REQUEST = "next"
STAGES = ("capture", "detector", "recorder", "gateway")
FIGURES: dict[str, Callable[[Measurement], float]] = {
    "CPU per frame": Measurement.total_cpu_ms_per_frame,
    "latency p50": lambda m: m.tally.latency(0.5),
    "p95": lambda m: m.tally.latency(0.95),
    "p99": lambda m: m.tally.latency(0.99),
    "wire bytes per frame": Measurement.wire_per_frame,
    "fps": lambda m: m.fps,
}


@dataclass(frozen=True)
class Case:
    width: int
    height: int
    fps: float
    kind: str

    @classmethod
    def parse(cls, text: str) -> Case:
        """A case from WIDTHxHEIGHT@FPS:KIND; ValueError for anything else."""
        size, _, rest = text.strip().partition("@")
        rate, _, kind = rest.partition(":")
        width, _, height = size.partition("x")
        if kind not in ("demo", "mjpeg"):
            raise ValueError(f"{text!r} is not WIDTHxHEIGHT@FPS:demo or WIDTHxHEIGHT@FPS:mjpeg")
        return cls(int(width), int(height), float(rate), kind)

    def __str__(self) -> str:
        return f"{self.width}x{self.height}@{self.fps:g}:{self.kind}"


@dataclass
class Outcome:
    measurement: Measurement
    recorded_share: float | None


async def watch_baseline(conn: WebSocketClientConnection, window: Window) -> Tally:
    """Ask the baseline for each next frame, as its page did; a reply is ``<ts>,<base64 JPEG>``."""
    tally = Tally()
    while not window.closed:
        conn.write_message(REQUEST)
        reply = str(await read(conn))
        stamp, _, text = reply.partition(",")
        window.first_frame.set()
        if window.counts():
            tally.wire_bytes += ws_wire_bytes(len(REQUEST), masked=True) + ws_wire_bytes(len(reply), masked=False)
            tally.frame(float(stamp), len(text) * 3 // 4 - text.count("=", -2))
    conn.close()
    return tally


def source_flags(case: Case, clip: Path | None) -> tuple[list[str], list[str]]:
    """The source as capture's flags and as the baseline's."""
    if clip is None:
        size = ["--width", str(case.width), "--height", str(case.height), "--fps", f"{case.fps:g}"]
        return ["--source", "demo", *size], ["--source", "demo", *size]
    return ["--source", str(clip), "--loop"], ["--source", str(clip)]


def run_camserver(case: Case, clip: Path | None, recording: bool, folder: Path, warmup: float,
                  seconds: float) -> Outcome:
    env, port = pipeline_env(folder)
    capture_flags, _ = source_flags(case, clip)
    with Processes(folder / "logs") as procs:
        procs.stage("gateway", env)
        procs.stage("detector", env)
        if recording:
            procs.stage("recorder", env)
        procs.stage("capture", env, *capture_flags)
        measurement = asyncio.run(measure(procs, f"ws://127.0.0.1:{port}/webcam", watch_live_view, warmup, seconds))
    if not recording:
        return Outcome(measurement, None)
    sidecars = [json.loads(path.read_text()) for path in (folder / "recordings").glob("*.json")]
    recorded = sum(measurement.overlap(sidecar["start"], sidecar["end"]) for sidecar in sidecars)
    return Outcome(measurement, recorded / measurement.seconds)


def run_baseline(case: Case, clip: Path | None, recording: bool, folder: Path, warmup: float,
                 seconds: float) -> Outcome:
    port = free_port()
    _, flags = source_flags(case, clip)
    record = ["--record", str(folder / "recordings")] if recording else []
    with Processes(folder / "logs") as procs:
        procs.start("baseline", ["bench/baseline.py", *flags, "--port", str(port), *record], clean_env())
        measurement = asyncio.run(measure(procs, f"ws://127.0.0.1:{port}/webcam", watch_baseline, warmup, seconds))
    if not recording:
        return Outcome(measurement, None)
    # the baseline names each file by the capture time of its first frame
    recorded = sum(measurement.overlap(float(path.stem), float(path.stem) + video_seconds(path))
                   for path in (folder / "recordings").glob("*.mp4"))
    return Outcome(measurement, recorded / measurement.seconds)


def video_seconds(path: Path) -> float:
    cap = cv2.VideoCapture(str(path))
    try:
        return cap.get(cv2.CAP_PROP_FRAME_COUNT) / (cap.get(cv2.CAP_PROP_FPS) or 1.0)
    finally:
        cap.release()


def run_case(case: Case, runs: list[str], folder: Path, warmup: float, seconds: float) -> dict[str, Outcome]:
    clip = None
    if case.kind == "mjpeg":
        clip = make_clip(folder / f"{case.width}x{case.height}.avi", case.width, case.height, case.fps,
                         CYCLE_SECONDS)
    print(f"\n== {case.width}x{case.height} at {case.fps:g} fps, {describe(case, clip)}; "
          f"{seconds:g} s measured per run after {warmup:g} s", flush=True)
    print(HEADER, flush=True)
    outcomes = {}
    for name in runs:
        work = folder / f"{case}-{name}".replace(":", "-")
        runner = run_camserver if name in ("live", "full") else run_baseline
        outcomes[name] = runner(case, clip, name in ("full", "baseline-record"), work, warmup, seconds)
        print_run(name, outcomes[name])
    print_ratios(outcomes)
    return outcomes


def describe(case: Case, clip: Path | None) -> str:
    if clip is None:
        return "demo scene rendered live (capture encodes every frame)"
    return (f"MJPEG AVI of the demo scene by cv2, {kb(mean_packet_bytes(clip))} a frame, looped "
            "(capture passes it through)")


HEADER = (f"  {'run':24} {'fps':>5} {'p50':>6} {'p95':>6} {'p99 ms':>7} {'wire/frame':>10} {'JPEG/frame':>10} "
          f"{'CPU ms/frame':>12} {'peak RSS':>9} {'recorded':>8}")


def print_run(name: str, outcome: Outcome) -> None:
    m = outcome.measurement
    recorded = "-" if outcome.recorded_share is None else f"{100 * outcome.recorded_share:.0f}%"
    peak = max(m.peak_rss.values()) / 2**20
    print(f"  {LABELS[name]:24} {m.fps:5.1f} {m.tally.latency(0.5):6.1f} {m.tally.latency(0.95):6.1f} "
          f"{m.tally.latency(0.99):7.1f} {kb(m.wire_per_frame()):>10} {kb(m.jpeg_per_frame()):>10} "
          f"{m.total_cpu_ms_per_frame():12.2f} {peak:6.0f} MB {recorded:>8}", flush=True)
    if len(m.cpu_s) > 1:
        stages = " · ".join(f"{stage} {m.cpu_ms_per_frame(stage):.2f} ms ({m.peak_rss[stage] / 2**20:.0f} MB)"
                            for stage in STAGES if stage in m.cpu_s)
        print(f"  {'':24} per stage: {stages}", flush=True)


def print_ratios(outcomes: dict[str, Outcome]) -> None:
    measurements = {name: outcome.measurement for name, outcome in outcomes.items()}
    for name, (against, target) in TARGETS.items():
        if name not in measurements or against not in measurements:
            continue
        cpu = FIGURES["CPU per frame"]
        met = cpu(measurements[name]) <= target * cpu(measurements[against])
        ratios = ", ".join(f"{label} {compare(measurements, name, against, figure)}"
                           for label, figure in FIGURES.items())
        print(f"  {LABELS[name]} / {LABELS[against]}: {ratios}; CPU target <= {target:g}: "
              f"{'met' if met else 'not met'}", flush=True)


def print_summary(results: dict[Case, dict[str, Outcome]]) -> None:
    print("\n== summary: camserver / baseline (CPU per delivered frame: targets live <= 0.3, full <= 0.4)")
    columns = (("live CPU", "live", "CPU per frame"), ("full CPU", "full", "CPU per frame"),
               ("live p50", "live", "latency p50"), ("live p99", "live", "p99"),
               ("live wire", "live", "wire bytes per frame"))
    print(f"  {'case':26} " + " ".join(f"{label:>10}" for label, _, _ in columns))
    for case, outcomes in results.items():
        measurements = {name: outcome.measurement for name, outcome in outcomes.items()}
        cells = (compare(measurements, name, TARGETS[name][0], FIGURES[figure]) for _, name, figure in columns)
        print(f"  {case!s:26} " + " ".join(f"{cell:>10}" for cell in cells))


def compare(measurements: dict[str, Measurement], ours: str, theirs: str,
            figure: Callable[[Measurement], float]) -> str:
    """``figure`` of run ``ours`` over that of ``theirs``, as text; "-" when either did not run."""
    if ours not in measurements or theirs not in measurements:
        return "-"
    return f"x{figure(measurements[ours]) / figure(measurements[theirs]):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[-3:]))
    parser.add_argument("--cases", default=DEFAULT_CASES,
                        help=f"comma-separated WIDTHxHEIGHT@FPS:demo|mjpeg (default {DEFAULT_CASES})")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"which of {','.join(RUNS)} (default: all)")
    parser.add_argument("--seconds", type=float, default=CYCLE_SECONDS, help="measured per run (default: one "
                        "visit of the demo's walker, so the recorded share is the clip's)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds after the first frame before measuring")
    args = parser.parse_args()
    stop_cleanly_on_signals()
    try:
        cases = [Case.parse(text) for text in args.cases.split(",") if text.strip()]
    except ValueError as exc:
        parser.error(f"--cases: {exc}")
    runs = [name for name in RUNS if name in args.runs.split(",")]
    if not runs or set(args.runs.split(",")) - set(RUNS):
        parser.error(f"--runs takes some of {','.join(RUNS)}")
    with tempfile.TemporaryDirectory(prefix="camserver-bench-") as tmp:
        results = {case: run_case(case, runs, Path(tmp), args.warmup, args.seconds) for case in cases}
    print_summary(results)


if __name__ == "__main__":
    main()
