"""Scaling down to the size asked for: the picture keeps its shape, is never enlarged, and looks right."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.video.demo import DemoScene
from pipeline.video.scaling import decode_scaled, fit, jpeg_reduction, shrink


@pytest.mark.parametrize(("size", "box", "expected"), [
    ((1280, 720), (640, 480), (640, 360)),    # 16:9 into 4:3: the width decides
    ((640, 480), (1280, 720), (640, 480)),    # never enlarged
    ((768, 576), (384, 288), (384, 288)),     # the same shape: exactly the box
    ((1920, 1080), (1000, 1000), (1000, 562)),
    ((480, 640), (640, 480), (360, 480)),     # a portrait camera stays portrait
    ((641, 481), (1280, 720), (640, 480)),    # even sides, as H.264 wants
])
def test_fit_keeps_the_shape_within_the_box(size: tuple[int, int], box: tuple[int, int],
                                            expected: tuple[int, int]) -> None:
    assert fit(size, box) == expected


@pytest.mark.parametrize(("size", "target", "factor"), [
    ((768, 576), (384, 288), 2),
    ((1920, 1080), (640, 360), 2),      # 1/4 would be 480x270: too small
    ((1920, 1080), (480, 270), 4),
    ((1280, 720), (160, 90), 8),
    ((1280, 720), (854, 480), 1),
    ((1281, 721), (641, 361), 2),       # libjpeg rounds a reduced size up
])
def test_the_jpeg_is_decoded_at_the_smallest_scale_that_still_covers_the_target(
        size: tuple[int, int], target: tuple[int, int], factor: int) -> None:
    assert jpeg_reduction(size, target) == factor


@pytest.mark.parametrize(("size", "target"), [((1920, 1080), (640, 360)), ((1280, 720), (854, 480)),
                                              ((768, 576), (384, 288)), ((1920, 1080), (300, 168))])
def test_scaled_pictures_look_like_a_careful_resize_of_the_whole_picture(
        size: tuple[int, int], target: tuple[int, int]) -> None:
    image = DemoScene(*size, seed=0).render(4.0, 1.7e9)
    jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    careful = cv2.resize(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), target,
                         interpolation=cv2.INTER_AREA)
    for scaled in (decode_scaled(jpeg, size, target), shrink(image, target)):
        assert scaled is not None and scaled.shape == (target[1], target[0], 3)
        assert cv2.PSNR(scaled, careful) > 38, "no aliasing, no pixel out of place (nearest: 26-32 dB)"


def test_bytes_that_are_not_a_jpeg_decode_to_none() -> None:
    assert decode_scaled(b"\xff\xd8 not really", (640, 480), (320, 240)) is None
