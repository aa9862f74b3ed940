"""Motion episodes from per-frame verdicts, free of sockets and clocks.

An episode starts at the first significant frame and ends once the last ``stable_frames`` frames
were all below the threshold; it is worth keeping with at least ``min_motion_frames`` significant
frames (``keep`` in its motion_end).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass
class _Episode:
    start_seq: int
    start_ts: float
    end_seq: int
    end_ts: float
    significant_frames: int
    peak_delta: float
    peak_seq: int


class EpisodeTracker:
    """Opens an episode at a significant frame and closes it when the stream has stabilized."""

    def __init__(self, stable_frames: int, min_motion_frames: int) -> None:
        self._min_frames = min_motion_frames
        self._recent: deque[bool] = deque(maxlen=stable_frames)
        self._episode: _Episode | None = None

    @property
    def active(self) -> bool:
        return self._episode is not None

    def update(self, seq: int, ts: float, delta: float, significant: bool) -> list[tuple[str, dict[str, Any]]]:
        """Feed one frame's verdict; returns the (type, data) of motion_start or motion_end, if any."""
        episode = self._episode
        if episode is None:
            if not significant:
                return []
            self._episode = _Episode(seq, ts, seq, ts, 1, delta, seq)
            self._recent.clear()
            self._recent.append(True)
            return [("motion_start", {"delta": delta})]
        self._recent.append(significant)
        if significant:
            episode.end_seq, episode.end_ts = seq, ts
            episode.significant_frames += 1
            if delta > episode.peak_delta:
                episode.peak_delta, episode.peak_seq = delta, seq
            return []
        if len(self._recent) == self._recent.maxlen and not any(self._recent):
            return [("motion_end", self._finish("stable"))]
        return []

    def close(self, reason: str) -> dict[str, Any] | None:
        """End an open episode early (the detector stops, the camera went silent); its motion_end data."""
        return self._finish(reason) if self._episode is not None else None

    def _finish(self, reason: str) -> dict[str, Any]:
        episode = self._episode
        assert episode is not None
        self._episode = None
        self._recent.clear()
        return {
            "start_seq": episode.start_seq,
            "start_ts": episode.start_ts,
            "end_seq": episode.end_seq,
            "end_ts": episode.end_ts,
            "significant_frames": episode.significant_frames,
            "peak_delta": episode.peak_delta,
            "peak_seq": episode.peak_seq,
            "keep": episode.significant_frames >= self._min_frames,
            "reason": reason,
        }
