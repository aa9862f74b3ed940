"""Denial of service, as processes over real TCP: slowloris, running out of descriptors, connection caps
(WebSockets included) and a flood of bad requests in the log.

Attackers connect from 127.0.0.2 (and 127.0.0.3): all of 127/8 is loopback on Linux, and the gateway
tells clients apart by address, so 127.0.0.1 stays a separate, well-behaved client.
"""

from __future__ import annotations

import base64
import contextlib
import os
import resource
import socket
import time
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.web.server import FD_RESERVE, IDLE_TIMEOUT_S
from tests.support.ports import Ports
from tests.support.processes import cpu_seconds, open_fds
from tests.support.stages import Stage, clean_env, reap, spawn
from tests.support.waiting import wait_for
from tests.support.web import gateway_listening

ATTACKER = "127.0.0.2"
SLOWLORIS = 1100  # the count: above the usual 1024 descriptors of a process
PARTIAL_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
CPU_WINDOW_S = 3.0
MAX_CPU_SHARE = 0.5

Launch = Callable[..., Stage]


@pytest.fixture
def launch_gateway(tmp_path: Path, ports: Ports) -> Iterator[Launch]:
    """Start the gateway as start_stage does, but under a given limit on open files (soft, hard)."""
    started: list[Stage] = []

    def launch(nofile: tuple[int, int], *args: str) -> Stage:
        started.append(spawn("gateway", "gateway", args, tmp_path / f"gateway-{len(started)}.log",
                             clean_env(**ports.env()),
                             preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile)))
        return started[-1]

    yield launch
    reap(started)


@pytest.fixture
def held() -> Iterator[list[socket.socket]]:
    """The test's client sockets, all closed at the end whatever happens."""
    socks: list[socket.socket] = []
    yield socks
    for sock in socks:
        sock.close()


def own_descriptors(needed: int) -> None:
    """Let this test process hold ``needed`` sockets, or skip where the hard limit forbids it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} open files, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def connect_from(source: str, port: int, timeout: float = 0.5) -> socket.socket | None:
    """A non-blocking connection from ``source`` to the gateway, or None when not made within ``timeout``."""
    sock = socket.socket()
    try:
        sock.bind((source, 0))
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    sock.setblocking(False)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed (or answered, which it only does to refuse) this connection."""
    try:
        sock.recv(4096)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


def send_quietly(sock: socket.socket, data: bytes) -> None:
    """Send what the server may already have refused: a reset connection is what the test looks at later."""
    with contextlib.suppress(OSError):
        sock.send(data)


def healthz(port: int, timeout: float = 2.0) -> tuple[int, bytes] | None:
    """Status and body of GET /healthz from 127.0.0.1 on a connection of its own; None when no answer came."""
    reply = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
            while chunk := sock.recv(4096):
                reply += chunk
    except OSError:
        return None
    head, _, body = reply.partition(b"\r\n\r\n")
    fields = head.split(b" ", 2)
    return (int(fields[1]), body) if fields[0] == b"HTTP/1.1" and len(fields) > 1 else None


def answered(port: int) -> bool:
    """Served by the application: 200, or 503 with no camera; not the gateway's refusal, a 503 too."""
    reply = healthz(port)
    return reply is not None and reply[0] in (200, 503) and reply[1].startswith(b"{")


def lines_with(stage: Stage, text: str) -> list[str]:
    return [line for line in stage.output().splitlines() if text in line]


def test_slowloris_is_capped_and_cut_at_the_header_timeout(launch_gateway: Launch, ports: Ports,
                                                            held: list[socket.socket]) -> None:
    own_descriptors(SLOWLORIS + 100)
    gateway = launch_gateway((1024, 1024), "--max-connections", "100", "--max-connections-per-client", "20")
    wait_for(gateway_listening(ports.http), 15, "the gateway to answer")

    started = time.monotonic()
    deadline = started + 10.0
    for _ in range(2 * SLOWLORIS):  # a few connects time out, their SYN lost to a port still in TIME_WAIT
        if len(held) == SLOWLORIS or time.monotonic() > deadline:
            break
        sock = connect_from(ATTACKER, ports.http)
        if sock is not None:
            held.append(sock)
            send_quietly(sock, PARTIAL_REQUEST)
    assert len(held) == SLOWLORIS, f"only {len(held)} of {SLOWLORIS} connections were made"
    time.sleep(0.5)
    alive = [sock for sock in held if not closed_by_server(sock)]
    assert len(alive) == 20, f"{len(alive)} slowloris connections are held open, the cap is 20"

    cpu_before = cpu_seconds(gateway.proc.pid)
    window_end = time.monotonic() + CPU_WINDOW_S
    asked = time.monotonic()
    assert answered(ports.http), "a normal client got no answer while the slowloris connections were held"
    answer_s = time.monotonic() - asked
    while time.monotonic() < window_end:
        for sock in alive:
            send_quietly(sock, b"a")
        time.sleep(0.5)
    cpu_share = (cpu_seconds(gateway.proc.pid) - cpu_before) / CPU_WINDOW_S

    cut_by = started + IDLE_TIMEOUT_S + 2.0
    while alive and time.monotonic() < cut_by:
        for sock in alive:
            send_quietly(sock, b"a")
        time.sleep(0.5)
        alive = [sock for sock in alive if not closed_by_server(sock)]
    cut_after_s = time.monotonic() - started

    refusals = lines_with(gateway, "refused a connection")
    print(f"healthz in {answer_s:.3f} s, CPU {100 * cpu_share:.1f} %, {len(refusals)} refusal lines, "
          f"held connections cut after {cut_after_s:.1f} s")
    assert answer_s < 2.0
    assert cpu_share < MAX_CPU_SHARE, f"the gateway used {100 * cpu_share:.0f} % CPU"
    assert not alive, f"{len(alive)} trickling connections outlived the {IDLE_TIMEOUT_S} s header timeout"
    assert 1 <= len(refusals) < 50, refusals
    assert "Traceback" not in gateway.output() and not lines_with(gateway, "Too many open files")
    assert gateway.proc.poll() is None


def test_running_out_of_descriptors_pauses_accepting(launch_gateway: Launch, ports: Ports,
                                                     held: list[socket.socket]) -> None:
    gateway = launch_gateway((128, 256), "--max-connections", "1000", "--max-connections-per-client", "40")
    wait_for(gateway_listening(ports.http), 15, "the gateway to answer")
    pid = gateway.proc.pid
    assert resource.prlimit(pid, resource.RLIMIT_NOFILE) == (256, 256), "the soft limit was not raised"
    assert lines_with(gateway, f"--max-connections 1000 lowered to {256 - FD_RESERVE}"), gateway.output()

    for _ in range(41):
        sock = connect_from(ATTACKER, ports.http)
        assert sock is not None
        held.append(sock)
    held[-1].settimeout(1.0)
    assert held[-1].recv(64).startswith(b"HTTP/1.1 503 "), "the gateway did not take the first 40 connections"
    # Descriptors used up by something other than connections, which the cap cannot prevent: no slot is left.
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (open_fds(pid), 256))
    for _ in range(300):
        sock = socket.socket()
        held.append(sock)
        sock.setblocking(False)
        sock.bind(("127.0.0.3", 0))
        sock.connect_ex(("127.0.0.1", ports.http))

    cpu_before = cpu_seconds(pid)
    time.sleep(CPU_WINDOW_S)
    cpu_share = (cpu_seconds(pid) - cpu_before) / CPU_WINDOW_S
    shortage = lines_with(gateway, "Too many open files")
    assert shortage, "the test did not make accept() fail with EMFILE"

    for sock in held:
        sock.close()
    released = time.monotonic()
    wait_for(lambda: answered(ports.http), 5, "the gateway to answer once the flood is gone")
    recovery_s = time.monotonic() - released

    print(f"CPU {100 * cpu_share:.1f} % while out of descriptors, {len(shortage)} log lines about it, "
          f"serving again {recovery_s:.2f} s after the flood")
    assert cpu_share < MAX_CPU_SHARE, f"the gateway used {100 * cpu_share:.0f} % CPU"
    assert len(shortage) <= 3, shortage
    assert "Traceback" not in gateway.output()
    assert gateway.proc.poll() is None


def test_connection_caps_per_client_and_in_total(start_stage: Launch, ports: Ports,
                                                  held: list[socket.socket]) -> None:
    gateway = start_stage("gateway", "--max-connections", "8", "--max-connections-per-client", "5")
    wait_for(gateway_listening(ports.http), 15, "the gateway to answer")

    def opened(source: str) -> socket.socket:
        sock = connect_from(source, ports.http)
        assert sock is not None
        held.append(sock)
        return sock

    attacker = [opened(ATTACKER) for _ in range(5)]
    sixth = opened(ATTACKER)
    sixth.settimeout(1.0)
    assert sixth.recv(64).startswith(b"HTTP/1.1 503 "), "the 6th connection from one address was not refused"
    assert not any(closed_by_server(sock) for sock in attacker)
    assert answered(ports.http), "127.0.0.1 was not served while 127.0.0.2 was at its cap"

    for _ in range(3):
        opened("127.0.0.3")
    wait_for(lambda: not answered(ports.http), 2, "127.0.0.1 to be refused once 8 connections are open")
    attacker[0].close()
    wait_for(lambda: answered(ports.http), 2, "127.0.0.1 to be served once a connection closed")
    assert len(lines_with(gateway, "refused a connection")) <= 3, gateway.output()


def websocket_from(source: str, port: int) -> socket.socket | None:
    """A WebSocket to /webcam from ``source`` once the handshake succeeded; None when it was refused."""
    sock = connect_from(source, port)
    if sock is None:
        return None
    key = base64.b64encode(os.urandom(16)).decode()
    sock.settimeout(1.0)
    try:
        sock.sendall(f"GET /webcam HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        if sock.recv(12) == b"HTTP/1.1 101":
            return sock
    except OSError:
        pass
    sock.close()
    return None


def test_a_websocket_counts_until_it_closes(start_stage: Launch, ports: Ports, held: list[socket.socket]) -> None:
    """Tornado ends the HTTP connection when a WebSocket takes its socket over; the socket still counts."""
    start_stage("gateway", "--max-connections-per-client", "2")
    wait_for(gateway_listening(ports.http), 15, "the gateway to answer")
    first, second = (websocket_from(ATTACKER, ports.http) for _ in range(2))
    assert first is not None and second is not None, "a WebSocket within the cap was refused"
    held += [first, second]
    third = connect_from(ATTACKER, ports.http)
    assert third is not None
    held.append(third)
    third.settimeout(1.0)
    assert third.recv(64).startswith(b"HTTP/1.1 503 "), "two open WebSockets did not count against the cap of 2"

    first.close()
    replacement = wait_for(lambda: websocket_from(ATTACKER, ports.http), 3, "a WebSocket once another closed")
    held.append(typing.cast(socket.socket, replacement))


def test_bad_requests_cost_one_log_line(start_stage: Launch, ports: Ports) -> None:
    gateway = start_stage("gateway")
    wait_for(gateway_listening(ports.http), 15, "the gateway to answer")
    for _ in range(200):
        sock = connect_from(ATTACKER, ports.http)
        assert sock is not None
        with sock:
            sock.settimeout(1.0)
            sock.sendall(b"NOT HTTP\r\n\r\n")
            assert sock.recv(64).startswith(b"HTTP/1.1 400 ")
    wait_for(lambda: lines_with(gateway, "Malformed HTTP message"), 2, "the malformed requests to be logged")
    assert len(lines_with(gateway, "Malformed HTTP message")) == 1, gateway.output()
