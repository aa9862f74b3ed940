"""The gateway's memory: the newest frame of each camera, and which viewers get what.

The hub hands each frame to every viewer of its camera by a plain call (``offer_frame``); the live
routes' viewers write it to their socket there and then when the socket is free, and keep only
the newest frame while it is not (pipeline/web/viewers.py), so a frame costs no task switch per
viewer and a slow client never delays anybody else. Nothing here touches sockets or clocks of its
own, so it is tested frame by frame.

A viewer watches one camera (or whichever is the default), or, added with ``watch``, exactly the
cameras it names: a page of tiles asks for the frames of the tiles on screen only and changes that
set as they scroll in and out (``Hub.watch``), so a paused tile costs nothing here. Such a viewer
gets the events of every camera (of its own only, when it has one). Viewers are kept per camera
they watch, so a frame is handed to its camera's viewers without looking at anybody else's.

Each camera's state (pipeline/web/camera_state.py) is freed when the camera falls silent. Stages
are judged by their own heartbeats, and a camera's ``motion`` and ``recording`` flags are believed
only while the stage that set them is heard from; each stage's own counters from its heartbeat are
kept for /metrics, a camera's going with its state when it is forgotten.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from pipeline.protocol import HEARTBEAT_EVERY_S, Event, Frame, Heartbeat
from pipeline.web.camera_state import FORGET_AFTER_S, OFFLINE_AFTER_S, CameraState

# Three missed heartbeats and a stage counts as down.
STAGE_SILENT_AFTER_S = 3 * HEARTBEAT_EVERY_S
STAGES = ("capture", "detector", "recorder")
# Cameras the gateway keeps state for at most: made-up ids beyond it are refused, not stored.
MAX_CAMERAS = 64
PRUNE_EVERY_S = 1.0
# The key under which viewers of every camera's events are kept; no camera id can be "*".
ALL_CAMERAS = "*"


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
