"""JPEG pass-through: a source whose pictures are JPEGs is published byte for byte, nothing decoded.

An MJPEG AVI made in the test and an HTTP MJPEG server in the test are the sources; the frames
are read off the bus by a subscriber, and capture's own count says how many it encoded (none).
"""

from __future__ import annotations

import http.server
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import pytest

from tests.support.bus import collect
from tests.support.media import NUMBERED_SIZE, capture_counts, decode_jpeg, numbered_picture, video_packets
from tests.support.ports import Ports, free_port
from tests.support.stages import REPO, Stage, clean_env

W, H = NUMBERED_SIZE


@pytest.fixture
def mjpeg_avi(tmp_path: Path) -> Path:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20, (W, H))
    for n in range(30):
        writer.write(numbered_picture(n))
    writer.release()
    return path


def test_an_mjpeg_file_is_published_as_its_own_jpegs(
        start_stage: Callable[..., Stage], ports: Ports, mjpeg_avi: Path) -> None:
    source = video_packets(mjpeg_avi)
    capture = start_stage("capture", "--source", str(mjpeg_avi))
    frames = collect(ports.frames, lambda got: bool(got) and got[-1].seq == len(source) - 1, 20)
    assert capture.stop() == 0
    assert frames, capture.output()
    assert all((f.width, f.height) == (W, H) for f in frames), "the source's own size by default"
    assert [f.jpeg for f in frames] == source[frames[0].seq:], "byte for byte, in order"
    total, passed, encoded = capture_counts(capture)
    assert encoded == 0 and passed == total == len(source)


def test_a_size_asked_for_is_encoded_from_the_jpegs(
        start_stage: Callable[..., Stage], ports: Ports, mjpeg_avi: Path) -> None:
    capture = start_stage("capture", "--source", str(mjpeg_avi), "--width", "384", "--height", "288")
    frames = collect(ports.frames, lambda got: bool(got) and got[-1].seq == 29, 20)
    assert capture.stop() == 0
    assert frames and all((f.width, f.height) == (384, 288) for f in frames)
    assert decode_jpeg(frames[-1].jpeg).shape == (288, 384, 3)
    assert capture_counts(capture)[1:] == (0, 30)


class MjpegServer(http.server.ThreadingHTTPServer):
    """An endless multipart MJPEG stream of a fixed set of JPEGs, like an IP camera or mjpg-streamer."""

    daemon_threads = True

    def __init__(self, jpegs: list[bytes]) -> None:
        self.jpegs = jpegs
        super().__init__(("127.0.0.1", free_port()), MjpegHandler)


class MjpegHandler(http.server.BaseHTTPRequestHandler):
    server: MjpegServer

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            for jpeg in itertools.cycle(self.server.jpegs):
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg))
                self.wfile.write(jpeg + b"\r\n")
                time.sleep(0.05)
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        """Quiet: the test reads capture's log."""


@pytest.fixture
def mjpeg_server() -> Iterator[MjpegServer]:
    server = MjpegServer([cv2.imencode(".jpg", numbered_picture(n))[1].tobytes() for n in range(8)])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_an_http_mjpeg_stream_is_published_as_its_own_jpegs(
        start_stage: Callable[..., Stage], ports: Ports, mjpeg_server: MjpegServer) -> None:
    capture = start_stage("capture", "--source", f"http://127.0.0.1:{mjpeg_server.server_port}/video.mjpg")
    frames = collect(ports.frames, lambda got: len(got) >= 20, 20)
    assert capture.stop() == 0
    assert len(frames) >= 20, capture.output()
    assert all((f.width, f.height) == (W, H) for f in frames)
    assert all(f.jpeg in mjpeg_server.jpegs for f in frames), "each frame is one of the stream's JPEGs, unchanged"
    assert len({f.jpeg for f in frames}) >= 3, "it follows the stream"
    total, passed, encoded = capture_counts(capture)
    assert encoded == 0 and passed == total >= 20


def test_half_a_size_is_refused_at_start() -> None:
    done = subprocess.run([sys.executable, "-m", "pipeline.capture", "--width", "320"], cwd=REPO,
                          env=clean_env(), capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "give both --width and --height" in done.stderr


def test_a_damaged_mjpeg_file_publishes_what_is_intact_and_ends_cleanly(
        start_stage: Callable[..., Stage], ports: Ports, mjpeg_avi: Path, tmp_path: Path) -> None:
    data = mjpeg_avi.read_bytes()
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(data[:len(data) // 2] + bytes(20_000) + data[len(data) // 2 + 20_000:])
    intact = set(video_packets(mjpeg_avi))
    capture = start_stage("capture", "--source", str(damaged), "--fps", "50")
    frames = collect(ports.frames, lambda got: False, 3)
    assert capture.proc.wait(10) == 0, capture.output()
    assert len(frames) >= 10
    # Pictures whose scan data was zeroed are passed on as they are (a viewer sees a grey band), the rest intact.
    assert sum(f.jpeg not in intact for f in frames) <= 2
    assert "Traceback" not in capture.output()


def test_a_wide_picture_asked_into_a_4_3_box_keeps_its_shape(
        start_stage: Callable[..., Stage], ports: Ports, tmp_path: Path) -> None:
    path = tmp_path / "wide.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20, (1280, 720))
    for n in range(10):
        writer.write(cv2.resize(numbered_picture(n), (1280, 720)))
    writer.release()
    capture = start_stage("capture", "--source", str(path), "--width", "640", "--height", "480")
    frames = collect(ports.frames, lambda got: bool(got) and got[-1].seq == 9, 20)
    assert capture.stop() == 0
    assert frames and all((f.width, f.height) == (640, 360) for f in frames), "16:9 stays 16:9, not squashed to 4:3"
    assert decode_jpeg(frames[-1].jpeg).shape == (360, 640, 3)
    assert "source gives 1280x720; publishing 640x360" in capture.output()
