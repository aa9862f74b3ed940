"""Capture's live source: a camera read in a thread of its own hands out its newest frame, never one
queued behind others, however fast the camera makes them.
"""

from __future__ import annotations

import time

import numpy as np

from pipeline.video.sources import LiveSource, camera_pictures


class CountingCamera:
    """Stands in for cv2.VideoCapture: a camera that makes frames faster than anyone reads them."""

    def __init__(self) -> None:
        self.count = 0

    def read(self) -> tuple[bool, np.ndarray]:
        time.sleep(0.001)
        self.count += 1
        return True, np.full((4, 4, 3), self.count % 256, np.uint8)

    def release(self) -> None:
        pass


def test_live_source_hands_out_the_newest_frame_not_a_queued_one() -> None:
    camera = CountingCamera()
    source = LiveSource("counting camera", camera_pictures(0, 4, 4, first=camera))  # type: ignore[arg-type]
    try:
        time.sleep(0.3)
        grab = source.read()
        assert grab is not None
        made = camera.count
        assert made > 50
        assert abs(int(grab.image[0, 0, 0]) - made % 256) <= 2
        assert source.read() is None or camera.count > made
    finally:
        source.close()
