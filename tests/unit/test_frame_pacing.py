"""Pacing: ticks on a fixed schedule from the start; late ticks neither drift nor burst."""

from __future__ import annotations

import pytest

from pipeline.video.pacing import Pacer
from tests.support.clock import FakeClock


def test_first_tick_is_immediate_then_one_period_apart() -> None:
    clock = FakeClock(100.0)
    pacer = Pacer(10, clock)
    assert pacer.delay() == 0.0
    assert pacer.delay() == pytest.approx(0.1)


def test_work_time_is_taken_out_of_the_wait_so_the_rate_does_not_drift() -> None:
    clock = FakeClock(100.0)
    pacer = Pacer(10, clock)
    for _ in range(1000):
        clock.now += pacer.delay()
        clock.now += 0.037  # encoding and publishing take time every tick
    assert clock.now == pytest.approx(100.0 + 1000 * 0.1 - 0.1 + 0.037, abs=1e-6)


def test_a_late_tick_keeps_the_schedule() -> None:
    clock = FakeClock(100.0)
    pacer = Pacer(10, clock)
    clock.now += pacer.delay()
    clock.now += 0.15  # one slow frame, less than a period behind the next tick
    assert pacer.delay() == 0.0
    assert pacer.delay() == pytest.approx(0.05)


def test_a_stall_drops_missed_ticks_instead_of_bursting() -> None:
    clock = FakeClock(100.0)
    pacer = Pacer(10, clock)
    clock.now += pacer.delay()
    clock.now += 2.0  # the process was descheduled for 20 periods
    assert pacer.delay() == 0.0
    assert pacer.delay() == pytest.approx(0.1)
