"""How long one camera's pre-roll holds up another camera in the shared recorder.

A 1920x1080@30 camera ("burst") and a 640x480@10 one ("calm") share one detector and one
recorder. calm starts DELAY s after burst, so its visitor's motion_start comes while the recorder
writes burst's pre-roll (60 frames through H.264 at the default --pre-seconds 2). The figure is
how long after its motion_start calm's recording_started comes, both as seen on the bus, next to
the same with calm alone (the baseline, measured first in the same run). Run the same with
--pre-seconds 5 to see a longer pre-roll. Each delay is its own run of the real processes, a dozen
seconds each.

    python bench/preroll.py                         # delays 0.8, 1.0 and 1.2 s
    python bench/preroll.py --delays 1.0 --pre-seconds 5
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import zmq
from common import Processes, clean_env, free_port, stop_cleanly_on_signals

from pipeline.bus.sockets import EVENT_HWM, Decoder, receive, subscriber
from pipeline.protocol import Event, event_topic

WATCHED = ("motion_start", "recording_started")


def run_once(delay: float, pre_seconds: str, folder: Path, burst_too: bool = True) -> dict[tuple[str, str], float]:
    """When (s after burst's start) each camera's motion_start and recording_started came (burst_too: or calm alone)."""
    endpoint = lambda: f"tcp://127.0.0.1:{free_port()}"  # noqa: E731
    burst, calm, events, recorder_events = endpoint(), endpoint(), endpoint(), endpoint()
    frames = f"{burst},{calm}"
    env = clean_env(CAMSERVER_LOG_LEVEL="WARNING", CAMSERVER_RECORDINGS=str(folder / "recordings"))
    seen: dict[tuple[str, str], float] = {}
    with Processes(folder / "logs") as procs, zmq.Context() as ctx, \
            subscriber(ctx, [events, recorder_events], [event_topic()], EVENT_HWM) as sub:
        procs.stage("detector", env, "--frames", frames, "--events", events)
        procs.stage("recorder", env, "--frames", frames, "--events", events, "--recorder-events", recorder_events,
                    "--pre-seconds", pre_seconds)
        time.sleep(1.0)
        started = time.monotonic()
        if burst_too:
            procs.start("capture-burst", ["-m", "pipeline.capture", "--source", "demo", "--camera", "burst", "--frames",
                                          burst, "--width", "1920", "--height", "1080", "--fps", "30"], env)
        time.sleep(delay)
        procs.start("capture-calm", ["-m", "pipeline.capture", "--source", "demo", "--camera", "calm", "--frames",
                                     calm, "--fps", "10", "--seed", "2"], env)
        decoder = Decoder(logging.getLogger("bench"))
        while time.monotonic() < started + delay + 12 and len(seen) < (2 if burst_too else 1) * len(WATCHED):
            for message in receive(sub, 20, decoder):
                key = (message.camera, message.type)
                if isinstance(message, Event) and message.type in WATCHED and key not in seen:
                    seen[key] = time.monotonic() - started
        procs.check()
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delays", default="0.8,1.0,1.2", help="seconds between burst's start and calm's")
    parser.add_argument("--pre-seconds", default="2", help="the recorder's --pre-seconds")
    args = parser.parse_args()
    stop_cleanly_on_signals()
    print(f"calm's recording_started after its motion_start, burst 1920x1080@30 started first; "
          f"--pre-seconds {args.pre_seconds}")
    late = []
    with tempfile.TemporaryDirectory(prefix="camserver-preroll-") as tmp:
        alone = run_once(1.0, args.pre_seconds, Path(tmp) / "alone", burst_too=False)
        if ("calm", "recording_started") not in alone or ("calm", "motion_start") not in alone:
            raise SystemExit(f"calm alone gave no episode: {alone}")
        baseline = alone[("calm", "recording_started")] - alone[("calm", "motion_start")]
        print(f"  calm alone (baseline)    calm: recording_started {baseline:+.2f} s")
        for i, delay in enumerate(float(d) for d in args.delays.split(",")):
            seen = run_once(delay, args.pre_seconds, Path(tmp) / str(i))
            row = {camera: (seen.get((camera, "motion_start")), seen.get((camera, "recording_started")))
                   for camera in ("burst", "calm")}
            parts = []
            for camera, (start, recording) in row.items():
                if start is None or recording is None:
                    parts.append(f"{camera}: no episode seen")
                    continue
                parts.append(f"{camera}: motion_start {start:5.2f} s, recording_started {recording - start:+.2f} s")
                if camera == "calm":
                    late.append(recording - start)
            print(f"  calm {delay:.1f} s after burst   " + "   ".join(parts))
    if late:
        print(f"calm's recording_started, median {statistics.median(late):.2f} s and at most {max(late):.2f} s "
              f"after its motion_start: x{statistics.median(late) / max(baseline, 1e-3):.1f} and "
              f"x{max(late) / max(baseline, 1e-3):.1f} the baseline")


if __name__ == "__main__":
    main()
