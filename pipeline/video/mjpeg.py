"""JPEGs as cameras make them, made whole before they are passed on.

Most USB webcams and many MJPEG AVI files (the "AVI1" format) leave the Huffman tables out of
every picture, because the MJPEG format says decoders must assume the standard ones from Annex K
of the JPEG standard. Decoders built on libjpeg-turbo or FFmpeg do so; others refuse such a
picture, and a browser shows it broken or not at all. mjpg-streamer and µStreamer insert the
tables for that reason, and so does capture: a JPEG without a DHT segment gets the standard
tables just before its image data. Pictures that have their own tables pass untouched.
"""

from __future__ import annotations

import cv2
import numpy as np

_DHT, _SOS = 0xC4, 0xDA
# Markers that stand alone, without a length: TEM and the restart markers.
_BARE = frozenset({0x01, *range(0xD0, 0xD8)})


def _segments(jpeg: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each segment before the image data; stops at SOS, which is included."""
    found, at, end = [], 2, len(jpeg)
    while at + 4 <= end and jpeg[at] == 0xFF:
        marker = jpeg[at + 1]
        if marker == 0xFF:
            at += 1
            continue
        if marker in _BARE:
            at += 2
            continue
        length = int.from_bytes(jpeg[at + 2:at + 4], "big")
        found.append((marker, at, at + 2 + length))
        if marker == _SOS or length < 2:
            break
        at += 2 + length
    return found


def _standard_tables() -> bytes:
    """The DHT segments libjpeg writes when it is not asked to optimise them: Annex K's tables."""
    ok, encoded = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8), [cv2.IMWRITE_JPEG_OPTIMIZE, 0])
    assert ok
    jpeg = encoded.tobytes()
    return b"".join(jpeg[start:end] for marker, start, end in _segments(jpeg) if marker == _DHT)


STANDARD_TABLES = _standard_tables()


def with_huffman_tables(jpeg: bytes) -> bytes:
    """``jpeg`` itself if it carries Huffman tables (or cannot be read), else a copy with the standard ones."""
    segments = _segments(jpeg)
    if not segments or segments[-1][0] != _SOS or any(marker == _DHT for marker, _, _ in segments):
        return jpeg
    sos = segments[-1][1]
    return jpeg[:sos] + STANDARD_TABLES + jpeg[sos:]
