"""Scaling a picture down to the size asked for, keeping its shape, as cheaply as it can be done.

``--width``/``--height`` are a box the picture must fit in, never a shape forced on it: a 16:9
camera asked for 640x480 publishes 640x360, not a squashed picture (and not black bars, which
would cost bytes on every frame and confuse the detector's percentages). A picture is never
enlarged, because that only costs CPU and bandwidth.

The cheap way down: a JPEG is decoded straight at 1/2, 1/4 or 1/8 of its size when that still
covers the target (libjpeg then skips most of the inverse DCT), a picture at least twice the
target is halved with INTER_AREA (a fast, alias-free special case), and what is left, less than
a factor of two, is done with INTER_LINEAR. INTER_AREA at an arbitrary ratio costs several times
a whole JPEG decode, which made it the largest share of capture's cost.
"""

from __future__ import annotations

import cv2
import numpy as np

Size = tuple[int, int]
_REDUCED_COLOR = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                  8: cv2.IMREAD_REDUCED_COLOR_8}


def fit(size: Size, box: Size) -> Size:
    """The largest even size of ``size``'s shape that fits in ``box``, and never larger than ``size``."""
    width, height = size
    scale = min(box[0] / width, box[1] / height, 1.0)
    # Even sides, as H.264 in 4:2:0 needs; at least 2 pixels, however thin the picture.
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def jpeg_reduction(size: Size, target: Size) -> int:
    """The largest libjpeg scale-down (1, 2, 4 or 8) whose result still covers ``target``."""
    width, height = size
    return max(f for f in _REDUCED_COLOR if -(-width // f) >= target[0] and -(-height // f) >= target[1])


def decode_scaled(jpeg: bytes, size: Size, target: Size) -> np.ndarray | None:
    """A JPEG of ``size`` decoded and scaled to ``target``; None for bytes that do not decode."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), _REDUCED_COLOR[jpeg_reduction(size, target)])
    return None if image is None else shrink(image, target)


def shrink(image: np.ndarray, target: Size) -> np.ndarray:
    """``image`` scaled down to ``target``: halved while it is at least twice as large, then INTER_LINEAR."""
    while image.shape[1] >= 2 * target[0] and image.shape[0] >= 2 * target[1]:
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if (image.shape[1], image.shape[0]) != target:
        image = cv2.resize(image, target, interpolation=cv2.INTER_LINEAR)
    return image
