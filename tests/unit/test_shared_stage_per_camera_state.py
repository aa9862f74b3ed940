"""A shared stage's per-camera state: made on demand, capped against made-up ids, freed after silence."""

from __future__ import annotations

import logging

from pipeline.config.options import MAX_CAMERAS
from pipeline.stage.cameras import Cameras
from tests.support.clock import FakeClock


def test_state_is_made_at_a_cameras_first_message_and_kept_while_it_is_heard() -> None:
    clock = FakeClock(100.0)
    cameras = Cameras(lambda camera: [camera], 10.0, logging.getLogger("test"), clock)
    porch = cameras.of("porch")
    assert porch == ["porch"] and cameras.of("porch") is porch
    clock.now += 8
    cameras.heard("porch")
    clock.now += 8
    assert cameras.silent() == [] and list(cameras) == [porch]


def test_a_silent_camera_is_handed_back_once_and_forgotten() -> None:
    clock = FakeClock(100.0)
    cameras = Cameras(lambda camera: [camera], 10.0, logging.getLogger("test"), clock)
    porch, yard = cameras.of("porch"), cameras.of("yard")
    clock.now += 6
    cameras.heard("yard")
    clock.now += 6
    assert cameras.silent() == [porch] and cameras.silent() == []
    assert list(cameras) == [yard]
    assert cameras.of("porch") is not porch, "a camera back after its silence starts afresh"


def test_new_cameras_beyond_the_maximum_are_refused_with_one_warning(caplog) -> None:
    cameras = Cameras(lambda camera: [camera], 10.0, logging.getLogger("test"), FakeClock(100.0))
    assert all(cameras.of(f"fake{n}") is not None for n in range(MAX_CAMERAS))
    with caplog.at_level(logging.WARNING):
        assert cameras.of("onemore") is None and cameras.of("twomore") is None
    assert len(list(cameras)) == MAX_CAMERAS
    warnings = [record.getMessage() for record in caplog.records]
    assert warnings == [f"ignoring camera onemore: already {MAX_CAMERAS} cameras"]
    cameras.heard("onemore")
    assert "onemore" not in [state[0] for state in cameras]
