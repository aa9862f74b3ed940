"""Capture from a video file made in the test: its own frame rate, looping, scaling, end of file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.bus import collect
from tests.support.media import decode_jpeg
from tests.support.ports import Ports, free_port
from tests.support.stages import Stage
from tests.support.waiting import wait_for
from tests.support.web import gateway_up

FILE_FPS = 25
FILE_FRAMES = 40


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FILE_FPS, (320, 240))
    assert writer.isOpened()
    for i in range(FILE_FRAMES):
        image = np.full((240, 320, 3), 40, np.uint8)
        cv2.circle(image, (8 * i % 320, 120), 20, (0, 200, 255), -1)
        writer.write(image)
    writer.release()
    return path


def test_file_plays_at_its_own_rate_scaled_and_capture_exits_at_the_end(
    start_stage: Callable[..., Stage], ports: Ports, video: Path
) -> None:
    capture = start_stage("capture", "--source", str(video), "--camera", "clip", "--width", "160", "--height", "120")
    frames = collect(ports.frames, lambda got: bool(got) and got[-1].seq == FILE_FRAMES - 1, 20)
    assert frames, capture.output()
    seqs = [f.seq for f in frames]
    assert seqs == list(range(seqs[0], FILE_FRAMES)), "frames from a file are never skipped"
    assert len(frames) >= FILE_FRAMES // 2
    rate = (len(frames) - 1) / (frames[-1].ts - frames[0].ts)
    assert FILE_FPS * 0.8 < rate < FILE_FPS * 1.2
    assert all((f.width, f.height, f.camera, f.demo) == (160, 120, "clip", False) for f in frames)
    assert decode_jpeg(frames[-1].jpeg).shape == (120, 160, 3)
    assert capture.proc.wait(10) == 0
    assert "end of video file" in capture.output()


def test_looping_file_keeps_going_at_the_requested_rate(
    start_stage: Callable[..., Stage], ports: Ports, video: Path
) -> None:
    capture = start_stage("capture", "--source", str(video), "--loop", "--fps", "40", "--width", "320",
                          "--height", "240")
    frames = collect(ports.frames, lambda got: bool(got) and got[-1].seq >= FILE_FRAMES + 20, 20)
    assert frames and frames[-1].seq >= FILE_FRAMES + 20, capture.output()
    assert capture.proc.poll() is None
    assert (frames[-1].width, frames[-1].height) == (320, 240)
    assert capture.stop() == 0


def test_unreadable_file_fails_with_a_clear_message(start_stage: Callable[..., Stage], tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video")
    capture = start_stage("capture", "--source", str(junk))
    assert capture.proc.wait(15) == 1
    assert "cannot open video file" in capture.output()


def test_capture_relays_another_camservers_mjpeg_stream_and_reconnects(
    start_stage: Callable[..., Stage], ports: Ports
) -> None:
    start_stage("capture", "--source", "demo")
    upstream = start_stage("gateway")
    wait_for(gateway_up(ports.http), 15, "the upstream gateway")
    relay_frames = f"tcp://127.0.0.1:{free_port()}"
    url = f"http://127.0.0.1:{ports.http}/stream.mjpg"
    relay = start_stage("capture", "--source", url, "--camera", "relay", "--fps", "5", CAMSERVER_FRAMES=relay_frames)
    frames = collect(relay_frames, lambda got: len(got) >= 5, 20)
    assert len(frames) >= 5, relay.output()
    assert all(f.camera == "relay" and (f.width, f.height) == (640, 480) for f in frames)
    assert decode_jpeg(frames[-1].jpeg).shape == (480, 640, 3)

    assert upstream.stop() == 0
    wait_for(lambda: "gives no frames" in relay.output(), 15, "the relay to notice the stream is gone")
    start_stage("gateway")
    frames = collect(relay_frames, lambda got: len(got) >= 5, 30)
    assert len(frames) >= 5, relay.output()
    assert relay.stop() == 0
