"""The gateway's memory: the newest frame of each camera, and the viewers waiting for the next one.

Each viewer (a WebSocket or an MJPEG client) owns one slot for the newest frame and a short queue
of events. A new frame overwrites the slot instead of queueing behind the last one, so a slow
client gets the newest frame whenever it is ready for one and never delays anybody else.
Nothing here touches sockets or clocks of its own, so it is tested frame by frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.protocol import Event, Frame

OFFLINE_AFTER_S = 5.0
# The recorder says it is alive every few seconds; three missed heartbeats and it counts as down.
RECORDER_SILENT_AFTER_S = 15.0
RECORDER_TYPES = frozenset({"recording_started", "recording_saved", "recording_discarded", "recorder_status"})
RATE_WINDOW_S = 2.0
EVENT_BACKLOG = 200


class RateMeter:
    """Frames per second over the last couple of seconds of arrivals."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self._window = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)
        while self._times and self._times[0] < now - self._window:
            self._times.popleft()

    def rate(self, now: float) -> float:
        recent = [t for t in self._times if t >= now - self._window]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)


@dataclass
class CameraState:
    """What the gateway knows of one camera; ages come from this host's monotonic clock."""

    frame: Frame
    frame_at: float
    event_at: float | None = None
    meter: RateMeter = field(default_factory=RateMeter)
    motion: bool = False
    recording: bool = False


class Viewer:
    """One client's mailbox: the newest frame and recent events of the camera it watches."""

    def __init__(self, camera: str | None, wants_events: bool) -> None:
        self.camera = camera
        self.wants_events = wants_events
        self._frame: Frame | None = None
        self._events: deque[Event] = deque(maxlen=EVENT_BACKLOG)
        self._wake = asyncio.Event()
        self.closed = False

    def offer_frame(self, frame: Frame) -> None:
        self._frame = frame
        self._wake.set()

    def offer_event(self, event: Event) -> None:
        if self.wants_events:
            self._events.append(event)
            self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def next(self, timeout: float | None = None) -> tuple[list[Event], Frame | None]:
        """Wait for news (or the timeout) and take it all: the events in order, then the newest frame."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()
        events, frame = list(self._events), self._frame
        self._events.clear()
        self._frame = None
        return events, frame


class Hub:
    """Routes each camera's frames and events to the viewers that watch it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.cameras: dict[str, CameraState] = {}
        self.viewers: set[Viewer] = set()
        self.detector_at: float | None = None
        self.recorder_at: float | None = None

    def default_camera(self) -> str | None:
        """The first camera that sent a frame: what a viewer that names none is shown."""
        return next(iter(self.cameras), None)

    def watched(self, viewer: Viewer) -> str | None:
        return viewer.camera or self.default_camera()

    def attach(self, camera: str | None, wants_events: bool) -> Viewer:
        viewer = Viewer(camera, wants_events)
        self.viewers.add(viewer)
        state = self.cameras.get(self.watched(viewer) or "")
        if state is not None:
            viewer.offer_frame(state.frame)
        return viewer

    def detach(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)
        viewer.close()

    def close(self) -> None:
        for viewer in list(self.viewers):
            self.detach(viewer)

    def publish_frame(self, frame: Frame) -> None:
        now = self._clock()
        state = self.cameras.get(frame.camera)
        if state is None:
            state = self.cameras[frame.camera] = CameraState(frame, now)
        state.frame, state.frame_at = frame, now
        state.meter.tick(now)
        for viewer in self.viewers:
            if self.watched(viewer) == frame.camera:
                viewer.offer_frame(frame)

    def publish_event(self, event: Event) -> None:
        now = self._clock()
        if event.type in RECORDER_TYPES:
            self.recorder_at = now
        else:
            self.detector_at = now
        state = self.cameras.get(event.camera)
        if state is not None:
            state.event_at = now
            if event.type == "delta":
                state.motion = event.data.get("motion") is True
            elif event.type in ("recording_started", "recorder_status"):
                state.recording = event.type == "recording_started" or event.data.get("recording") is True
            elif event.type in ("recording_saved", "recording_discarded"):
                state.recording = False
        for viewer in self.viewers:
            if self.watched(viewer) == event.camera:
                viewer.offer_event(event)

    def newest(self, camera: str | None) -> Frame | None:
        state = self.cameras.get(camera or self.default_camera() or "")
        return state.frame if state else None

    def status(self, camera: str | None) -> dict[str, object]:
        """The live page's status line for one camera (the default one when None)."""
        name = camera or self.default_camera()
        state = self.cameras.get(name or "")
        now = self._clock()
        viewers = sum(1 for v in self.viewers if self.watched(v) == name)
        if state is None:
            return {"type": "status", "camera": name, "w": None, "h": None, "fps": 0.0, "demo": False,
                    "viewers": viewers, "online": False}
        return {
            "type": "status",
            "camera": name,
            "w": state.frame.width,
            "h": state.frame.height,
            "fps": round(state.meter.rate(now), 2),
            "demo": state.frame.demo,
            "viewers": viewers,
            "online": now - state.frame_at < OFFLINE_AFTER_S,
        }

    def health(self) -> tuple[bool, dict[str, object]]:
        """Healthy when every known camera sent a frame within OFFLINE_AFTER_S (and one exists)."""
        now = self._clock()
        cameras = {
            name: {
                "frame_age": round(now - state.frame_at, 3),
                "event_age": None if state.event_at is None else round(now - state.event_at, 3),
                "seq": state.frame.seq,
                "fps": round(state.meter.rate(now), 2),
                "demo": state.frame.demo,
            }
            for name, state in self.cameras.items()
        }
        healthy = bool(cameras) and all(c["frame_age"] < OFFLINE_AFTER_S for c in cameras.values())
        return healthy, {"status": "ok" if healthy else "stale", "cameras": cameras}

    def overview(self) -> dict[str, object]:
        """Cameras and the health of the stages, as the gateway sees them, for /api/status."""
        now = self._clock()
        cameras = {
            name: {
                "online": now - state.frame_at < OFFLINE_AFTER_S,
                "frame_age": round(now - state.frame_at, 3),
                "fps": round(state.meter.rate(now), 2),
                "w": state.frame.width,
                "h": state.frame.height,
                "demo": state.frame.demo,
                "motion": state.motion,
                "recording": state.recording,
            }
            for name, state in self.cameras.items()
        }
        frame_age = min((now - s.frame_at for s in self.cameras.values()), default=None)

        def stage(age: float | None, limit: float) -> dict[str, object]:
            return {"ok": age is not None and age < limit, "age": None if age is None else round(age, 3)}

        return {
            "cameras": cameras,
            "stages": {
                "capture": stage(frame_age, OFFLINE_AFTER_S),
                "detector": stage(None if self.detector_at is None else now - self.detector_at, OFFLINE_AFTER_S),
                "recorder": stage(None if self.recorder_at is None else now - self.recorder_at,
                                  RECORDER_SILENT_AFTER_S),
            },
            "viewers": len(self.viewers),
        }
