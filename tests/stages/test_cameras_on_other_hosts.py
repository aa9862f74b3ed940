"""Cameras on other hosts, on loopback: two capture-only "Pis" and a hub, each from its own config, over CURVE.

Each "Pi" is a config with ``stages = ["capture"]`` whose camera binds every interface
(tcp://0.0.0.0, as on a real Pi); the hub's config names no camera, only the Pis' endpoints
(``remote_frames``), and learns the cameras from their frames. Every process uses the one key
pair made by ``python -m pipeline.keys``. A user sees both cameras live and recorded on the hub,
while a subscriber with other keys or none gets nothing, a stranger's frames never reach the hub,
and a Pi without keys refuses to put its camera on the network.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import zmq

from pipeline.bus import curve
from pipeline.bus.keyfiles import Curve, load_curve
from pipeline.bus.sockets import FRAME_HWM, Decoder, publisher, receive, subscriber
from pipeline.protocol import Frame, frame_topic
from tests.support.ports import free_port
from tests.support.stages import REPO, RunConfig, clean_env
from tests.support.waiting import wait_for
from tests.support.web import assert_one_recording_each, http_get, snapshot_shape

log = logging.getLogger(__name__)


def make_keys(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pipeline.keys", str(folder)], cwd=REPO, env=clean_env(), check=True,
                   capture_output=True, timeout=30)
    return folder


def pi_config(camera: str, port: int, keys: Path | None) -> str:
    curve = f'curve_keys = "{keys}"\n' if keys is not None else ""
    return (f'stages = ["capture"]\n{curve}\n[cameras.{camera}]\nsource = "demo"\nwidth = 320\nheight = 240\n'
            f'frames = "tcp://0.0.0.0:{port}"\n')


def frames_received(endpoint: str, keys: Curve | None, seconds: float) -> int:
    """How many frames a subscriber with ``keys`` (None: a plain one) gets from ``endpoint`` in ``seconds``."""
    with zmq.Context() as ctx, subscriber(ctx, [endpoint], [frame_topic()], FRAME_HWM, keys) as sock:
        decoder, count, deadline = Decoder(log), 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            count += sum(isinstance(m, Frame) for m in receive(sock, 100, decoder))
        return count


def test_two_pis_and_a_hub_over_curve(tmp_path: Path, run_config: RunConfig) -> None:
    keys, strangers = make_keys(tmp_path / "keys"), make_keys(tmp_path / "other-keys")
    garden, porch, rogue = free_port(), free_port(), free_port()
    http, recordings = free_port(), tmp_path / "recordings"
    run_config(pi_config("garden", garden, keys), "garden-pi")
    run_config(pi_config("porch", porch, keys), "porch-pi")
    hub = run_config(
        f'curve_keys = "{keys}"\nstages = ["detector", "recorder", "gateway", "logger"]\n'
        f'remote_frames = ["tcp://127.0.0.1:{garden}", "tcp://127.0.0.1:{porch}", "tcp://127.0.0.1:{rogue}"]\n'
        f'events = "tcp://127.0.0.1:{free_port()}"\nrecorder_events = "tcp://127.0.0.1:{free_port()}"\n'
        f'port = {http}\nrecordings = "{recordings}"\npre_seconds = 0\npost_seconds = 0\nstable_frames = 10\n'
        '[cameras.porch]\nremote = true\nmin_motion_frames = 3\n', "hub")
    assert [s.name for s in hub] == ["detector", "recorder", "gateway", "logger"]

    # a stranger binds one of the hub's endpoints and publishes frames of its own, with other keys
    with zmq.Context() as ctx, curve.authenticated(ctx, load_curve(strangers)), \
            publisher(ctx, [f"tcp://127.0.0.1:{rogue}"], FRAME_HWM, load_curve(strangers)) as pub:
        for camera in ("garden", "porch"):
            wait_for(lambda c=camera: snapshot_shape(http, c) == (240, 320, 3), 30, f"{camera}'s frames on the hub")
        _, _, jpeg = http_get(http, "/snapshot.jpg?camera=garden")
        for seq in range(30):
            pub.send_multipart(Frame("rogue", seq, time.time(), 320, 240, False, jpeg).encode())
            time.sleep(0.02)
        assert http_get(http, "/snapshot.jpg?camera=rogue")[0] == 404
    assert_one_recording_each(http, ["garden", "porch"], recordings, 30)

    # off the hub, without this bus's keys, the Pis' frames cannot be had
    endpoint = f"tcp://127.0.0.1:{garden}"
    assert frames_received(endpoint, load_curve(keys), 1.0) > 3
    assert frames_received(endpoint, load_curve(strangers), 1.5) == 0
    assert frames_received(endpoint, None, 1.5) == 0


def test_a_pi_without_keys_refuses_to_publish_beyond_loopback(tmp_path: Path, run_config: RunConfig) -> None:
    (capture,) = run_config(pi_config("garden", free_port(), None), "garden-pi")
    assert capture.proc.wait(30) == 1
    assert "tcp://0.0.0.0" in capture.output() and "pipeline.keys" in capture.output(), capture.output()
    (allowed,) = run_config("insecure_bus = true\n" + pi_config("garden", free_port(), None), "insecure-pi")
    time.sleep(2)
    assert allowed.proc.poll() is None, allowed.output()
