"""Pictures, JPEGs and video files made or read by the tests, as cameras and players make and read them."""

from __future__ import annotations

import re
from pathlib import Path

import av
import cv2
import numpy as np

from tests.support.stages import Stage

NUMBERED_SIZE = (768, 576)  # width, height of numbered_picture's pictures
_COUNTS = re.compile(r"published (\d+) frames: (\d+) passed through as the source's JPEGs, (\d+) encoded")


def decode_jpeg(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a decodable JPEG"
    return image


def numbered_picture(n: int) -> np.ndarray:
    """A picture showing ``n`` large on a grey that changes with ``n``: each frame of a test video its own."""
    width, height = NUMBERED_SIZE
    image = np.full((height, width, 3), 30 + 7 * n % 200, np.uint8)
    cv2.putText(image, str(n), (200, 400), cv2.FONT_HERSHEY_SIMPLEX, 8, (255, 255, 255), 16)
    return image


def without_huffman_tables(data: bytes) -> bytes:
    """The JPEG as most UVC webcams send it in MJPEG mode: no DHT segments, the standard tables implied."""
    out, i = bytearray(data[:2]), 2
    while data[i:i + 2] != b"\xff\xda":
        end = i + 2 + int.from_bytes(data[i + 2:i + 4], "big")
        if data[i:i + 2] != b"\xff\xc4":
            out += data[i:end]
        i = end
    return bytes(out + data[i:])


def video_packets(path: Path) -> list[bytes]:
    """The bytes of every video packet of a file: for an MJPEG file, its JPEGs as they are stored."""
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]


def capture_counts(stage: Stage) -> tuple[int, int, int]:
    """Capture's own count, from its log: frames published, passed through as the source's JPEGs, encoded."""
    match = _COUNTS.search(stage.output())
    assert match is not None, stage.output()
    total, passed, encoded = (int(n) for n in match.groups())
    return total, passed, encoded
