"""Capture from a video file made in the test: its own frame rate, looping, scaling, end of file."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

from pipeline import bus
from pipeline.protocol import Frame, frame_topic
from tests.conftest import Ports, Stage
from tests.test_live import decode_jpeg

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


def collect(endpoint: str, until: Callable[[list[Frame]], bool], timeout: float) -> list[Frame]:
    ctx = zmq.Context()
    sock = bus.subscriber(ctx, [endpoint], [frame_topic()], 1000)
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(frames):
            if sock.poll(100):
                frames.append(Frame.decode(sock.recv_multipart()))
    finally:
        sock.close()
        ctx.term()
    return frames


def test_file_plays_at_its_own_rate_scaled_and_capture_exits_at_the_end(
    start_stage: Callable[..., Stage], ports: Ports, video: Path
) -> None:
    capture = start_stage("capture", "--source", str(video), "--camera", "clip")
    frames = collect(ports.frames, lambda got: bool(got) and got[-1].seq == FILE_FRAMES - 1, 20)
    assert frames, capture.output()
    seqs = [f.seq for f in frames]
    assert seqs == list(range(seqs[0], FILE_FRAMES)), "frames from a file are never skipped"
    assert len(frames) >= FILE_FRAMES // 2
    rate = (len(frames) - 1) / (frames[-1].ts - frames[0].ts)
    assert FILE_FPS * 0.8 < rate < FILE_FPS * 1.2
    assert all((f.width, f.height, f.camera, f.demo) == (640, 480, "clip", False) for f in frames)
    assert decode_jpeg(frames[-1].jpeg).shape == (480, 640, 3)
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
