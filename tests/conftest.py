"""Fixtures for tests that run the real stages as processes on free loopback ports."""

from __future__ import annotations

import os
import random
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


def _port_slice() -> range:
    """This process's ports: below the kernel's ephemeral range, one slice per pytest-xdist worker.

    A port from bind(0) lies in the ephemeral range, which every outgoing connection draws its own
    port from: between handing such a port out and a stage binding it, a client socket of another
    test took it now and then ("Address already in use"), and more often with two workers. Below
    that range only explicit binds take ports, and each worker binds in its own slice.
    """
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768  # Linux's default; elsewhere the ports below it are as good a guess
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    size = (ephemeral - FIRST_TEST_PORT) // workers
    return range(FIRST_TEST_PORT + worker * size, FIRST_TEST_PORT + (worker + 1) * size)


FIRST_TEST_PORT = 10000
_ports = _port_slice()
_next_port = random.randrange(len(_ports))  # another run's sockets may linger on the ports it used


def free_port() -> int:
    """A loopback port nobody listens on, never one this test session handed out before."""
    global _next_port
    for _ in range(len(_ports)):
        port = _ports[_next_port % len(_ports)]
        _next_port += 1
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {_ports}")


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
    reap(started)


def reap(stages: list[Stage]) -> None:
    """Kill whatever a test left running of the stages it started, and wait for each."""
    for stage in stages:
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
