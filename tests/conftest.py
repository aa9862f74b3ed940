"""Fixtures for tests that run the real stages as processes on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on, never one this test session handed out before.

    The kernel may give the same free port to two binds in a row once the first socket is closed;
    two endpoints of one test on one port made a stage fail to bind (once in CI).
    """
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def clean_env(**overrides: str) -> dict[str, str]:
    """The test's environment without any CAMSERVER_* of the developer's shell, plus overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMSERVER_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


@dataclass
class Stage:
    """A stage running as its own process, its output going to a file the test can read."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@dataclass
class Ports:
    """This test's endpoints and recordings folder, handed to every stage it starts."""

    frames: str
    events: str
    recorder_events: str
    http: int
    recordings: Path

    def env(self) -> dict[str, str]:
        return {"CAMSERVER_FRAMES": self.frames, "CAMSERVER_EVENTS": self.events,
                "CAMSERVER_RECORDER_EVENTS": self.recorder_events, "CAMSERVER_PORT": str(self.http),
                "CAMSERVER_RECORDINGS": str(self.recordings)}


@pytest.fixture
def ports(tmp_path: Path) -> Ports:
    endpoint = lambda: f"tcp://127.0.0.1:{free_port()}"  # noqa: E731
    return Ports(endpoint(), endpoint(), endpoint(), free_port(), tmp_path / "recordings")


@pytest.fixture
def start_stage(tmp_path: Path, ports: Ports) -> Iterator[Callable[..., Stage]]:
    """Start ``python -m pipeline.<name> [args]`` wired to this test's ports; all are reaped after."""
    started: list[Stage] = []

    def start(name: str, *args: str, **env: str) -> Stage:
        log_path = tmp_path / f"{name}-{len(started)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", f"pipeline.{name}", *args],
                cwd=REPO,
                env=clean_env(**{**ports.env(), **env}),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        stage = Stage(name, proc, log_path)
        started.append(stage)
        return stage

    yield start
    for stage in started:
        if stage.proc.poll() is None:
            stage.proc.kill()
        stage.proc.wait(5)


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> object:
    """Poll until ``predicate`` returns something truthy; fail the test naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")
