"""Loopback ports for the processes a test starts, and the endpoints of one test.

One module-level counter hands out ports, so that no two tests of a session (in one pytest-xdist
worker) get the same one; each worker has its own slice of ports, so workers never collide either.
"""

from __future__ import annotations

import os
import random
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest


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


@dataclass
class Ports:
    """This test's endpoints and recordings folder, handed to every stage it starts."""

    frames: str
    events: str
    recorder_events: str
    http: int
    recordings: Path
    video: str

    def env(self) -> dict[str, str]:
        return {"CAMSERVER_FRAMES": self.frames, "CAMSERVER_EVENTS": self.events,
                "CAMSERVER_RECORDER_EVENTS": self.recorder_events, "CAMSERVER_PORT": str(self.http),
                "CAMSERVER_RECORDINGS": str(self.recordings), "CAMSERVER_VIDEO": self.video}


@pytest.fixture
def ports(tmp_path: Path) -> Ports:
    endpoint = lambda: f"tcp://127.0.0.1:{free_port()}"  # noqa: E731
    return Ports(endpoint(), endpoint(), endpoint(), free_port(), tmp_path / "recordings", endpoint())
