"""Recorder stage: one browser-playable MP4 per kept motion episode, with pre-roll and thumbnail.

It subscribes to frames and to the detector's events, keeps each camera's recording state
(pipeline/record/episode.py), and publishes ``recording_started``, ``recording_saved`` and
``recording_discarded`` on its own events socket. At start it recovers recordings a crash left
unfinished; it deletes old recordings by --max-disk and --max-age. Files and sidecars:
docs/recordings.md.
"""

from __future__ import annotations

import logging
import threading
import time

import zmq

from pipeline.bus import curve
from pipeline.bus.sockets import EVENT_HWM, Decoder, Heartbeats, publisher, receive, subscriber
from pipeline.config.options import Config
from pipeline.protocol import Event, Frame, event_topic, frame_topic
from pipeline.record.episode import CameraRecorder, saved_data
from pipeline.record.library import Library
from pipeline.stage.cameras import Cameras
from pipeline.stage.lifecycle import POLL_MS, main

OPTIONS = ("frames", "events", "recorder_events", "recordings", "pre_seconds", "post_seconds",
           "max_recording_seconds", "max_disk", "max_age", "log_level", "log_time", "curve_keys", "insecure_bus")
# Enough queued frames to ride out a slow moment of the encoder, a few seconds at 30 fps.
RECORDER_FRAME_HWM = 100
RETENTION_EVERY_S = 60.0
# How often the recorder says, per camera, that it is alive and whether it is recording.
STATUS_EVERY_S = 5.0
# A camera without frames for this long has its recording finished and its state (the pre-roll) freed.
FORGET_AFTER_S = 30.0

log = logging.getLogger("camserver.recorder")


def run(cfg: Config, stop: threading.Event) -> int:
    library = Library(cfg.recordings)

    def recorder_of(camera: str) -> CameraRecorder:
        own = cfg.cameras.get(camera, cfg)  # its table in the config file, if it has one
        return CameraRecorder(camera, library, own.pre_seconds, own.post_seconds, own.max_recording_seconds)

    cameras = Cameras(recorder_of, FORGET_AFTER_S, log)
    endpoints = (*cfg.frames, *cfg.events)
    keys = curve.bus_curve(cfg.curve_keys, cfg.insecure_bus, binds=cfg.recorder_events, connects=endpoints)
    with (
        zmq.Context() as ctx,
        curve.authenticated(ctx, keys),
        publisher(ctx, cfg.recorder_events, EVENT_HWM, keys) as events,
        subscriber(ctx, endpoints, [frame_topic(), event_topic()], RECORDER_FRAME_HWM, keys) as sock,
    ):
        for sidecar in library.recover():
            events.send_multipart(Event(sidecar["camera"], 0, time.time(), "recording_saved",
                                        saved_data(sidecar)).encode())
        log.info("recording to %s from frames %s and events %s (pre %g s, post %g s)", cfg.recordings,
                 ",".join(cfg.frames), ",".join(cfg.events), cfg.pre_seconds, cfg.post_seconds)
        next_retention = next_status = 0.0
        decoder = Decoder(log)
        received = [0]  # frames taken off the bus; sent with the heartbeat for /metrics
        heartbeats = Heartbeats("recorder", events,
                                lambda: {"frames_received": received[0], "malformed": decoder.malformed})
        while not stop.is_set():
            heartbeats.tick()
            published: list[Event] = []
            wait_ms = 0 if any(recorder.behind for recorder in cameras) else POLL_MS
            for message in receive(sock, wait_ms, decoder):
                recorder = cameras.of(message.camera)
                if recorder is None:
                    continue
                if isinstance(message, Frame):
                    received[0] += 1
                    cameras.heard(message.camera)
                    published += recorder.on_frame(message)
                else:
                    published += recorder.on_event(message)
            for recorder in cameras:
                published += recorder.catch_up()
                published += recorder.tick()
            for silent in cameras.silent():
                published += silent.stop()
            if time.monotonic() >= next_status:
                published += [e for e in (r.status() for r in cameras) if e is not None]
                next_status = time.monotonic() + STATUS_EVERY_S
            for event in published:
                events.send_multipart(event.encode())
            saved = any(event.type == "recording_saved" for event in published)
            if (saved or time.monotonic() >= next_retention) and (cfg.max_disk or cfg.max_age):
                library.enforce(cfg.max_disk, cfg.max_age)
                next_retention = time.monotonic() + RETENTION_EVERY_S
        for recorder in cameras:
            for event in recorder.stop():
                events.send_multipart(event.encode())
        events.setsockopt(zmq.LINGER, 500)
    return 0


if __name__ == "__main__":
    main("recorder", OPTIONS, __doc__, run)
