"""Clients of the gateway, as a user's tools and pages are: HTTP requests, the live WebSocket, the API.

Also the gateway's web app run inside the test process (``gateway_app``), for tests that feed its
hub by hand and count what happens per frame.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import tornado.websocket

from pipeline.bus.sockets import Decoder
from pipeline.config.options import Config
from pipeline.record.library import Library
from pipeline.web import app as web_app
from pipeline.web.hub import Hub
from tests.support.media import decode_jpeg
from tests.support.ports import free_port
from tests.support.waiting import wait_for


def http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def http_status(port: int, path: str) -> int | None:
    """The status of a GET, or None when the gateway does not answer at all."""
    try:
        return http_get(port, path)[0]
    except OSError:
        return None


def request(port: int, method: str, path: str) -> tuple[int, dict]:
    """One API request: its status and its JSON body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path)
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def gateway_up(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return http_get(port, "/healthz")[0] == 200
        except OSError:
            return False

    return check


def gateway_listening(port: int) -> Callable[[], bool]:
    """True once the gateway answers at all, with or without a camera (healthz 200 or 503)."""

    def check() -> bool:
        return http_status(port, "/healthz") in (200, 503)

    return check


class LiveClient:
    """A WebSocket client of /webcam that pairs each frame description with its JPEG."""

    def __init__(self, conn: tornado.websocket.WebSocketClientConnection) -> None:
        self.conn = conn
        self.statuses: list[dict] = []

    @classmethod
    async def connect(cls, port: int) -> LiveClient:
        return cls(await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/webcam"))

    async def next_frame(self, timeout: float = 10.0) -> tuple[dict, bytes]:
        meta: dict | None = None
        while True:
            message = await asyncio.wait_for(self.conn.read_message(), timeout)
            assert message is not None, "the gateway closed the WebSocket"
            if isinstance(message, bytes):
                assert meta is not None, "a binary frame arrived without its description"
                return meta, message
            parsed = json.loads(message)
            if parsed["type"] == "frame":
                meta = parsed
            elif parsed["type"] == "status":
                self.statuses.append(parsed)


@contextmanager
def gateway_app(folder: Path, viewers_per_client: int = 8) -> Iterator[tuple[Hub, int]]:
    """The gateway's web app on a free loopback port in this event loop, its hub fed by the test instead of ZeroMQ."""
    hub = Hub()
    app = web_app.make_app(hub, Library(folder), web_app.make_guard(Config()), viewers_per_client,
                           Decoder(logging.getLogger(__name__)))
    port = free_port()
    server = app.listen(port, "127.0.0.1")
    try:
        yield hub, port
    finally:
        server.stop()


def snapshot_shape(port: int, camera: str) -> tuple[int, ...] | None:
    """The shape of ``camera``'s snapshot, or None while the gateway has none of that camera."""
    try:
        status, headers, body = http_get(port, f"/snapshot.jpg?camera={camera}")
    except OSError:
        return None
    if status != 200 or headers.get("X-Camserver-Camera") != camera:
        return None
    return decode_jpeg(body).shape


def recordings_of(port: int, camera: str) -> list[dict]:
    status, _, body = http_get(port, f"/api/recordings?camera={camera}")
    return json.loads(body)["recordings"] if status == 200 else []


def assert_one_recording_each(port: int, cameras: list[str], recordings: Path, timeout: float) -> None:
    """Every camera's visit saved as its own recording, whose sidecar and video name that camera."""
    wait_for(lambda: all(recordings_of(port, camera) for camera in cameras), timeout,
             f"a recording of each of {cameras}")
    for camera in cameras:
        for recording in recordings_of(port, camera):
            assert recording["camera"] == camera
            status, _, video = http_get(port, recording["video_url"])
            assert status == 200 and video[4:8] == b"ftyp" and len(video) > 1000, recording
            assert any(path.name.endswith(f"_{camera}.mp4") for path in recordings.iterdir())


# Raw clients: a socket with a tiny receive buffer that reads only when the test says, as a stalled
# or throttled viewer does.
STALLED_RCVBUF = 4096


def raw_connection(port: int, request: bytes) -> socket.socket:
    """A client with a tiny receive buffer that sends its request and reads nothing yet."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(request)
    return sock


def websocket_request(port: int, path: str) -> bytes:
    """The opening handshake of a WebSocket to ``path``, as a client that reads when it chooses sends it."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


class RawReader:
    """Reads exact byte counts and lines from a raw socket, for clients that choose when to read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = bytearray()

    def exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            data = self.sock.recv(65536)
            assert data, "the gateway closed the connection"
            self._buffer += data
        taken = bytes(self._buffer[:count])
        del self._buffer[:count]
        return taken

    def until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            data = self.sock.recv(65536)
            assert data, "the gateway closed the connection"
            self._buffer += data
        end = self._buffer.index(marker) + len(marker)
        taken = bytes(self._buffer[:end])
        del self._buffer[:end]
        return taken

    def websocket_message(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next whole WebSocket frame a server sent (unmasked)."""
        first, second = self.exactly(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(self.exactly(2), "big")
        elif length == 127:
            length = int.from_bytes(self.exactly(8), "big")
        return first & 0x0F, self.exactly(length)

    def websocket_frames(self) -> Iterator[tuple[int, bytes]]:
        """(seq, JPEG) of each frame as it comes, past the handshake's response."""
        seq = None
        while True:
            opcode, payload = self.websocket_message()
            if opcode == 0x1:
                message = json.loads(payload)
                seq = message["seq"] if message["type"] == "frame" else seq
            elif opcode == 0x2:
                assert seq is not None, "a JPEG without its description"
                yield seq, payload

    def mjpeg_parts(self) -> Iterator[tuple[dict[str, str], bytes]]:
        """(headers, JPEG) of each part of a multipart stream that is not chunked."""
        while True:
            head = self.until(b"\r\n\r\n").decode().strip()
            headers = dict(line.split(": ", 1) for line in head.splitlines()[1:])
            yield headers, self.exactly(int(headers["Content-Length"]))
            assert self.exactly(2) == b"\r\n"
