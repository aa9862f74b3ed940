"""A shared stage's state per camera: made at the camera's first message, capped, and freed when it falls silent.

The detector and the recorder serve every camera on the bus and learn which exist from the stream
itself, so a peer making up camera ids could otherwise grow their memory without bound, and a
camera taken away would keep its pre-roll or its open episode for good. Here each camera's state
is made on demand, at most MAX_CAMERAS of them (one more costs a rate-limited warning and its
messages), and handed back once the camera has sent nothing for ``forget_after_s``, for the stage
to close it properly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from pipeline.config.options import MAX_CAMERAS
from pipeline.stage.ratelog import RateLimitedLog

State = TypeVar("State")


class Cameras(Generic[State]):
    """Each camera's state, made by ``make(camera)`` at its first message and forgotten after its silence."""

    def __init__(self, make: Callable[[str], State], forget_after_s: float, log: logging.Logger,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._make, self._forget_after, self._clock = make, forget_after_s, clock
        self._states: dict[str, State] = {}
        self._heard: dict[str, float] = {}
        self._notes = RateLimitedLog(log)

    def of(self, camera: str) -> State | None:
        """The camera's state, made now if it is new; None for a new camera beyond MAX_CAMERAS (warned of)."""
        state = self._states.get(camera)
        if state is None:
            if len(self._states) >= MAX_CAMERAS:
                self._notes.warning("cameras", "ignoring camera %s: already %d cameras", camera, len(self._states))
                return None
            state = self._states[camera] = self._make(camera)
            self._heard[camera] = self._clock()
        return state

    def heard(self, camera: str) -> None:
        """The camera is alive: it sent what keeps its state (its frames)."""
        if camera in self._states:
            self._heard[camera] = self._clock()

    def silent(self) -> list[State]:
        """The states of the cameras silent for longer than ``forget_after_s``, now forgotten: close each."""
        now = self._clock()
        gone = [camera for camera, at in self._heard.items() if now - at > self._forget_after]
        for camera in gone:
            del self._heard[camera]
        return [self._states.pop(camera) for camera in gone]

    def __iter__(self) -> Iterator[State]:
        return iter(self._states.values())
