"""What the gateway knows of one camera: its newest frame, rate, latency, flags and counters.

State is per camera and freed: a camera that sent a frame or two and fell silent (a stray or
made-up id on the bus) is forgotten after OFFLINE_AFTER_S and never counts for health; one that
streamed for ESTABLISHED_AFTER_S counts until it has been silent for FORGET_AFTER_S. Counters for
/metrics are plain numbers, bumped where the hub already handles the frame or event, and read at
scrape time (pipeline/web/metrics.py).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from pipeline.protocol import Frame

OFFLINE_AFTER_S = 5.0
# A camera whose frames span this long is a real one: its silence makes /healthz fail.
ESTABLISHED_AFTER_S = 3.0
# A real camera silent this long has been taken away; its state goes.
FORGET_AFTER_S = 3600.0
RATE_WINDOW_S = 2.0
# Upper bounds (seconds) of the capture-to-gateway latency histogram's buckets.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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
