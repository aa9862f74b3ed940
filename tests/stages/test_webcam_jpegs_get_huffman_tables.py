"""Camera JPEGs without Huffman tables get the standard ones, so that every browser can show them."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from pipeline.video.mjpeg import STANDARD_TABLES, with_huffman_tables
from pipeline.video.sources import has_mjpeg_mode
from tests.support.bus import collect
from tests.support.media import capture_counts, numbered_picture, video_packets, without_huffman_tables
from tests.support.ports import Ports
from tests.support.stages import Stage
from tests.support.waiting import wait_for


def jpeg_of(n: int) -> bytes:
    return cv2.imencode(".jpg", numbered_picture(n), [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()


def test_the_standard_tables_are_annex_k_two_dc_and_two_ac() -> None:
    # 4 segments of 2 + 2 + 1 + 16 bytes of header and counts, with 12 DC or 162 AC symbols each.
    assert len(STANDARD_TABLES) == 2 * (21 + 12) + 2 * (21 + 162)


def test_a_picture_without_tables_gets_back_exactly_what_libjpeg_wrote() -> None:
    jpeg = jpeg_of(3)
    stripped = without_huffman_tables(jpeg)
    assert len(stripped) == len(jpeg) - len(STANDARD_TABLES)
    assert with_huffman_tables(stripped) == jpeg


def test_a_picture_with_tables_or_not_a_jpeg_passes_untouched() -> None:
    jpeg = jpeg_of(4)
    assert with_huffman_tables(jpeg) is jpeg
    assert with_huffman_tables(b"not a jpeg") == b"not a jpeg"


def test_an_avi1_file_is_published_with_tables_and_nothing_decoded(
        start_stage: Callable[..., Stage], ports: Ports, tmp_path: Path) -> None:
    jpegs = [jpeg_of(n) for n in range(20)]
    path = tmp_path / "camera.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=20)
        stream.width, stream.height = numbered_picture(0).shape[1], numbered_picture(0).shape[0]
        stream.pix_fmt = "yuvj420p"
        for n, jpeg in enumerate(jpegs):
            packet = av.Packet(without_huffman_tables(jpeg))
            packet.stream, packet.time_base = stream, Fraction(1, 20)
            packet.pts = packet.dts = n
            packet.is_keyframe = True
            container.mux(packet)
    assert video_packets(path) == [without_huffman_tables(j) for j in jpegs], "the file holds pictures without tables"
    capture = start_stage("capture", "--source", str(path))
    frames = collect(ports.frames, lambda got: bool(got) and got[-1].seq == len(jpegs) - 1, 20)
    assert capture.stop() == 0
    assert frames and all(f.jpeg == jpegs[f.seq] for f in frames), "the camera's pictures, made whole"
    assert all(cv2.imdecode(np.frombuffer(f.jpeg, np.uint8), cv2.IMREAD_COLOR) is not None for f in frames)
    assert capture_counts(capture)[2] == 0


def test_probing_for_a_webcam_mjpg_mode_where_there_is_no_webcam_says_no(tmp_path: Path) -> None:
    not_a_camera = tmp_path / "video0"
    not_a_camera.write_bytes(b"\0" * 1024)
    assert not has_mjpeg_mode(str(tmp_path / "video9"), 640, 480, 10)
    assert not has_mjpeg_mode(str(not_a_camera), 640, 480, 10)


def test_a_webcam_named_by_its_device_path_is_opened_and_retried_while_it_gives_nothing(
        start_stage: Callable[..., Stage], ports: Ports) -> None:
    """/dev/null stands in for /dev/v4l/by-id/...: a device that opens but is no camera, so capture keeps trying."""
    capture = start_stage("capture", "--source", "/dev/null")
    wait_for(lambda: "webcam /dev/null gives no frames; trying again" in capture.output(), 15, "a retry")
    assert capture.proc.poll() is None
    assert capture.stop() == 0
