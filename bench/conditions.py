"""Found / false per condition: camserver's detector next to the seed's algorithm on the same clips.

The clips are tests/support/clips.py's synthetic scenes with known truth (a walker in view at known
frames, or nothing real moving): low light, noise, a flickering lamp over part of the picture,
camera shake, rain, a light switch, a twitch and an exposure ramp. Both detectors see the same
JPEGs (quality 80, as a webcam sends) and feed the same EpisodeTracker rule, so the rows differ
only in how a frame is judged:
  - camserver: pipeline.motion.camera.CameraDetector with its default settings (the rules included);
  - seed: bench/detector.py's SeedDetector, the seed's full-size blur-absdiff-threshold.

A walk row says ``found +N`` (motion_start N frames after the walker came into view), ``missed``,
``cut at F`` (the episode ended at frame F, while the walker was still in view) or ``N kept``
(more than one episode kept); a row without a walker says ``0 kept`` or ``N kept`` (false). ``ok``
is the test's verdict: start within 3 frames and kept until the walker leaves, or nothing kept.
The rule column counts camserver's lightswitch (by rule) and shake events. The ms columns are the
best of --repeats passes, decode included, back to back on one core.

    python bench/conditions.py                          # every clip, about 30 s
    python bench/conditions.py --clips shake,lamp_flicker --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
from detector import SETTINGS, SeedDetector

from pipeline.motion.camera import CameraDetector
from pipeline.motion.episodes import EpisodeTracker
from pipeline.protocol import Event, Frame

# The clips live with the tests, which are not installed: the repository goes on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.clips import CLIPS, FPS, Clip, H, W

QUALITY = 80
MAX_START_LAG = 3
MAX_EARLY_END = 3

Episode = tuple[int, int]  # start_seq, end_seq of a kept episode


@dataclass
class Outcome:
    """One detector on one clip: its kept episodes, camserver's rule events, its best ms per frame."""

    kept: list[Episode]
    rules: Counter[str]
    ms: float


def encode(clip: Clip) -> list[bytes]:
    return [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])[1].tobytes() for f in clip.frames]


def camserver(jpegs: list[bytes], width: int, height: int) -> tuple[list[Event], float]:
    """Every event of CameraDetector for the clip, and the seconds spent in it."""
    detector, events, spent = CameraDetector("cam0", SETTINGS), [], 0.0
    for seq, jpeg in enumerate(jpegs):
        frame = Frame("cam0", seq, 1000.0 + seq / FPS, width, height, False, jpeg)
        started = time.perf_counter()
        events += detector.process(frame)
        spent += time.perf_counter() - started
    closing = detector.close("end of clip")
    return events + ([closing] if closing else []), spent


def seed(jpegs: list[bytes], width: int, height: int) -> tuple[list[Episode], float]:
    """The kept episodes of the seed's algorithm for the clip, and the seconds spent judging frames."""
    detector, tracker = SeedDetector(), EpisodeTracker(SETTINGS.stable_frames, SETTINGS.min_motion_frames)
    kept, spent = [], 0.0
    for seq, jpeg in enumerate(jpegs):
        started = time.perf_counter()
        result = detector.measure(jpeg, width, height)
        spent += time.perf_counter() - started
        if result is not None:
            kept += [(d["start_seq"], d["end_seq"]) for k, d in tracker.update(seq, seq / FPS, *result)
                     if k == "motion_end" and d["keep"]]
    closing = tracker.close("end of clip")
    return kept + ([(closing["start_seq"], closing["end_seq"])] if closing and closing["keep"] else []), spent


def rule_counts(events: list[Event]) -> Counter[str]:
    return Counter(f"{e.type}/{e.data['rule']}" if "rule" in e.data else e.type
                   for e in events if e.type in ("lightswitch", "shake"))


def measure(clip: Clip, repeats: int) -> tuple[Outcome, Outcome]:
    """camserver's and the seed's outcome on one clip, each timed as its best of ``repeats`` passes."""
    jpegs = encode(clip)
    height, width = clip.frames[0].shape[:2]
    ours_s, seed_s = float("inf"), float("inf")
    for _ in range(repeats):
        events, spent = camserver(jpegs, width, height)
        ours_s = min(ours_s, spent)
        seed_kept, spent = seed(jpegs, width, height)
        seed_s = min(seed_s, spent)
    ours_kept = [(e.data["start_seq"], e.data["end_seq"]) for e in events if e.type == "motion_end" and e.data["keep"]]
    per_frame = 1000 / len(jpegs)
    return (Outcome(ours_kept, rule_counts(events), ours_s * per_frame),
            Outcome(seed_kept, Counter(), seed_s * per_frame))


def verdict(walk: list[int] | None, kept: list[Episode]) -> tuple[str, bool]:
    """What a detector made of a clip, in a few words, and whether the test would pass it."""
    if walk is None:
        return f"{len(kept)} kept", not kept
    if not kept:
        return "missed", False
    if len(kept) > 1:
        return f"{len(kept)} kept", False
    (start, end), = kept
    if end < walk[-1] - MAX_EARLY_END:
        return f"{start - walk[0]:+d}, cut at {end}", False
    return f"found {start - walk[0]:+d}", abs(start - walk[0]) <= MAX_START_LAG


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default=",".join(CLIPS), help="comma-separated clip names (default: all)")
    parser.add_argument("--repeats", type=int, default=1, help="passes per clip; the fastest is reported")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one core per stage, as in the pipeline; and steadier figures
    names = args.clips.split(",")
    unknown = [n for n in names if n not in CLIPS]
    if unknown:
        parser.error(f"unknown clips {unknown}; known: {', '.join(CLIPS)}")
    print(f"{'clip':24} {'truth':11} {'camserver':18} {'seed':18} {'rules (camserver)':30} "
          f"{'ms/frame':>8} {'seed ms':>8} {'seed/cs':>7}")
    passed = {"camserver": 0, "seed": 0}
    for name in names:
        clip = CLIPS[name]()
        ours, theirs = measure(clip, args.repeats)
        truth = f"walk {clip.walk[0]}-{clip.walk[-1]}" if clip.walk else "none"
        ours_text, ours_ok = verdict(clip.walk, ours.kept)
        seed_text, seed_ok = verdict(clip.walk, theirs.kept)
        passed["camserver"] += ours_ok
        passed["seed"] += seed_ok
        rules = " ".join(f"{k}x{n}" for k, n in sorted(ours.rules.items())) or "-"
        print(f"{name:24} {truth:11} {ours_text:13} {'ok' if ours_ok else 'FAIL':4} {seed_text:13} "
              f"{'ok' if seed_ok else 'FAIL':4} {rules:30} {ours.ms:8.2f} {theirs.ms:8.2f} x{theirs.ms / ours.ms:6.2f}")
    print(f"passed: camserver {passed['camserver']}/{len(names)}, seed {passed['seed']}/{len(names)} "
          f"({W}x{H} at {FPS} fps)")


if __name__ == "__main__":
    main()
