"""Motion detection under harder conditions (issue 11), on the synthetic clips of tests/support/clips.py.

Each clip goes through the detector's per-camera logic with the default settings, as in
tests/unit/test_motion_detection.py. A clip with a walker must give one kept episode that starts within
MAX_START_LAG frames of the walker's first frame in view and lasts until the walker leaves; a
clip without one must keep nothing. Separately, the rules must say why: the condition's own event
(``lightswitch`` with the rule and the area, ``shake``) at the frames the condition changed, and
no such event anywhere else (on a walker, on noise, on rain).
"""

from __future__ import annotations

import dataclasses
from functools import cache

import pytest

from pipeline.protocol import Event
from tests.support.clips import CLIPS, SHAKE_PX, Clip
from tests.support.detection import of_type, run

MAX_START_LAG = 3  # frames between the walker coming into view and motion_start
MAX_EARLY_END = 3  # frames the episode's last motion may come before the walker's last frame in view
RULE_EVENTS = ("lightswitch", "shake")


@cache
def outcome(name: str) -> tuple[Clip, list[Event]]:
    """The clip without its pictures, and every event the detector gave for it; computed once per clip."""
    clip = CLIPS[name]()
    events = run(clip.frames)
    return dataclasses.replace(clip, frames=[]), events


def kept_episodes(events: list[Event]) -> list[tuple[int, int]]:
    return [(e.data["start_seq"], e.data["end_seq"]) for e in of_type(events, "motion_end") if e.data["keep"]]


@pytest.mark.parametrize("name", list(CLIPS))
def test_every_walk_is_found_and_nothing_else_kept(name: str) -> None:
    clip, events = outcome(name)
    kept = kept_episodes(events)
    if clip.walk is None:
        assert kept == [], f"{clip.description}: kept episodes (start, end) {kept}"
        return
    first, last = clip.walk[0], clip.walk[-1]
    assert len(kept) == 1, f"{clip.description}: walker in view {first}-{last}, kept episodes {kept}"
    (start, end), = kept
    assert abs(start - first) <= MAX_START_LAG, f"{clip.description}: walker from {first}, motion from {start}"
    assert end >= last - MAX_EARLY_END, f"{clip.description}: walker in view until {last}, motion until {end}"


@pytest.mark.parametrize("name", list(CLIPS))
def test_the_rule_that_fired_is_reported_where_the_condition_is(name: str) -> None:
    clip, events = outcome(name)
    reported = [e for e in events if e.type in RULE_EVENTS]
    stray = [(e.type, e.seq) for e in reported if e.type != clip.event or e.seq not in clip.event_frames]
    assert stray == [], f"{clip.description}: rule events away from the condition's frames {clip.event_frames}"
    if clip.event is None:
        return
    assert reported, f"{clip.description}: no {clip.event} event"
    if clip.rule is not None:
        assert {e.data["rule"] for e in reported} == {clip.rule}
        assert all(0 < e.data["area"] <= 100 for e in reported)


def test_a_local_lighting_change_reports_about_the_area_lit() -> None:
    """The lamp lights the left third of the picture, and its light's soft edge a little more."""
    _, events = outcome("lamp_flicker")
    areas = [e.data["area"] for e in of_type(events, "lightswitch")]
    assert areas and all(20 <= area <= 50 for area in areas), areas


def test_a_shake_reports_how_far_the_picture_moved() -> None:
    """Each shake event gives the shift from the frame before, in frame pixels, to within a pixel."""
    clip, events = outcome("shake")
    positions = [(0, 0), *SHAKE_PX, (0, 0)]
    moves = {seq: (x1 - x0, y1 - y0) for seq, (x0, y0), (x1, y1)
             in zip(clip.event_frames, positions[:-1], positions[1:], strict=True)}
    shakes = of_type(events, "shake")
    assert shakes
    for event in shakes:
        dx, dy = moves[event.seq]
        assert abs(event.data["dx"] - dx) <= 1 and abs(event.data["dy"] - dy) <= 1, (event.seq, event.data, (dx, dy))
