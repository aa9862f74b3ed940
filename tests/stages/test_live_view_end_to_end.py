"""End to end, as processes: demo capture → ZeroMQ → gateway → WebSocket, snapshot and MJPEG clients."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import signal
import socket
import time
from collections.abc import Callable

from tests.support.media import decode_jpeg
from tests.support.ports import Ports
from tests.support.stages import Stage
from tests.support.waiting import wait_for
from tests.support.web import LiveClient, gateway_up, http_get, http_status


def mjpeg_parts(port: int, count: int) -> list[bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/stream.mjpg")
    response = conn.getresponse()
    content_type = response.getheader("Content-Type")
    assert content_type.startswith("multipart/x-mixed-replace; boundary=")
    boundary = b"--" + content_type.split("boundary=")[1].encode()
    parts: list[bytes] = []
    while len(parts) < count:
        assert response.readline().rstrip() == boundary
        headers = {}
        while (line := response.readline().rstrip()) != b"":
            key, value = line.decode().split(":", 1)
            headers[key.lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        parts.append(response.read(int(headers["content-length"])))
        assert response.readline() == b"\r\n"
    conn.close()
    return parts


def test_live_view_end_to_end(start_stage: Callable[..., Stage], ports: Ports) -> None:
    gateway = start_stage("gateway")
    capture = start_stage("capture", "--source", "demo", "--fps", "15")
    wait_for(gateway_up(ports.http), 15, "the gateway to serve frames")

    async def scenario() -> Stage:
        client = await LiveClient.connect(ports.http)
        frames = [await client.next_frame() for _ in range(20)]
        seqs = [meta["seq"] for meta, _ in frames]
        assert seqs == sorted(seqs) and len(set(seqs)) == 20, seqs
        for meta, jpeg in frames:
            assert decode_jpeg(jpeg).shape == (480, 640, 3)
            assert (meta["w"], meta["h"], meta["camera"], meta["demo"]) == (640, 480, "cam0", True)
        assert client.statuses and client.statuses[0]["camera"] == "cam0"

        status, headers, body = await asyncio.to_thread(http_get, ports.http, "/snapshot.jpg")
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        assert decode_jpeg(body).shape == (480, 640, 3)
        parts = await asyncio.to_thread(mjpeg_parts, ports.http, 5)
        assert all(decode_jpeg(part).shape == (480, 640, 3) for part in parts)

        capture.proc.send_signal(signal.SIGKILL)
        capture.proc.wait(5)
        await asyncio.sleep(1.0)
        restarted = start_stage("capture", "--source", "demo", "--fps", "15")
        deadline = time.monotonic() + 20
        while True:
            meta, jpeg = await client.next_frame(timeout=20)
            if meta["seq"] < seqs[-1]:
                break
            assert time.monotonic() < deadline, "no frame from the restarted capture"
        assert decode_jpeg(jpeg).shape == (480, 640, 3)
        after = [(await client.next_frame())[0]["seq"] for _ in range(5)]
        assert after == sorted(after)
        client.conn.close()
        return restarted

    restarted = asyncio.run(scenario())
    for stage in (restarted, gateway):
        started = time.monotonic()
        assert stage.stop(signal.SIGTERM) == 0, stage.output()
        assert time.monotonic() - started < 2.0


def test_health_reports_stale_camera(start_stage: Callable[..., Stage], ports: Ports) -> None:
    gateway = start_stage("gateway")
    wait_for(lambda: http_status(ports.http, "/healthz") == 503, 15, "the gateway to answer 503 with no camera")
    status, _, body = http_get(ports.http, "/snapshot.jpg")
    assert status == 503 and "error" in json.loads(body)
    capture = start_stage("capture", "--source", "demo")
    wait_for(gateway_up(ports.http), 15, "healthz to turn 200")
    status, _, body = http_get(ports.http, "/healthz")
    cam = json.loads(body)["cameras"]["cam0"]
    assert cam["frame_age"] < 1.0 and cam["demo"] is True and cam["event_age"] is None
    assert capture.stop() == 0
    started = time.monotonic()
    wait_for(lambda: http_status(ports.http, "/healthz") == 503, 10, "healthz to turn 503 once frames stop")
    assert time.monotonic() - started > 4.0, "healthz turned stale before 5 s without frames"
    assert gateway.stop() == 0


def stalled_websocket(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads another byte."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /webcam HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    assert sock.recv(12) == b"HTTP/1.1 101"
    return sock


def test_a_stalled_client_does_not_slow_the_others(start_stage: Callable[..., Stage], ports: Ports) -> None:
    start_stage("gateway")
    start_stage("capture", "--source", "demo", "--fps", "15", "--width", "1280", "--height", "720")
    wait_for(gateway_up(ports.http), 15, "the gateway to serve frames")
    stalled = [stalled_websocket(ports.http) for _ in range(3)]

    async def count_frames(seconds: float) -> int:
        client = await LiveClient.connect(ports.http)
        await client.next_frame()
        deadline, count = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            await client.next_frame()
            count += 1
        client.conn.close()
        return count

    try:
        time.sleep(2.0)  # let the stalled clients' socket buffers fill up
        received = asyncio.run(count_frames(4.0))
    finally:
        for sock in stalled:
            sock.close()
    assert received >= 0.75 * 15 * 4, f"a reading client got only {received} frames in 4 s at 15 fps"
