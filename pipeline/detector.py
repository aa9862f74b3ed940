"""Detector stage: compares each frame with the previous one and publishes what changed.

It subscribes to frames, binds the events socket and publishes, per camera: a ``delta`` event for
every frame it compares, ``motion_start`` at the first significant frame of an episode,
``motion_end`` once the stream has stabilized (with ``keep`` false for an episode too short to be
worth recording), ``lightswitch`` when most of the picture (rule ``global``) or a region of it
(rule ``local``) changes brightness at once, and ``shake`` when the whole picture moved a little.
Each ``delta`` says which rule, if any, kept a changed frame from counting (``ignored``) and the
per-pixel threshold in use. The algorithm
lives in pipeline.motion; this module feeds it and publishes its verdicts.
"""

from __future__ import annotations

import logging
import threading
import time

import cv2
import zmq

from pipeline.bus import curve
from pipeline.bus.sockets import EVENT_HWM, FRAME_HWM, Decoder, Heartbeats, publisher, receive, subscriber
from pipeline.config.options import MAX_CAMERAS, Config
from pipeline.motion.differ import EpisodeTracker, FrameDiffer, MotionSettings
from pipeline.protocol import Event, Frame, frame_topic
from pipeline.stage.lifecycle import POLL_MS, main
from pipeline.stage.ratelog import RateLimitedLog

OPTIONS = ("frames", "events", "threshold", "pixel_threshold", "noise_tune", "min_area", "lightswitch_percent",
           "local_light", "shake", "stable_frames", "min_motion_frames", "mask", "log_level", "log_time", "curve_keys",
           "insecure_bus")
# A camera that sent no frame for this long has its open episode closed and its state freed.
SILENT_AFTER_S = 10.0
# Time given to the last events on stop before the socket is closed.
FINAL_LINGER_MS = 500

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


def run(cfg: Config, stop: threading.Event) -> int:
    defaults = motion_settings(cfg)  # for a camera the config file does not name: learned from the stream
    settings = {camera: motion_settings(own) for camera, own in cfg.cameras.items()}
    cameras: dict[str, CameraDetector] = {}
    heard: dict[str, float] = {}
    keys = curve.bus_curve(cfg.curve_keys, cfg.insecure_bus, binds=cfg.events, connects=cfg.frames)
    with (
        zmq.Context() as ctx,
        curve.authenticated(ctx, keys),
        publisher(ctx, cfg.events, EVENT_HWM, keys) as events,
        subscriber(ctx, cfg.frames, [frame_topic()], FRAME_HWM, keys) as frames,
    ):
        log.info("detecting motion in frames from %s, publishing events on %s (threshold %g%%)",
                 ",".join(cfg.frames), ",".join(cfg.events), cfg.threshold)

        def publish(event: Event | None) -> None:
            if event is not None:
                events.send_multipart(event.encode())
                if event.type != "delta":  # at DEBUG: the logger stage prints every event once
                    log.debug("%s %s at frame %d", event.camera, event.type, event.seq)

        decoder, notes = Decoder(log), RateLimitedLog(log)
        analysed = [0]  # frames handed to a camera's detector; sent with the heartbeat for /metrics
        heartbeats = Heartbeats("detector", events,
                                lambda: {"frames_analysed": analysed[0], "malformed": decoder.malformed})
        while not stop.is_set():
            heartbeats.tick()
            for message in receive(frames, POLL_MS, decoder):
                if not isinstance(message, Frame):
                    continue
                detector = cameras.get(message.camera)
                if detector is None:
                    if len(cameras) >= MAX_CAMERAS:
                        notes.warning("cameras", "ignoring frames of camera %s: already detecting in %d cameras",
                                      message.camera, len(cameras))
                        continue
                    detector = cameras[message.camera] = CameraDetector(
                        message.camera, settings.get(message.camera, defaults))
                heard[message.camera] = time.monotonic()
                analysed[0] += 1
                for event in detector.process(message):
                    publish(event)
            for camera in [c for c, at in heard.items() if time.monotonic() - at > SILENT_AFTER_S]:
                publish(cameras.pop(camera).close("camera silent"))
                del heard[camera]
        for detector in cameras.values():
            publish(detector.close("detector stopped"))
        events.setsockopt(zmq.LINGER, FINAL_LINGER_MS)
    return 0


if __name__ == "__main__":
    main("detector", OPTIONS, __doc__, run)
