"""The demo scene must behave like a fixed camera with a scheduled passer-by, since later stages are tested on it."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.video.demo import CYCLE_SECONDS, FIRST_ENTRY_SECONDS, DemoScene

CLOCK = 1_763_950_000.0
WIDTH, HEIGHT = 320, 240
# Between two frames noise alone moves a pixel by a few grey levels (never more than 16 here).
CHANGED = 20


@pytest.fixture(scope="module")
def scene() -> DemoScene:
    return DemoScene(WIDTH, HEIGHT, seed=3)


def changed_mask(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > CHANGED


def test_same_inputs_give_identical_frames(scene: DemoScene) -> None:
    again = DemoScene(WIDTH, HEIGHT, seed=3)
    for t in (0.5, 4.5, 10.0):
        assert scene.render(t, CLOCK).tobytes() == again.render(t, CLOCK).tobytes()


def test_different_seeds_give_different_backgrounds(scene: DemoScene) -> None:
    other = DemoScene(WIDTH, HEIGHT, seed=4).render(0.5, CLOCK)
    mine = scene.render(0.5, CLOCK)
    assert np.abs(mine.astype(np.int16) - other).mean() > 10


@pytest.mark.parametrize(("width", "height"), [(160, 120), (640, 480), (1280, 720), (1920, 1080)])
def test_frames_are_bgr_uint8_at_any_size(width: int, height: int) -> None:
    demo = DemoScene(width, height)
    frame = demo.render(4.5, CLOCK)
    assert frame.shape == (height, width, 3)
    assert frame.dtype == np.uint8
    x, y, w, h = demo.object_box(4.5)
    assert x >= 0 and y >= 0 and x + w <= width and y + h <= height
    assert height / 6 <= h <= height / 4


def test_object_follows_the_schedule(scene: DemoScene) -> None:
    assert scene.object_box(0.5) is None
    assert scene.object_box(FIRST_ENTRY_SECONDS) is None
    assert scene.object_box(4.5) is not None
    assert scene.object_box(10.0) is None
    assert scene.object_box(FIRST_ENTRY_SECONDS + CYCLE_SECONDS - 0.1) is None
    assert scene.object_box(4.5 + CYCLE_SECONDS) is not None
    assert scene.object_box(4.5 + 5 * CYCLE_SECONDS) is not None


def test_object_box_matches_changed_pixels(scene: DemoScene) -> None:
    for t in (2.4, 4.5, 7.0, 4.5 + CYCLE_SECONDS):
        box = scene.object_box(t)
        assert box is not None
        x, y, w, h = box
        changed = changed_mask(scene.render(t, CLOCK), scene.render(10.0, CLOCK))
        outside = changed.copy()
        outside[y : y + h, x : x + w] = False
        assert not outside.any()
        rows, cols = np.nonzero(changed)
        # The box is tight: what visibly changed spans (nearly) all of it. Faint
        # edges (anti-aliasing, the contact shadow) may stay under the threshold.
        assert rows.max() - rows.min() + 1 >= 0.8 * h
        assert cols.max() - cols.min() + 1 >= 0.8 * w
        assert changed[y : y + h, x : x + w].mean() > 0.15


def test_still_period_changes_only_by_noise(scene: DemoScene) -> None:
    a = scene.render(10.0, CLOCK).astype(np.int16)
    b = scene.render(10.1, CLOCK).astype(np.int16)
    difference = np.abs(a - b)
    assert 0.5 < difference.mean() < 3
    assert difference.max() < 40


def test_clock_overlay_changes_only_its_corner(scene: DemoScene) -> None:
    changed = scene.render(10.0, CLOCK) != scene.render(10.0, CLOCK + 1)
    assert changed.any()
    rows, cols = np.nonzero(changed.any(axis=2))
    assert rows.max() < 0.15 * HEIGHT and cols.max() < 0.7 * WIDTH


def test_object_moves_and_alternates_direction(scene: DemoScene) -> None:
    first_x = scene.object_box(4.0)[0]
    assert scene.object_box(4.5)[0] > first_x
    assert changed_mask(scene.render(4.0, CLOCK), scene.render(4.5, CLOCK)).sum() > 100
    next_cycle = 4.0 + CYCLE_SECONDS
    assert scene.object_box(next_cycle + 0.5)[0] < scene.object_box(next_cycle)[0]
