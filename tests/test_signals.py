"""Every stage stops with exit status 0 within 2 s on SIGTERM, SIGINT and SIGQUIT."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from tests.conftest import Stage, wait_for

STAGES = {
    "capture": ("--source", "demo"),
    "detector": (),
    "recorder": (),
    "gateway": (),
    "logger": (),
}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT], ids=lambda s: s.name)
@pytest.mark.parametrize("name", list(STAGES))
def test_stage_stops_cleanly(start_stage: Callable[..., Stage], name: str, sig: signal.Signals) -> None:
    stage = start_stage(name, *STAGES[name])
    wait_for(lambda: " INFO " in stage.output(), 15, f"{name} to start")
    started = time.monotonic()
    assert stage.stop(sig, timeout=5) == 0, stage.output()
    assert time.monotonic() - started < 2.0
    assert "Traceback" not in stage.output()


def test_a_busy_endpoint_stops_the_second_binder_with_a_clear_error(start_stage: Callable[..., Stage]) -> None:
    first = start_stage("detector")
    wait_for(lambda: " INFO " in first.output(), 15, "the first detector to bind")
    second = start_stage("detector")
    assert second.proc.wait(15) == 1
    assert "ERROR cannot bind tcp://127.0.0.1:" in second.output()
    assert "Traceback" not in second.output()
    assert first.stop() == 0
