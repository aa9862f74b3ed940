"""The recorder's per-camera state machine, fed frame by frame the way the detector publishes.

For every frame the recorder gets the frame first, then that frame's events in the detector's
order: ``motion_start`` before the frame's ``delta``, ``motion_end`` after it. The episodes are
scripted as per-frame deltas and turned into events by the detector's own EpisodeTracker, so the
event data is what the real detector would send. Everything is written to a real Library in tmp_path.
"""

from __future__ import annotations

import errno
import itertools
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from pipeline.motion.episodes import EpisodeTracker
from pipeline.protocol import Event, Frame
from pipeline.record.episode import CATCH_UP_FRAMES, CameraRecorder
from pipeline.record.library import Library, parse_name
from pipeline.record.mp4 import Mp4Writer, probe
from pipeline.video.demo import DemoScene

W, H = 320, 240
FPS = 10
T0 = 1_700_000_000.0
PRE, POST = 1.0, 0.5
THRESHOLD = 2.0  # a delta at or above this is significant
STABLE_FRAMES, MIN_MOTION_FRAMES = 10, 3
QUIET = 0.3

DELTA_KEYS = {"delta", "significant", "boxes", "skipped", "motion"}
END_KEYS = {"start_seq", "start_ts", "end_seq", "end_ts", "significant_frames", "peak_delta", "peak_seq", "keep",
            "reason"}


def _picture(seq: int) -> np.ndarray:
    """The demo scene with the frame's seq written large, so a decoded video frame can be told apart."""
    image = SCENE.render(seq / FPS, T0 + seq / FPS)
    cv2.putText(image, str(seq), (20, 200), cv2.FONT_HERSHEY_SIMPLEX, 5, (255, 255, 255), 12)
    return image


SCENE = DemoScene(W, H, seed=2)
PICTURES = [_picture(seq) for seq in range(100)]
JPEGS = [cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes() for image in PICTURES]
assert len(set(JPEGS)) == len(JPEGS)


class Detector:
    """Turns a scripted delta per frame into the frames and events the detector stage would publish."""

    def __init__(self, recorder: CameraRecorder, first_seq: int = 0) -> None:
        self.recorder = recorder
        self.tracker = EpisodeTracker(STABLE_FRAMES, MIN_MOTION_FRAMES)
        self.seq = first_seq
        self.sent: list[Event] = []  # what the detector published
        self.published: list[Event] = []  # what the recorder published in return

    def step(self, delta: float, heard: bool = True) -> None:
        """One frame; ``heard`` False runs the detector without the recorder (not started yet)."""
        seq = self.seq
        self.seq += 1
        ts = T0 + seq / FPS
        significant = delta >= THRESHOLD
        transitions = self.tracker.update(seq, ts, delta, significant)
        events = [Event("cam0", seq, ts, kind, data) for kind, data in transitions if kind == "motion_start"]
        events.append(Event("cam0", seq, ts, "delta", {
            "delta": delta, "significant": significant, "boxes": [[10, 10, 50, 80]] if significant else [],
            "skipped": 0, "motion": self.tracker.active}))
        events += [Event("cam0", seq, ts, kind, data) for kind, data in transitions if kind == "motion_end"]
        self.sent += events
        if heard:
            self.published += self.recorder.on_frame(Frame("cam0", seq, ts, W, H, False, JPEGS[seq]))
            for event in events:
                self.published += self.recorder.on_event(event)
            self.published += self.recorder.catch_up()  # as the recorder's loop does after each batch

    def run(self, deltas: list[float], heard: bool = True) -> None:
        for delta in deltas:
            self.step(delta, heard)

    def of_type(self, kind: str) -> list[Event]:
        return [e for e in self.sent if e.type == kind]


def types(events: list[Event]) -> list[str]:
    return [e.type for e in events]


def recorder(tmp_path: Path, max_seconds: float = 300.0) -> tuple[CameraRecorder, Library]:
    library = Library(tmp_path)
    return CameraRecorder("cam0", library, pre_seconds=PRE, post_seconds=POST, max_seconds=max_seconds), library


def saved_files(library: Library, name: str) -> dict[str, Path]:
    return {suffix: library.path(name, suffix) for suffix in (".mp4", ".jpg", ".json")}


def first_decoded_seq(video: Path, candidates: range) -> int:
    """Which of the candidate frames the video's first picture is (nearest by mean pixel difference)."""
    with av.open(str(video)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="bgr24").astype(int)
    return min(candidates, key=lambda seq: np.abs(first - PICTURES[seq].astype(int)).mean())


# A kept episode: 3 s of quiet, 15 significant frames (seq 30-44) peaking at seq 37, then quiet until the
# detector calls it over at seq 54 (after STABLE_FRAMES quiet frames), and quiet on past the post-roll.
EPISODE = [4.0, 6.0, 5.0, 7.0, 8.0, 6.0, 9.0, 12.5, 9.0, 7.0, 6.0, 5.0, 4.0, 3.5, 3.0]
PEAK_SEQ = 37


def test_the_scripted_events_are_what_the_detector_sends(tmp_path: Path) -> None:
    """Guard for the rest of this file: the keys and the order are the detector's."""
    detector = Detector(recorder(tmp_path)[0])
    detector.run([QUIET] * 30 + EPISODE + [QUIET] * 12)
    (start,) = detector.of_type("motion_start")
    (end,) = detector.of_type("motion_end")
    assert start.seq == 30 and end.seq == 54
    assert all(set(e.data) == DELTA_KEYS for e in detector.of_type("delta"))
    assert set(end.data) == END_KEYS and end.data["keep"] is True and end.data["peak_seq"] == PEAK_SEQ
    assert types([e for e in detector.sent if e.seq == 30]) == ["motion_start", "delta"]
    assert types([e for e in detector.sent if e.seq == 54]) == ["delta", "motion_end"]
    detector.recorder.stop()


def test_a_kept_episode_gives_one_recording_with_pre_and_post_roll_and_the_peak_thumbnail(tmp_path: Path) -> None:
    rec, library = recorder(tmp_path)
    detector = Detector(rec)
    detector.run([QUIET] * 30 + EPISODE + [QUIET] * 20)
    start, end = detector.of_type("motion_start")[0], detector.of_type("motion_end")[0]

    assert types(detector.published) == ["recording_started", "recording_saved"]
    saved = detector.published[1]
    name = saved.data["name"]
    assert saved.data["cut_short"] is False
    assert rec.current is None
    files = saved_files(library, name)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in files.values())
    (sidecar,) = library.recordings()
    assert sidecar["name"] == name
    assert sidecar["cut_short"] is False
    assert saved.data["video"] == files[".mp4"].name and saved.data["thumbnail"] == files[".jpg"].name

    # Duration: from PRE before the trigger to POST after the end, by capture time.
    expected = (end.ts - start.ts) + PRE + POST
    info = probe(files[".mp4"])
    assert info is not None
    duration, frames, codec = info
    assert codec == "h264"
    assert duration == pytest.approx(expected, abs=0.15)
    assert sidecar["duration"] == pytest.approx(duration, abs=0.01) and saved.data["duration"] == sidecar["duration"]
    assert sidecar["frames"] == frames

    # Pre-roll: the video starts PRE before the trigger, with the frames the recorder saw then.
    assert sidecar["start"] == pytest.approx(start.ts - PRE, abs=1e-6)
    camera, named_start = parse_name(name) or ("", 0.0)
    assert camera == "cam0" and named_start == pytest.approx(start.ts - PRE, abs=0.001)
    assert first_decoded_seq(files[".mp4"], range(15, 35)) == 30 - round(PRE * FPS)
    assert sidecar["end"] == pytest.approx(end.ts + POST, abs=0.11)

    # Thumbnail: the very JPEG of the frame with the largest delta.
    assert files[".jpg"].read_bytes() == JPEGS[PEAK_SEQ]
    assert sidecar["peak_seq"] == PEAK_SEQ and sidecar["peak_delta"] == 12.5
    assert sidecar["significant_frames"] == len(EPISODE)
    assert (sidecar["start_seq"], sidecar["end_seq"]) == (30, 54)


def test_the_recording_started_event_names_the_file_to_come(tmp_path: Path) -> None:
    rec, library = recorder(tmp_path)
    detector = Detector(rec)
    detector.run([QUIET] * 30 + EPISODE[:3])
    (started,) = detector.published
    assert started.type == "recording_started" and started.seq == 30
    assert started.data["joined"] is False
    assert started.data["start_ts"] == pytest.approx(T0 + 3.0 - PRE)
    assert library.part_path(started.data["name"]).exists()  # being written, under its hidden name
    assert library.recordings() == []
    rec.stop()


def test_an_episode_the_detector_does_not_keep_leaves_nothing(tmp_path: Path) -> None:
    rec, library = recorder(tmp_path)
    detector = Detector(rec)
    detector.run([QUIET] * 30 + [5.0, 5.0])
    name = detector.published[0].data["name"]
    assert library.part_path(name).exists()
    detector.run([QUIET] * 10)
    assert detector.of_type("motion_end")[0].data["keep"] is False
    detector.run([QUIET] * 10)  # and on past where a post-roll would have ended

    assert types(detector.published) == ["recording_started", "recording_discarded"]
    assert detector.published[1].data["name"] == name
    assert list(tmp_path.iterdir()) == []
    assert rec.current is None
    assert rec.stop() == []


def test_stop_mid_episode_saves_what_there_is_marked_cut_short(tmp_path: Path) -> None:
    rec, library = recorder(tmp_path)
    detector = Detector(rec)
    detector.run([QUIET] * 30 + EPISODE[:10])  # seq 39 is the last frame

    published = rec.stop()

    assert types(published) == ["recording_saved"]
    assert published[0].data["cut_short"] is True
    (sidecar,) = library.recordings()
    assert sidecar["cut_short"] is True
    assert sidecar["duration"] == pytest.approx(3.9 - 2.0 + 0.1, abs=0.02)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".jpg", ".json", ".mp4"]
    assert rec.stop() == []


def test_stop_during_the_post_roll_is_not_cut_short(tmp_path: Path) -> None:
    """The episode is whole; only a bit of the post-roll is missing."""
    rec, library = recorder(tmp_path)
    detector = Detector(rec)
    detector.run([QUIET] * 30 + EPISODE + [QUIET] * 12)  # motion_end at 54, stopped at 56
    (saved,) = rec.stop()
    assert saved.type == "recording_saved" and saved.data["cut_short"] is False
    assert library.recordings()[0]["cut_short"] is False


def test_a_recorder_that_starts_mid_episode_joins_it_and_marks_it_cut_short(tmp_path: Path) -> None:
    rec, library = recorder(tmp_path)
    detector = Detector(rec)
    detector.run([QUIET] * 30 + EPISODE[:4], heard=False)  # the recorder was down when motion_start went out
    detector.run(EPISODE[4:] + [QUIET] * 20)

    assert types(detector.published) == ["recording_started", "recording_saved"]
    started, saved = detector.published
    assert started.data["joined"] is True and started.seq == 34
    assert saved.data["cut_short"] is True
    (sidecar,) = library.recordings()
    assert sidecar["cut_short"] is True
    assert sidecar["start"] == pytest.approx(T0 + 3.4)
    end = detector.of_type("motion_end")[0]
    assert sidecar["duration"] == pytest.approx(end.ts + POST - (T0 + 3.4) + 0.1, abs=0.15)
    assert library.path(sidecar["name"], ".jpg").read_bytes() == JPEGS[PEAK_SEQ]


def test_a_recorder_hearing_only_quiet_deltas_records_nothing(tmp_path: Path) -> None:
    rec, _ = recorder(tmp_path)
    detector = Detector(rec)
    detector.run([QUIET] * 40)
    assert detector.published == []
    assert rec.current is None
    assert list(tmp_path.iterdir()) == []


def test_a_new_episode_during_the_post_roll_finishes_the_first_recording_and_starts_a_second(
        tmp_path: Path) -> None:
    rec, library = recorder(tmp_path)
    detector = Detector(rec)
    # Episode 1: seq 30-37, over at 47, post-roll to 5.2 s. Episode 2 starts at seq 50 (5.0 s), over at 67.
    detector.run([QUIET] * 30 + [5.0] * 8 + [QUIET] * 12 + [6.0] * 8 + [QUIET] * 20)
    starts = detector.of_type("motion_start")
    assert [e.seq for e in starts] == [30, 50]
    assert [e.seq for e in detector.of_type("motion_end")] == [47, 67]

    assert types(detector.published) == ["recording_started", "recording_saved", "recording_started",
                                         "recording_saved"]
    first, second = detector.published[1], detector.published[3]
    assert first.seq == 50  # finished by the second motion_start, not by the end of its post-roll
    assert first.data["name"] != second.data["name"]
    assert first.data["cut_short"] is False and second.data["cut_short"] is False
    listed = {r["name"]: r for r in library.recordings()}
    assert set(listed) == {first.data["name"], second.data["name"]}
    one, two = listed[first.data["name"]], listed[second.data["name"]]
    assert one["start"] == pytest.approx(T0 + 2.0) and one["end"] == pytest.approx(T0 + 4.9)
    assert two["start"] == pytest.approx(starts[1].ts - PRE)  # its own pre-roll, overlapping the first
    assert two["duration"] == pytest.approx(6.7 - 5.0 + PRE + POST, abs=0.15)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_camera_silent_during_the_post_roll_gets_its_recording_finished_by_tick(tmp_path: Path) -> None:
    rec, library = recorder(tmp_path)
    detector = Detector(rec)
    detector.run([QUIET] * 30 + EPISODE + [QUIET] * 11)  # motion_end at 54, then the camera falls silent
    assert rec.tick() == []
    assert rec.current is not None
    rec.current.deadline = time.monotonic() - 1  # the post-roll was due SILENT_AFTER_S ago

    published = rec.tick()

    assert types(published) == ["recording_saved"]
    assert published[0].data["cut_short"] is False
    assert len(library.recordings()) == 1


def test_tick_does_not_end_an_episode_still_open(tmp_path: Path) -> None:
    """Mid-episode only the detector decides when it is over, however long the camera is silent."""
    rec, library = recorder(tmp_path)
    detector = Detector(rec)
    detector.run([QUIET] * 30 + EPISODE[:5])
    assert rec.current is not None
    assert rec.current.deadline is None, "no deadline while the episode is open"
    assert rec.tick() == []
    assert rec.current is not None
    assert library.recordings() == []
    rec.stop()


def test_a_recording_ended_mid_episode_by_a_new_motion_start_is_cut_short(tmp_path: Path) -> None:
    rec, library = recorder(tmp_path)
    detector = Detector(rec)
    detector.run([QUIET] * 30 + EPISODE[:10])
    restarted = Detector(rec, first_seq=detector.seq)  # a fresh tracker: the detector came back mid-episode
    restarted.run(EPISODE[10:] + [QUIET] * 20)

    assert types(detector.published + restarted.published) == ["recording_started", "recording_saved",
                                                               "recording_started", "recording_saved"]
    first = restarted.published[0]
    assert first.data["cut_short"] is True
    assert library.recordings()[-1]["cut_short"] is True


def test_a_detector_restarted_after_the_motion_but_before_motion_end_still_ends_the_recording(
        tmp_path: Path) -> None:
    """The motion_end never comes: the new detector's quiet deltas end the recording, with its post-roll."""
    rec, library = recorder(tmp_path)
    detector = Detector(rec)
    detector.run([QUIET] * 30 + EPISODE + [QUIET] * 3)  # seq 48: calm for 3 frames, motion_end due at 54
    restarted = Detector(rec, first_seq=detector.seq)  # killed and back: a fresh tracker, motion off
    restarted.run([QUIET] * 12)

    assert detector.of_type("motion_end") == [] and restarted.of_type("motion_end") == []
    assert types(detector.published + restarted.published) == ["recording_started", "recording_saved"]
    saved = restarted.published[0]
    assert saved.data["cut_short"] is False
    (sidecar,) = library.recordings()
    second_calm = restarted.of_type("delta")[1]
    assert sidecar["end_seq"] == second_calm.seq
    assert sidecar["end"] == pytest.approx(second_calm.ts + POST, abs=0.11)
    assert rec.current is None


def test_a_recording_longer_than_the_maximum_goes_on_in_the_next_one(tmp_path: Path) -> None:
    """A scene that never calms down: parts of at most max_seconds, chained, with no frame lost or repeated."""
    rec, library = recorder(tmp_path, max_seconds=2.0)
    detector = Detector(rec)
    detector.run([QUIET] * 30 + [5.0] * 45 + [QUIET] * 20)  # motion 3.0-7.4 s, motion_end at 8.4 s

    assert types(detector.published) == ["recording_started"] + ["recording_saved", "recording_started"] * 3 + [
        "recording_saved"]
    parts = sorted(library.recordings(), key=lambda r: r["start"])
    assert len(parts) == 4
    assert [p["continues"] for p in parts] == [None] + [p["name"] for p in parts[:-1]]
    assert [p["continued_in"] for p in parts] == [p["name"] for p in parts[1:]] + [None]
    assert [round(p["start"] - T0, 2) for p in parts] == [2.0, 4.0, 6.0, 8.0]
    for part, after in itertools.pairwise(parts):
        assert after["start"] == pytest.approx(part["end"] + 0.1)
        assert part["duration"] == pytest.approx(2.0, abs=0.01)
    assert parts[-1]["end"] == pytest.approx(T0 + 8.9)
    assert sum(p["frames"] for p in parts) == 90 - 20  # seq 20 (pre-roll) to 89 (end of post-roll)
    for part in parts:
        info = probe(library.path(part["name"], ".mp4"))
        assert info is not None and info[1] == part["frames"]
        assert part["cut_short"] is False


def test_the_rest_of_a_split_episode_is_kept_whatever_the_detector_says(tmp_path: Path) -> None:
    """Once a part is saved, a motion_end with keep false must not throw away the rest of the episode."""
    rec, library = recorder(tmp_path, max_seconds=1.5)
    detector = Detector(rec)
    detector.run([QUIET] * 30 + [5.0, 5.0] + [QUIET] * 20)  # too few significant frames: keep false
    assert detector.of_type("motion_end")[0].data["keep"] is False
    assert types(detector.published) == ["recording_started", "recording_saved", "recording_started",
                                         "recording_saved"]
    first, rest = sorted(library.recordings(), key=lambda r: r["start"])
    assert first["continued_in"] == rest["name"] and rest["continues"] == first["name"]
    assert rec.current is None


def test_a_full_disk_drops_the_recording_and_the_next_episode_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC mid-recording: logged, the partial file removed, nothing raised, the next episode saved."""
    rec, library = recorder(tmp_path)
    detector = Detector(rec)
    real_write = Mp4Writer.write

    def disk_full(self: Mp4Writer, jpeg: bytes, ts: float) -> None:
        if self.frames >= 15:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, jpeg, ts)

    monkeypatch.setattr(Mp4Writer, "write", disk_full)
    detector.run([QUIET] * 30 + EPISODE[:10])
    (discarded,) = [e for e in detector.published if e.type == "recording_discarded"]
    assert discarded.data["reason"] == "disk full"
    assert rec.current is None and list(tmp_path.iterdir()) == []

    monkeypatch.setattr(Mp4Writer, "write", real_write)
    detector.run(EPISODE[10:] + [QUIET] * 14 + EPISODE + [QUIET] * 20)
    assert types(detector.published).count("recording_saved") == 1
    assert len(library.recordings()) == 1


def test_a_damaged_frame_mid_recording_is_skipped_and_the_rest_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A JPEG cut short on the way (its header intact) is logged and left out; the frames around it are kept."""
    damaged = 40
    jpegs = list(JPEGS)
    jpegs[damaged] = jpegs[damaged][: len(jpegs[damaged]) // 2]
    monkeypatch.setitem(globals(), "JPEGS", jpegs)
    rec, library = recorder(tmp_path)
    detector = Detector(rec)
    with caplog.at_level("WARNING", logger="camserver.recorder"):
        detector.run([QUIET] * 30 + EPISODE + [QUIET] * 20)
    assert types(detector.published) == ["recording_started", "recording_saved"]
    (warning,) = caplog.records
    assert warning.getMessage().startswith(f"cam0: skipping frame {damaged}: ")
    (sidecar,) = library.recordings()
    first = sidecar["start_seq"] - round(PRE * FPS)
    with av.open(str(library.path(sidecar["name"], ".mp4"))) as container:
        times = [float(packet.pts * packet.time_base) for packet in container.demux(video=0) if packet.pts is not None]
    shown = sorted(first + round(t * FPS) for t in times)
    assert damaged not in shown and {damaged - 1, damaged + 1} <= set(shown)
    assert sidecar["frames"] == len(shown) == shown[-1] - shown[0]


def test_the_pre_roll_is_written_a_few_frames_per_pass_and_new_frames_wait_their_turn(tmp_path: Path) -> None:
    """A 1080p pre-roll written in one go held up every other camera of the recorder for a second or more."""
    rec, _ = recorder(tmp_path)
    frames = [Frame("cam0", seq, T0 + seq / FPS, W, H, False, JPEGS[seq]) for seq in range(32)]
    for frame in frames[:30]:
        rec.on_frame(frame)
    started = rec.on_event(Event("cam0", 29, frames[29].ts, "motion_start", {}))
    assert types(started) == ["recording_started"] and rec.behind
    assert rec.current is not None and rec.current.writer is None  # nothing encoded yet
    rec.catch_up()
    assert rec.current.writer is not None and rec.current.writer.frames == CATCH_UP_FRAMES
    assert rec.on_frame(frames[30]) == [] and rec.current.writer.frames == CATCH_UP_FRAMES  # queued behind it
    passes = 1
    while rec.behind:
        rec.catch_up()
        passes += 1
    pre_roll = int(PRE * FPS) + 1  # the frames from trigger.ts - PRE to the trigger, both included
    assert rec.current.writer.frames == pre_roll + 1 and passes == -(-(pre_roll + 1) // CATCH_UP_FRAMES)
    assert rec.current.writer.last_ts == frames[30].ts
    rec.on_frame(frames[31])  # nothing waits any more: written at once
    assert rec.current.writer.frames == pre_roll + 2 and not rec.behind
