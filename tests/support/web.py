"""Clients of the gateway, as a user's tools and pages are: HTTP requests, the live WebSocket, the API.

Also the gateway's web app run inside the test process (``gateway_app``), for tests that feed its
hub by hand and count what happens per frame.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
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
