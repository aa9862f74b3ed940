"""Detector stage: compares each frame with the previous one and publishes what changed.

It subscribes to frames, binds the events socket and publishes, per camera, a ``delta`` event for
every frame it compares, ``motion_start`` and ``motion_end`` around each episode (with ``keep``
false for one too short to record), and ``lightswitch`` and ``shake`` for what it ignored. The
events are described in docs/protocol.md and the rules in docs/detection.md; the per-camera work
is pipeline/motion/camera.py.
"""

from __future__ import annotations

import logging
import threading

import zmq

from pipeline.bus import curve
from pipeline.bus.sockets import EVENT_HWM, FRAME_HWM, Decoder, Heartbeats, publisher, receive, subscriber
from pipeline.config.options import Config
from pipeline.motion.camera import CameraDetector, motion_settings
from pipeline.protocol import Event, Frame, frame_topic
from pipeline.stage.cameras import Cameras
from pipeline.stage.lifecycle import POLL_MS, main

OPTIONS = ("frames", "events", "threshold", "pixel_threshold", "noise_tune", "min_area", "lightswitch_percent",
           "local_light", "shake", "stable_frames", "min_motion_frames", "mask", "log_level", "log_time", "curve_keys",
           "insecure_bus")
# A camera that sent no frame for this long has its open episode closed and its state freed.
SILENT_AFTER_S = 10.0
# Time given to the last events on stop before the socket is closed.
FINAL_LINGER_MS = 500

log = logging.getLogger("camserver.detector")


def run(cfg: Config, stop: threading.Event) -> int:
    defaults = motion_settings(cfg)  # for a camera the config file does not name: learned from the stream
    settings = {camera: motion_settings(own) for camera, own in cfg.cameras.items()}
    cameras = Cameras(lambda camera: CameraDetector(camera, settings.get(camera, defaults)), SILENT_AFTER_S, log)
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

        decoder = Decoder(log)
        analysed = [0]  # frames handed to a camera's detector; sent with the heartbeat for /metrics
        heartbeats = Heartbeats("detector", events,
                                lambda: {"frames_analysed": analysed[0], "malformed": decoder.malformed})
        while not stop.is_set():
            heartbeats.tick()
            for message in receive(frames, POLL_MS, decoder):
                if not isinstance(message, Frame):
                    continue
                detector = cameras.of(message.camera)
                if detector is None:
                    continue
                cameras.heard(message.camera)
                analysed[0] += 1
                for event in detector.process(message):
                    publish(event)
            for silent in cameras.silent():
                publish(silent.close("camera silent"))
        for detector in cameras:
            publish(detector.close("detector stopped"))
        events.setsockopt(zmq.LINGER, FINAL_LINGER_MS)
    return 0


if __name__ == "__main__":
    main("detector", OPTIONS, __doc__, run)
