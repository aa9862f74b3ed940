"""The encoder's demand, from the subscription messages its XPUB hears: who wants which track, and key frames."""

from __future__ import annotations

from pipeline.video.demand import KEEP_S, KEY_EVERY_S, Demand
from tests.support.clock import FakeClock


def test_a_subscription_wants_its_camera_and_the_bare_prefix_wants_every_camera() -> None:
    demand = Demand(FakeClock())
    demand.note(b"\x01video.cam0")
    assert demand.wants("cam0") and not demand.wants("yard")
    demand.note(b"\x01stage.")
    assert not demand.wants("yard"), "a heartbeat subscriber wants no track"
    demand.note(b"\x01video.")
    assert demand.wants("yard")
    demand.note(b"\x00video.")
    demand.note(b"\x00video.cam0")
    assert not demand.wants("cam0") and not demand.wants("yard")


def test_each_subscription_asks_for_one_key_frame_at_most_every_so_often() -> None:
    clock = FakeClock()
    demand = Demand(clock)
    demand.note(b"\x01video.cam0")
    assert demand.key_due("cam0") and not demand.key_due("cam0"), "one key frame per request"
    clock.now += KEY_EVERY_S / 2
    demand.note(b"\x01video.cam0")  # a second viewer joins at once
    assert not demand.key_due("cam0"), "too soon after the last one"
    clock.now += KEY_EVERY_S
    assert demand.key_due("cam0"), "its key frame comes once the interval has passed"


def test_an_encoder_nobody_wants_is_freed_after_keep_s() -> None:
    clock = FakeClock()
    demand = Demand(clock)
    demand.note(b"\x01video.cam0")
    assert demand.idle(["cam0"]) == []
    demand.note(b"\x00video.cam0")
    assert demand.idle(["cam0"]) == []
    clock.now += KEEP_S
    assert demand.idle(["cam0"]) == ["cam0"]
