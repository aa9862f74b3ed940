"""One camera's recording of its motion episodes: the state machine the recorder runs per camera.

It is driven by calls, frame by frame and event by event, and answers with the events to publish,
so a test plays it whole episodes without ZeroMQ. On ``motion_start`` it starts writing the
pre-roll (pipeline.record.preroll) and every new frame to a hidden ``.part`` file, the pre-roll a
few frames per pass of the loop, so that one camera's 1080p pre-roll does not hold up the other
cameras' frames and events. ``motion_end`` with ``keep`` false deletes it; with ``keep`` true the
recording goes on for the post-roll and is then published under its final name with a thumbnail
(the frame with the largest delta) and a JSON sidecar (pipeline.record.library).

A recorder that starts while an episode is already open (after a crash or a restart) joins it
from the next ``delta`` event that says motion is on, and marks the result cut short. A
``motion_end`` that never comes (the detector died between the last motion and its verdict) is
stood in for by the second ``delta`` in a row that says motion is off: the recording ends after
its post-roll as usual. A recording that reaches the longest allowed is closed and the episode
goes on in the next one; their sidecars name each other (``continued_in``, ``continues``).
"""

from __future__ import annotations

import errno
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pipeline.protocol import Event, Frame
from pipeline.record.library import Library, recording_name
from pipeline.record.mp4 import Mp4Writer
from pipeline.record.preroll import PreRoll

# A post-roll not ended by a frame this long after it was due is finished as it is.
SILENT_AFTER_S = 5.0
# The thumbnail is looked up among the newest frames, so the buffer keeps at least this much.
MIN_BUFFER_S = 1.0
# Pre-roll frames a camera's recording writes per pass of the loop: a 1080p pre-roll written in one
# go held up every other camera's frames and events for a second or more (bench/cameras.py).
CATCH_UP_FRAMES = 3
# Deltas in a row saying motion is off after which a missing motion_end is taken as given: the
# detector sends exactly one before its motion_end, so a second one means the motion_end is lost.
CALM_DELTAS = 2

log = logging.getLogger("camserver.recorder")


@dataclass
class Recording:
    """A recording being written: its file, and what the sidecar will say about it."""

    name: str
    start_seq: int
    joined: bool
    writer: Mp4Writer | None = None
    significant_frames: int = 0
    peak_delta: float = 0.0
    peak_seq: int | None = None
    thumbnail: bytes | None = None
    end_seq: int | None = None
    until_ts: float | None = None
    deadline: float | None = None
    calm_deltas: int = 0
    continues: str | None = None
    # Frames to write before the next one: the pre-roll, and frames that came while it was written.
    backlog: deque[Frame] = field(default_factory=deque)


class CameraRecorder:
    """One camera's recording state machine; returns the events it wants published."""

    def __init__(self, camera: str, library: Library, pre_seconds: float, post_seconds: float,
                 max_seconds: float) -> None:
        self.camera = camera
        self._library = library
        self._pre = pre_seconds
        self._post = post_seconds
        self._max = max_seconds
        self._buffer = PreRoll(max(pre_seconds, MIN_BUFFER_S))
        self.current: Recording | None = None
        self.last_seen: Frame | None = None
        # After a recording was dropped mid-episode (disk full), joining the same episode again on
        # its next frame would only fail again, once per frame.
        self._dropped_mid_episode = False

    def on_frame(self, frame: Frame) -> list[Event]:
        self._buffer.add(frame)
        self.last_seen = frame
        recording = self.current
        if recording is None:
            return []
        if recording.until_ts is not None and frame.ts > recording.until_ts:
            return self._finish(frame, cut_short=recording.joined)
        writer = recording.writer
        if (recording.until_ts is None and writer is not None and writer.first_ts is not None
                and frame.ts - writer.first_ts >= self._max):
            return self._split(frame)
        if recording.backlog:
            recording.backlog.append(frame)
            return []
        return self._write(frame)

    @property
    def behind(self) -> bool:
        """Whether frames wait to be written: the loop then calls catch_up without waiting for messages."""
        return self.current is not None and bool(self.current.backlog)

    def catch_up(self, limit: int = CATCH_UP_FRAMES) -> list[Event]:
        """Write up to ``limit`` waiting frames, so that one camera's pre-roll never holds up the other cameras."""
        published: list[Event] = []
        for _ in range(limit):
            recording = self.current
            if recording is None or not recording.backlog:
                break
            published += self._write(recording.backlog.popleft())
        return published

    def on_event(self, event: Event) -> list[Event]:
        recording = self.current
        if event.type == "motion_start":
            self._dropped_mid_episode = False
            published = self._finish(event, cut_short=self._cut_short(recording)) if recording is not None else []
            return published + self._start(event, joined=False)
        if event.type == "delta":
            motion = event.data.get("motion") is True
            if not motion:
                self._dropped_mid_episode = False
            elif recording is None and not self._dropped_mid_episode:
                return self._start(event, joined=True)
            if recording is not None and recording.until_ts is None:
                self._note_delta(recording, event)
                recording.calm_deltas = 0 if motion else recording.calm_deltas + 1
                if recording.calm_deltas >= CALM_DELTAS:
                    log.info("%s: motion ended without a motion_end (detector restarted?); ending %s",
                             self.camera, recording.name)
                    self._post_roll(recording, event)
            return []
        if event.type == "motion_end" and recording is not None and recording.until_ts is None:
            # The first part of a split episode is saved already: the rest is kept with it.
            if not event.data.get("keep", True) and recording.continues is None:
                return self._discard(event, "episode discarded by the detector")
            self._post_roll(recording, event)
            if isinstance(event.data.get("significant_frames"), int) and not recording.joined:
                recording.significant_frames = event.data["significant_frames"]
        return []

    def tick(self) -> list[Event]:
        """Finish a post-roll that frames did not end: the camera fell silent or its clock jumped back."""
        recording = self.current
        if recording is None or recording.deadline is None or time.monotonic() < recording.deadline:
            return []
        return self._finish(None, cut_short=recording.joined)

    def stop(self) -> list[Event]:
        """On shutdown: a recording in progress is finished properly, marked cut short if mid-episode."""
        recording = self.current
        if recording is None:
            return []
        return self._finish(None, cut_short=self._cut_short(recording))

    def status(self) -> Event | None:
        """The heartbeat: alive, and recording or not (None before the first frame)."""
        if self.last_seen is None:
            return None
        name = self.current.name if self.current is not None else None
        return self._event(self.last_seen, "recorder_status", {"recording": name is not None, "name": name})

    def _post_roll(self, recording: Recording, end: Event) -> None:
        """The episode ended at ``end``: record --post-seconds more, then finish."""
        recording.end_seq = end.seq
        recording.until_ts = end.ts + self._post
        recording.deadline = time.monotonic() + self._post + SILENT_AFTER_S

    @staticmethod
    def _cut_short(recording: Recording) -> bool:
        """A recording ended now lacks part of its episode if it joined late or the episode goes on."""
        return recording.joined or recording.until_ts is None

    def _start(self, trigger: Event, joined: bool) -> list[Event]:
        frames = self._buffer.since(trigger.ts - self._pre)
        start_ts = frames[0].ts if frames else trigger.ts
        self.current = Recording(recording_name(self.camera, start_ts), trigger.seq, joined)
        log.debug("%s: recording %s%s", self.camera, self.current.name,
                  " (joined an episode in progress)" if joined else "")
        published = [self._event(trigger, "recording_started", {"name": self.current.name, "start_ts": start_ts,
                                                                 "joined": joined})]
        if trigger.type == "delta":
            self._note_delta(self.current, trigger)
        self.current.backlog.extend(frames)  # written by catch_up, a few per pass
        return published

    def _split(self, frame: Frame) -> list[Event]:
        """Close a recording that reached --max-recording-seconds; the episode goes on in a new one from ``frame``."""
        old = self.current
        assert old is not None
        name = recording_name(self.camera, frame.ts)
        published = self._finish(frame, cut_short=old.joined, continued_in=name)
        self.current = Recording(name, frame.seq, joined=False, continues=old.name)
        log.info("%s: recording %s continues %s (longer than %g s)", self.camera, name, old.name, self._max)
        published.append(self._event(frame, "recording_started", {"name": name, "start_ts": frame.ts,
                                                                  "joined": False, "continues": old.name}))
        return published + self._write(frame)

    def _note_delta(self, recording: Recording, event: Event) -> None:
        delta = event.data.get("delta")
        if not isinstance(delta, int | float):
            return
        if event.data.get("significant") is True:
            recording.significant_frames += 1
        if delta > recording.peak_delta or recording.thumbnail is None:
            frame = self._buffer.find(event.seq)
            if frame is not None:
                recording.peak_delta, recording.peak_seq, recording.thumbnail = delta, event.seq, frame.jpeg

    def _write(self, frame: Frame) -> list[Event]:
        recording = self.current
        assert recording is not None
        try:
            if recording.writer is None:
                self._library.root.mkdir(parents=True, exist_ok=True)
                recording.writer = Mp4Writer(self._library.part_path(recording.name), frame.width, frame.height)
            elif recording.writer.last_ts is not None and frame.ts <= recording.writer.last_ts:
                return []
            recording.writer.write(frame.jpeg, frame.ts)
        except ValueError as exc:
            log.warning("%s: skipping frame %d: %s", self.camera, frame.seq, exc)
        except OSError as exc:
            log.error("%s: could not record %s: %s", self.camera, recording.name, _disk_error(exc))
            self._dropped_mid_episode = recording.until_ts is None
            return self._discard(frame, _disk_error(exc))
        return []

    def _finish(self, last: Frame | Event | None, cut_short: bool, continued_in: str | None = None) -> list[Event]:
        waiting = len(self.current.backlog) if self.current is not None else 0
        published = self.catch_up(waiting)  # every waiting frame now: the recording is about to be closed
        if self.current is None:  # the disk filled up while the backlog was written: discarded
            return published
        return published + self._close(last, cut_short, continued_in)

    def _close(self, last: Frame | Event | None, cut_short: bool, continued_in: str | None) -> list[Event]:
        recording = self.current
        assert recording is not None
        self.current = None
        writer = recording.writer
        if writer is None or writer.frames == 0:
            if writer is not None:
                writer.abort()
            return [self._event_for(last, recording, "recording_discarded",
                                    {"name": recording.name, "reason": "no frame arrived"})]
        try:
            writer.close()
            sidecar = self._library.publish(recording.name, writer.path, recording.thumbnail, {
                "camera": self.camera,
                "start": writer.first_ts,
                "end": writer.last_ts,
                "duration": round(writer.duration, 3),
                "frames": writer.frames,
                "significant_frames": recording.significant_frames,
                "peak_delta": recording.peak_delta,
                "peak_seq": recording.peak_seq,
                "start_seq": recording.start_seq,
                "end_seq": recording.end_seq,
                "cut_short": cut_short,
                "continues": recording.continues,
                "continued_in": continued_in,
            })
        except OSError as exc:
            writer.path.unlink(missing_ok=True)
            log.error("%s: could not save %s: %s", self.camera, recording.name, _disk_error(exc))
            return [self._event_for(last, recording, "recording_discarded",
                                    {"name": recording.name, "reason": _disk_error(exc)})]
        log.debug("%s: saved %s (%.1f s, %d frames, %d KB%s)", self.camera, recording.name, sidecar["duration"],
                  writer.frames, sidecar["size"] // 1024, ", cut short" if cut_short else "")
        return [self._event_for(last, recording, "recording_saved", saved_data(sidecar))]

    def _discard(self, trigger: Frame | Event, reason: str) -> list[Event]:
        recording = self.current
        assert recording is not None
        self.current = None
        if recording.writer is not None:
            recording.writer.abort()
        log.debug("%s: discarded %s: %s", self.camera, recording.name, reason)
        return [self._event(trigger, "recording_discarded", {"name": recording.name, "reason": reason})]

    def _event(self, about: Frame | Event, kind: str, data: dict[str, Any]) -> Event:
        return Event(self.camera, about.seq, about.ts, kind, data)

    def _event_for(self, about: Frame | Event | None, recording: Recording, kind: str,
                   data: dict[str, Any]) -> Event:
        if about is not None:
            return self._event(about, kind, data)
        last_ts = recording.writer.last_ts if recording.writer is not None else None
        return Event(self.camera, recording.start_seq, last_ts or time.time(), kind, data)


def saved_data(sidecar: dict[str, Any]) -> dict[str, Any]:
    """The keys of a recording_saved event, from the sidecar of the recording it announces."""
    return {"name": sidecar["name"], "path": sidecar["video"], "video": sidecar["video"],
            "thumbnail": sidecar["thumbnail"], "duration": sidecar["duration"], "size": sidecar["size"],
            "cut_short": sidecar["cut_short"]}


def _disk_error(exc: OSError) -> str:
    return "disk full" if exc.errno == errno.ENOSPC else f"cannot write: {exc}"
