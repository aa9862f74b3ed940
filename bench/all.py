"""The whole benchmark suite, one part after another, each as its own process, in one printed report.

The parts are the scripts of bench/, each also runnable alone:
  end_to_end  camserver's live path and whole pipeline against the one-process baseline
  ceiling     capture -> gateway -> viewer at the fastest rate capture paces at, next to the bare work
  capture     capture's CPU per frame, passed through against decoded and encoded
  detector    the detector's cost per frame against the original approach
  conditions  the detector in hard conditions (low light, lamps, shake, rain) against the original approach
  recorder    the recorder's cost per frame, and the x264 preset table
  fanout      the gateway with 1 to 100 viewers, a quarter of them slow
  cameras     1 to 4 cameras, a 1080p30 one beside a small one, shared detector and recorder against one per camera
  preroll     how long a 1080p camera's pre-roll holds up another camera's recording in the shared recorder
  h264        the H.264 live view against JPEG push: bytes a minute, PSNR, encoder CPU, 20 viewers on one encode
By default each part gets short durations so that the suite takes a few minutes; --full runs each
at its own defaults, which takes much longer and is steadier. A part that is missing is skipped
with a note; one that fails is reported with its output, the others still run, and the exit
status is 1. Ctrl-C (or SIGTERM) stops the running part, which stops its own processes.

    python bench/all.py                       # or ./run bench
    python bench/all.py --only end_to_end,ceiling
    python bench/all.py --full
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import REPO, stop_cleanly_on_signals

BENCH = Path(__file__).resolve().parent
# Long enough for --full on a slow machine; a part still running then is stopped.
PART_TIMEOUT_S = 1800
INTERRUPT_GRACE_S = 30


@dataclass(frozen=True)
class Part:
    name: str
    short: tuple[str, ...]  # the arguments of a quick run

    @property
    def script(self) -> Path:
        return BENCH / f"{self.name}.py"


PARTS = (
    Part("end_to_end", ("--seconds", "6", "--warmup", "1.5")),
    Part("ceiling", ("--seconds", "4")),
    Part("capture", ("--frames", "60")),
    Part("detector", ("--seconds", "12", "--repeats", "1")),  # 12 s: the walker comes and goes
    Part("conditions", ()),
    Part("recorder", ("--frames", "60")),
    Part("fanout", ("--seconds", "4")),
    Part("cameras", ("--seconds", "8")),
    Part("preroll", ("--delays", "1.0")),
    Part("h264", ("--seconds", "6", "--idle", "3", "--fanout-seconds", "4")),
)


def run_part(part: Part, full: bool) -> tuple[str, float]:
    """Run one part, its output going straight to ours; (status, seconds)."""
    args = [] if full else list(part.short)
    command = [sys.executable, str(part.script.relative_to(REPO)), *args]
    print(f"\n######## {part.name}: {' '.join(['python', *command[1:]])}", flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=REPO, stderr=subprocess.STDOUT)
    try:
        code = proc.wait(PART_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        stop(proc)
    seconds = time.monotonic() - started
    if code is None:
        return f"stopped after {PART_TIMEOUT_S} s", seconds
    return ("ok" if code == 0 else f"failed (exit status {code})"), seconds


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT first, which a part turns into stopping its own processes; SIGKILL if it does not end."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(INTERRUPT_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> None:
    names = [part.name for part in PARTS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[-3:]))
    parser.add_argument("--only", default=",".join(names), help=f"comma-separated parts of {','.join(names)}")
    parser.add_argument("--full", action="store_true", help="each part at its own default durations (slow)")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    if not chosen or set(chosen) - set(names):
        parser.error(f"--only takes some of {','.join(names)}")
    stop_cleanly_on_signals()
    print(f"camserver benchmark suite ({'full' if args.full else 'short'} runs); figures are noisy on a busy "
          "machine: compare each with the baseline of the same run")
    summary = []
    for part in PARTS:
        if part.name not in chosen:
            continue
        if not part.script.exists():
            print(f"\n######## {part.name}: skipped, {part.script.relative_to(REPO)} does not exist", flush=True)
            summary.append((part.name, "skipped (missing)", 0.0))
            continue
        summary.append((part.name, *run_part(part, args.full)))
    print("\n######## summary")
    for name, status, seconds in summary:
        print(f"  {name:12} {status:30} {seconds:6.0f} s")
    raise SystemExit(0 if all(status.startswith(("ok", "skipped")) for _, status, _ in summary) else 1)


if __name__ == "__main__":
    main()
