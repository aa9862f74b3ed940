"""Encoder stage: each camera's JPEG frames to its live H.264 track, only while someone watches it.

It subscribes to frames and publishes ``video.CAMERA`` messages (docs/protocol.md) on the video
socket, an XPUB that hands it every subscription: a camera is encoded while some subscriber holds
a topic its track matches (``video.`` holds them all), from a key frame at its next frame; a
subscription repeated (a new viewer) asks for a key frame, rate-limited per camera (video/demand.py);
KEEP_S after the last subscriber of a camera left, or died (ZeroMQ unsubscribes it), the camera's
x264 encoder is freed. x264 costs a few milliseconds a frame, so nobody watching costs nothing
but receiving the JPEGs. The per-camera work is pipeline/video/h264.py.
"""

from __future__ import annotations

import logging
import threading

import zmq

from pipeline.bus import curve
from pipeline.bus.sockets import FRAME_HWM, VIDEO_HWM, Decoder, Heartbeats, receive, subscriber, xpublisher
from pipeline.config.options import Config
from pipeline.protocol import Frame, frame_topic
from pipeline.stage.cameras import Cameras
from pipeline.stage.lifecycle import POLL_MS, main
from pipeline.video.demand import KEEP_S, Demand
from pipeline.video.h264 import CameraEncoder

OPTIONS = ("frames", "video", "log_level", "log_time", "curve_keys", "insecure_bus")
# A camera that sent no frame for this long is forgotten.
SILENT_AFTER_S = 10.0

log = logging.getLogger("camserver.encoder")


def run(cfg: Config, stop: threading.Event) -> int:
    cameras = Cameras(CameraEncoder, SILENT_AFTER_S, log)
    demand = Demand()
    keys = curve.bus_curve(cfg.curve_keys, cfg.insecure_bus, binds=cfg.video, connects=cfg.frames)
    with (
        zmq.Context() as ctx,
        curve.authenticated(ctx, keys),
        xpublisher(ctx, cfg.video, VIDEO_HWM, keys) as video,
        subscriber(ctx, cfg.frames, [frame_topic()], FRAME_HWM, keys) as frames,
    ):
        log.info("encoding frames from %s to H.264 on demand, publishing on %s", ",".join(cfg.frames),
                 ",".join(cfg.video))
        decoder = Decoder(log)
        counters = {"frames_encoded": 0, "keyframes_forced": 0}
        heartbeats = Heartbeats("encoder", video, lambda: {
            **counters, "cameras_encoding": sum(encoder.active for encoder in cameras), "malformed": decoder.malformed})
        poller = zmq.Poller()
        poller.register(video, zmq.POLLIN)
        poller.register(frames, zmq.POLLIN)
        while not stop.is_set():
            heartbeats.tick()
            ready = dict(poller.poll(POLL_MS))
            for subscription in _queued(video) if video in ready else ():
                demand.note(subscription)
            newest: dict[str, Frame] = {}  # a backlog is skipped: a viewer wants the newest picture
            for message in receive(frames, 0, decoder) if frames in ready else ():
                if isinstance(message, Frame):
                    newest[message.camera] = message
            for frame in newest.values():
                encoder = cameras.of(frame.camera)
                if encoder is None:
                    continue
                cameras.heard(frame.camera)
                if not demand.wants(frame.camera):
                    continue
                if demand.key_due(frame.camera) and encoder.active:
                    encoder.request_key()
                    counters["keyframes_forced"] += 1
                messages = encoder.encode(frame)
                for message in messages:
                    video.send_multipart(message.encode())
                counters["frames_encoded"] += bool(messages)
            idle = set(demand.idle(encoder.camera for encoder in cameras if encoder.active))
            for encoder in cameras:
                if encoder.camera in idle:
                    log.info("%s: nobody has watched its track for %g s, freeing its encoder", encoder.camera, KEEP_S)
                    encoder.release()
            for silent in cameras.silent():
                silent.release()
                demand.forget(silent.camera)
    return 0


def _queued(sock: zmq.Socket) -> list[bytes]:
    """Every message waiting on ``sock``, without blocking."""
    messages = []
    while True:
        try:
            messages.append(sock.recv(zmq.NOBLOCK))
        except zmq.Again:
            return messages


if __name__ == "__main__":
    main("encoder", OPTIONS, __doc__, run)
