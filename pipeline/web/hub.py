"""The gateway's memory: the newest frame of each camera, and the viewers waiting for the next one.

Each viewer (a WebSocket or an MJPEG client) owns one slot for the newest frame and a short queue
of events. A new frame overwrites the slot instead of queueing behind the last one, so a slow
client gets the newest frame whenever it is ready for one and never delays anybody else.
The hub hands each frame to every viewer of its camera by a plain call (``offer_frame``): the
live routes' viewers write it to their socket there and then when the socket is free, so a frame
costs no task switch per viewer (pipeline/web/live.py); ``Viewer`` here is the mailbox kind, which
a task awaits. Nothing here touches sockets or clocks of its own, so it is tested frame by frame.

A viewer watches one camera (or whichever is the default), or, added with ``watch``, exactly the
cameras it names: a page of tiles asks for the frames of the tiles on screen only and changes that
set as they scroll in and out (``Hub.watch``), so a paused tile costs nothing here. Such a viewer
gets the events of every camera (of its own only, when it has one). Viewers are kept per camera
they watch, so a frame is handed to its camera's viewers without looking at anybody else's.

State is per camera and freed: a camera that sent a frame or two and fell silent (a stray or
made-up id on the bus) is forgotten after OFFLINE_AFTER_S and never counts for health; one that
streamed for ESTABLISHED_AFTER_S counts until it has been silent for FORGET_AFTER_S. Stages are
judged by their own heartbeats, and a camera's ``motion`` and ``recording`` flags are believed
only while the stage that set them is heard from.

Counters for /metrics (pipeline/web/metrics.py) are kept here as plain numbers, bumped where the
hub already handles the frame or event, and read at scrape time: frames taken in and handed to
viewers, capture-to-gateway latency, episodes and recordings per camera, and each stage's own
counters from its heartbeat. A camera's counters go with its state when it is forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from pipeline.protocol import HEARTBEAT_EVERY_S, Event, Frame, Heartbeat

OFFLINE_AFTER_S = 5.0
# Three missed heartbeats and a stage counts as down.
STAGE_SILENT_AFTER_S = 3 * HEARTBEAT_EVERY_S
STAGES = ("capture", "detector", "recorder")
# A camera whose frames span this long is a real one: its silence makes /healthz fail.
ESTABLISHED_AFTER_S = 3.0
# A real camera silent this long has been taken away; its state goes.
FORGET_AFTER_S = 3600.0
# Cameras the gateway keeps state for at most: made-up ids beyond it are refused, not stored.
MAX_CAMERAS = 64
PRUNE_EVERY_S = 1.0
RATE_WINDOW_S = 2.0
EVENT_BACKLOG = 200
# Upper bounds (seconds) of the capture-to-gateway latency histogram's buckets.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The key under which viewers of every camera's events are kept; no camera id can be "*".
ALL_CAMERAS = "*"


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


class Latency:
    """A histogram of seconds from capture (a frame's ``ts``) to the gateway taking the frame in.

    Both ends are wall clocks, of the capture host and of this one: across hosts their skew adds to
    every figure, and a negative figure (capture's clock ahead) counts as 0 in ``negative``.
    """

    def __init__(self) -> None:
        self.buckets = [0] * len(LATENCY_BUCKETS)  # per bucket, not cumulative
        self.count = 0
        self.sum = 0.0
        self.negative = 0

    def observe(self, seconds: float) -> None:
        if seconds < 0:
            self.negative += 1
            seconds = 0.0
        self.count += 1
        self.sum += seconds
        for index, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.buckets[index] += 1
                break


@dataclass
class CameraState:
    """What the gateway knows of one camera; ages come from this host's monotonic clock."""

    frame: Frame
    frame_at: float
    first_at: float
    event_at: float | None = None
    meter: RateMeter = field(default_factory=RateMeter)
    motion: bool = False
    recording: bool = False
    frames: int = 0  # taken into the hub
    offered: int = 0  # handed to a viewer (a slow viewer's waiting frame is replaced by the next)
    dropped: int = 0  # replaced so, while waiting for a slow viewer: never sent
    latency: Latency = field(default_factory=Latency)
    episodes: int = 0  # motion_start events
    saved: int = 0  # recording_saved events
    discarded: int = 0  # recording_discarded events

    def online(self, now: float) -> bool:
        return now - self.frame_at < OFFLINE_AFTER_S

    def established(self) -> bool:
        return self.frame_at - self.first_at >= ESTABLISHED_AFTER_S

    def counts(self, now: float) -> bool:
        """Whether /healthz should care about this camera: it is streaming, or did for a while."""
        return self.online(now) or self.established()


class Watcher(Protocol):
    """What the hub needs of a viewer: which camera it watches, and where to put what happens.

    A viewer added with ``watch`` gets frames of several cameras through ``offer_frame``, so it must
    keep the newest frame of each camera, not one for all.
    """

    camera: str | None
    wants_events: bool
    closed: bool

    def offer_frame(self, frame: Frame) -> bool:
        """Take the camera's newest frame; True if it pushed out one of the camera still waiting (dropped).

        Called for every frame, so it must be quick and must not raise.
        """

    def offer_event(self, event: Event) -> None:
        """Take an event of the camera, when the viewer wants events; must not raise."""

    def close(self) -> None:
        """The hub lets go of the viewer (it left, or the gateway stops)."""


W = TypeVar("W", bound=Watcher)


class Viewer:
    """One client's mailbox: the newest frame and recent events of the camera it watches."""

    def __init__(self, camera: str | None, wants_events: bool) -> None:
        self.camera = camera
        self.wants_events = wants_events
        self._frame: Frame | None = None
        self._events: deque[Event] = deque(maxlen=EVENT_BACKLOG)
        self._wake = asyncio.Event()
        self.closed = False

    def offer_frame(self, frame: Frame) -> bool:
        dropped = self._frame is not None and self._frame.camera == frame.camera
        self._frame = frame
        self._wake.set()
        return dropped

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

    def __init__(self, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._clock, self._wall = clock, wall
        self.cameras: dict[str, CameraState] = {}
        self.viewers: set[Watcher] = set()
        # camera -> viewers of its frames (None: of whichever camera is the default), and camera -> viewers of
        # its events (None: the default's, ALL_CAMERAS: every camera's); each viewer's keys in _routes.
        self._frames_to: dict[str | None, set[Watcher]] = {}
        self._events_to: dict[str | None, set[Watcher]] = {}
        self._routes: dict[Watcher, tuple[frozenset[str | None], str | None]] = {}
        self.stage_at: dict[str, float] = {}
        # (stage, camera: "" for a stage shared by the cameras) -> its counters; one capture per camera
        self.stage_counters: dict[tuple[str, str], dict[str, int]] = {}
        self._pruned_at = float("-inf")

    def default_camera(self) -> str | None:
        """What a viewer that names no camera is shown: the first camera online, else the first one seen."""
        now = self._clock()
        online = (name for name, state in self.cameras.items() if state.online(now))
        return next(online, next(iter(self.cameras), None))

    def attach(self, camera: str | None, wants_events: bool) -> Viewer:
        """A new mailbox viewer of ``camera`` (None: the default camera), handed the newest frame if live."""
        return self.add(Viewer(camera, wants_events))

    def add(self, viewer: W, watch: Iterable[str] | None = None) -> W:
        """Route frames (and events) to ``viewer`` from now on, starting with the newest frame if live.

        Without ``watch``, the frames and events of ``viewer.camera`` (None: the default camera); with
        it, the frames of exactly those cameras (see ``watch``).
        """
        self.viewers.add(viewer)
        if watch is not None:
            self._route(viewer, frozenset(), ALL_CAMERAS if viewer.camera is None else viewer.camera)
            self.watch(viewer, watch)
            return viewer
        self._route(viewer, frozenset({viewer.camera}), viewer.camera)
        state = self.cameras.get(viewer.camera or self.default_camera() or "")
        if state is not None and state.online(self._clock()):
            viewer.offer_frame(state.frame)
        return viewer

    def watch(self, viewer: Watcher, cameras: Iterable[str]) -> None:
        """Send ``viewer`` the frames of exactly ``cameras`` from now on (none: no frames at all).

        A camera it did not watch before is handed its newest frame at once if live, so a tile
        that scrolls back into view shows the picture without waiting for the next frame.
        Cameras not seen yet may be named: their frames come once they stream.
        """
        route = self._routes.get(viewer)
        if route is None:
            return
        before, events = route
        after = frozenset(cameras)
        self._route(viewer, after, events)
        now = self._clock()
        for name in after - before:
            state = self.cameras.get(name or "")
            if state is not None and state.online(now):
                viewer.offer_frame(state.frame)

    def detach(self, viewer: Watcher) -> None:
        if viewer in self.viewers:
            self.viewers.discard(viewer)
            self._unroute(viewer)
        viewer.close()

    def close(self) -> None:
        for viewer in list(self.viewers):
            self.detach(viewer)

    def publish_frame(self, frame: Frame) -> bool:
        """Store and route a frame; False when it comes from a new camera beyond MAX_CAMERAS."""
        now = self._clock()
        self._prune(now)
        state = self.cameras.get(frame.camera)
        if state is None:
            if len(self.cameras) >= MAX_CAMERAS:
                return False
            state = self.cameras[frame.camera] = CameraState(frame, now, now)
        state.frame, state.frame_at = frame, now
        state.meter.tick(now)
        state.frames += 1
        state.latency.observe(self._wall() - frame.ts)
        # A copy: a viewer may leave while it is handed the frame.
        viewers = tuple(self._frames_to.get(frame.camera, ()))
        followers = self._frames_to.get(None)
        if followers and self.default_camera() == frame.camera:
            viewers += tuple(followers)
        state.offered += len(viewers)
        for viewer in viewers:
            state.dropped += viewer.offer_frame(frame)
        return True

    def publish_heartbeat(self, heartbeat: Heartbeat) -> None:
        if heartbeat.stage in STAGES:
            self.stage_at[heartbeat.stage] = self._clock()
            key = (heartbeat.stage, heartbeat.camera or "")
            if key in self.stage_counters or len(self.stage_counters) < MAX_CAMERAS + len(STAGES):  # made-up ids
                self.stage_counters[key] = heartbeat.counters

    def publish_event(self, event: Event) -> None:
        now = self._clock()
        state = self.cameras.get(event.camera)
        if state is not None:
            state.event_at = now
            if event.type == "delta":
                state.motion = event.data.get("motion") is True
            elif event.type == "motion_start":
                state.episodes += 1
            elif event.type in ("recording_started", "recorder_status"):
                state.recording = event.type == "recording_started" or event.data.get("recording") is True
            elif event.type in ("recording_saved", "recording_discarded"):
                state.recording = False
                if event.type == "recording_saved":
                    state.saved += 1
                else:
                    state.discarded += 1
        viewers = (*self._events_to.get(event.camera, ()), *self._events_to.get(ALL_CAMERAS, ()))
        followers = self._events_to.get(None)
        if followers and self.default_camera() == event.camera:
            viewers += tuple(followers)
        for viewer in viewers:
            viewer.offer_event(event)

    def viewers_of(self, camera: str | None, default: str | None) -> int:
        """Viewers that get ``camera``'s frames now (None: viewers of the default camera, whichever it is);
        ``default`` is ``default_camera()``, asked once by the caller."""
        followers = len(self._frames_to.get(None, ())) if camera == default and camera is not None else 0
        return len(self._frames_to.get(camera, ())) + followers

    def newest(self, camera: str | None) -> Frame | None:
        """The camera's newest frame while it is online: an old picture passed off as live misleads."""
        state = self.cameras.get(camera or self.default_camera() or "")
        return state.frame if state is not None and state.online(self._clock()) else None

    def status(self, camera: str | None) -> dict[str, object]:
        """The live page's status line for one camera (the default one when None)."""
        default = self.default_camera()
        name = camera or default
        state = self.cameras.get(name or "")
        now = self._clock()
        viewers = self.viewers_of(name, default)
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
            "online": state.online(now),
        }

    def health(self) -> tuple[bool, dict[str, object]]:
        """Healthy when every camera that counts sent a frame within OFFLINE_AFTER_S (and one exists)."""
        now = self._clock()
        self._prune(now)
        cameras = {name: self._health(state, now) for name, state in self.cameras.items() if state.counts(now)}
        healthy = bool(cameras) and all(c["frame_age"] < OFFLINE_AFTER_S for c in cameras.values())
        return healthy, {"status": "ok" if healthy else "stale", "cameras": cameras}

    def camera_health(self, camera: str) -> tuple[bool, dict[str, object]] | None:
        """One camera's health, as ``health`` says it of all: healthy while it sends frames; None when the
        gateway does not know the camera (never seen since it started, or forgotten)."""
        now = self._clock()
        self._prune(now)
        state = self.cameras.get(camera)
        if state is None:
            return None
        healthy = state.online(now)
        return healthy, {"status": "ok" if healthy else "stale", "cameras": {camera: self._health(state, now)}}

    def overview(self, camera: str | None = None) -> dict[str, object]:
        """Cameras (every one, or only ``camera``) and the health of the stages, as the gateway sees them,
        for /api/status and the page's tiles."""
        now = self._clock()
        self._prune(now)
        stages = {}
        for name in STAGES:
            age = None if name not in self.stage_at else now - self.stage_at[name]
            stages[name] = {"ok": age is not None and age < STAGE_SILENT_AFTER_S,
                            "age": None if age is None else round(age, 3)}
        default = self.default_camera()
        cameras = {
            name: {
                "online": state.online(now),
                "frame_age": round(now - state.frame_at, 3),
                "fps": round(state.meter.rate(now), 2),
                "w": state.frame.width,
                "h": state.frame.height,
                "demo": state.frame.demo,
                # A flag set by a stage that has since died says nothing about now.
                "motion": state.motion and bool(stages["detector"]["ok"]),
                "recording": state.recording and bool(stages["recorder"]["ok"]),
                "viewers": self.viewers_of(name, default),
            }
            for name, state in self.cameras.items()
            if camera is None or name == camera
        }
        return {"cameras": cameras, "stages": stages, "viewers": len(self.viewers)}

    def _health(self, state: CameraState, now: float) -> dict[str, object]:
        return {
            "frame_age": round(now - state.frame_at, 3),
            "event_age": None if state.event_at is None else round(now - state.event_at, 3),
            "seq": state.frame.seq,
            "fps": round(state.meter.rate(now), 2),
            "demo": state.frame.demo,
        }

    def _route(self, viewer: Watcher, frames: frozenset[str | None], events: str | None) -> None:
        """File ``viewer`` under the cameras whose frames, and the camera whose events, it gets (replacing any
        earlier filing); a viewer that wants no events is filed under no camera's."""
        self._unroute(viewer)
        self._routes[viewer] = (frames, events)
        for name in frames:
            self._frames_to.setdefault(name, set()).add(viewer)
        if viewer.wants_events:
            self._events_to.setdefault(events, set()).add(viewer)

    def _unroute(self, viewer: Watcher) -> None:
        route = self._routes.pop(viewer, None)
        if route is None:
            return
        frames, events = route
        for name in frames:
            _discard(self._frames_to, name, viewer)
        _discard(self._events_to, events, viewer)

    def _prune(self, now: float) -> None:
        """Forget cameras that fell silent: a stray after OFFLINE_AFTER_S, a real one after FORGET_AFTER_S."""
        if now - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = now
        for name, state in list(self.cameras.items()):
            silent = now - state.frame_at
            if silent >= FORGET_AFTER_S or (silent >= OFFLINE_AFTER_S and not state.established()):
                del self.cameras[name]
                self.stage_counters.pop(("capture", name), None)


def _discard(table: dict[str | None, set[Watcher]], key: str | None, viewer: Watcher) -> None:
    """Take ``viewer`` out of ``table[key]``, and the key out of the table once nobody is left under it."""
    viewers = table.get(key)
    if viewers is not None:
        viewers.discard(viewer)
        if not viewers:
            del table[key]
