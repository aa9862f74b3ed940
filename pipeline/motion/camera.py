"""One camera's detection: its frame differ and episode tracker, and the events each frame gives rise to.

The detector process keeps one CameraDetector per camera that sends frames and publishes what it
returns; the algorithm itself is pipeline.motion.differ (frame differences) and
pipeline.motion.episodes (when an episode starts, ends and is worth keeping).
"""

from __future__ import annotations

import logging

import cv2

from pipeline.config.options import Config
from pipeline.motion.differ import FrameDiffer, MotionSettings
from pipeline.motion.episodes import EpisodeTracker
from pipeline.protocol import Event, Frame

log = logging.getLogger("camserver.detector")


def motion_settings(cfg: Config) -> MotionSettings:
    """The detector's settings from its configuration; OSError for a mask image that does not load."""
    mask_image = None
    if cfg.mask.image is not None:
        mask_image = cv2.imread(cfg.mask.image, cv2.IMREAD_GRAYSCALE)
        if mask_image is None:
            raise OSError(f"cannot read mask image {cfg.mask.image}")
    return MotionSettings(
        threshold=cfg.threshold,
        pixel_threshold=cfg.pixel_threshold,
        min_area=cfg.min_area,
        lightswitch_percent=cfg.lightswitch_percent,
        stable_frames=cfg.stable_frames,
        min_motion_frames=cfg.min_motion_frames,
        noise_tune=cfg.noise_tune,
        local_light=cfg.local_light,
        shake=cfg.shake,
        mask_rects=cfg.mask.rects,
        mask_image=mask_image,
    )


class CameraDetector:
    """One camera's detection state: the differ, the episode tracker and the last frame seen."""

    def __init__(self, camera: str, settings: MotionSettings) -> None:
        self.camera = camera
        self._differ = FrameDiffer(settings)
        self._tracker = EpisodeTracker(settings.stable_frames, settings.min_motion_frames)
        self._last: Frame | None = None

    def process(self, frame: Frame) -> list[Event]:
        """The events one frame gives rise to, in the order they should be published."""
        last, self._last = self._last, frame
        skipped = frame.seq - last.seq - 1 if last is not None and frame.seq > last.seq else 0
        if last is not None and frame.seq <= last.seq:
            log.info("%s: capture restarted (seq %d after %d)", frame.camera, frame.seq, last.seq)
            self._differ.reset()
        try:
            measurement = self._differ.measure(frame.jpeg, frame.width, frame.height)
        except ValueError as exc:
            log.warning("%s: skipping frame %d: %s", frame.camera, frame.seq, exc)
            self._last = last
            return []
        if measurement is None:
            return []
        transitions = self._tracker.update(frame.seq, frame.ts, measurement.delta, measurement.significant)
        # motion_start goes before the delta that says motion is on, so nobody sees the episode before
        # it starts; motion_end after the delta that says it is off.
        events = [self._event(frame, kind, data) for kind, data in transitions if kind == "motion_start"]
        events.append(self._event(frame, "delta", {
            "delta": measurement.delta,
            "significant": measurement.significant,
            "boxes": [list(box) for box in measurement.boxes],
            "skipped": skipped,
            "motion": self._tracker.active,
            "pixel_threshold": measurement.pixel_threshold,
            "ignored": measurement.ignored,
        }))
        if measurement.ignored == "lightswitch":
            events.append(self._event(frame, "lightswitch", {"rule": "global", "changed": measurement.changed,
                                                             "area": measurement.changed}))
        elif measurement.lit > 0:  # reported even when motion elsewhere still counts
            events.append(self._event(frame, "lightswitch", {"rule": "local", "changed": measurement.changed,
                                                             "area": measurement.lit}))
        elif measurement.ignored == "shake" and measurement.shift is not None:
            events.append(self._event(frame, "shake", {"dx": measurement.shift[0], "dy": measurement.shift[1]}))
        events.extend(self._event(frame, kind, data) for kind, data in transitions if kind == "motion_end")
        return events

    def close(self, reason: str) -> Event | None:
        """motion_end for an episode still open when frames stop coming, or None."""
        data = self._tracker.close(reason)
        if data is None or self._last is None:
            return None
        return self._event(self._last, "motion_end", data)

    def _event(self, frame: Frame, kind: str, data: dict[str, object]) -> Event:
        return Event(frame.camera, frame.seq, frame.ts, kind, data)
