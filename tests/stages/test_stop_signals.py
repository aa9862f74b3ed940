"""Every stage stops with exit status 0 within 2 s on SIGTERM, SIGINT and SIGQUIT."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
import zmq

from pipeline.bus.sockets import EVENT_HWM, publisher
from pipeline.protocol import Event
from tests.support.ports import Ports
from tests.support.stages import REPO, Stage, clean_env
from tests.support.waiting import wait_for

STAGES = {
    "capture": ("--source", "demo"),
    "detector": (),
    "recorder": (),
    "gateway": (),
    "logger": (),
    "encoder": (),
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


def test_a_stop_signal_while_the_log_is_blocked_on_a_full_pipe_still_stops_the_stage(ports: Ports) -> None:
    """The stop signal used to be lost when it came while a log line was being written.

    Under supervisord a stage's output is a pipe. When the pipe is full, the write waits, and the
    signal handler runs inside that write. The old handler logged first, and that log call failed
    ("reentrant call inside BufferedWriter"), so the stop flag was never set and supervisord killed
    the logger. This test fills the pipe with printed events, sends SIGTERM, then reads the pipe.
    """
    logger = subprocess.Popen([sys.executable, "-m", "pipeline.logger"], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=clean_env(**ports.env()))
    try:
        with zmq.Context() as ctx, publisher(ctx, [ports.events], EVENT_HWM) as pub:
            time.sleep(1.0)  # the logger's subscription reaches the publisher
            for seq in range(400):  # 400 lines of 2 KB: several times a pipe's 64 KB
                pub.send_multipart(Event("cam0", seq, time.time(), "motion_start", {"n": "x" * 2000}).encode())
            time.sleep(1.0)  # the logger is now blocked writing to the full pipe
            logger.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            output = logger.communicate(timeout=10)[0].decode(errors="replace")
    finally:
        if logger.poll() is None:
            logger.kill()
            logger.wait(5)
    assert logger.returncode == 0, output[-3000:]
    assert "Logging error" not in output and "received SIGTERM, stopping" in output
