"""Every web route with ?camera=, against a real gateway fed by two real capture processes (issue 12).

Camera "a" is 320x240 and camera "b" 160x120, each its own ``python -m pipeline.capture`` on its own
endpoint, the gateway subscribed to both; a third camera, "old", has recordings but no capture. What
a client asks of one camera it gets of that camera: the snapshot's and the streams' pictures have
that camera's size, the status and health are that camera's, a recording or file of another camera
is refused as if it did not exist, and the page of tiles' WebSocket stops sending a camera's frames
once told to.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import tornado.websocket

from tests.support.media import decode_jpeg
from tests.support.ports import Ports, free_port
from tests.support.recordings import prepare
from tests.support.stages import Stage
from tests.support.waiting import wait_for
from tests.support.web import http_get, request

SHAPES = {"a": (240, 320, 3), "b": (120, 160, 3)}


def snapshot_of(port: int, camera: str) -> tuple[int, ...] | None:
    try:
        status, headers, body = http_get(port, f"/snapshot.jpg?camera={camera}")
    except OSError:  # not listening yet
        return None
    if status != 200:
        return None
    assert headers["X-Camserver-Camera"] == camera
    return decode_jpeg(body).shape


def mjpeg_shapes(port: int, path: str, count: int) -> list[tuple[int, ...]]:
    """The picture sizes of the first ``count`` parts of an MJPEG stream."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    assert response.status == 200
    shapes = []
    while len(shapes) < count:
        assert response.readline().startswith(b"--")
        length = 0
        while (line := response.readline().rstrip()) != b"":
            key, value = line.decode().split(":", 1)
            if key.lower() == "content-length":
                length = int(value)
        shapes.append(decode_jpeg(response.read(length)).shape)
        assert response.readline() == b"\r\n"
    conn.close()
    return shapes


class Socket:
    """A WebSocket client of /webcam that keeps every message with its arrival time, read by a task of its own."""

    def __init__(self, conn: tornado.websocket.WebSocketClientConnection) -> None:
        self.conn = conn
        self.messages: list[tuple[float, str | bytes]] = []
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, port: int, query: str) -> Socket:
        return cls(await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/webcam?{query}"))

    async def _read(self) -> None:
        while (message := await self.conn.read_message()) is not None:
            self.messages.append((time.monotonic(), message))

    def frames(self, since: float = 0.0) -> list[tuple[dict, tuple[int, ...]]]:
        """(description, picture shape) of each frame that arrived after ``since``."""
        found, meta = [], None
        for at, message in list(self.messages):
            if isinstance(message, bytes):
                if at > since:
                    found.append((meta, decode_jpeg(message).shape))
            else:
                parsed = json.loads(message)
                if parsed["type"] == "frame":
                    meta = parsed
        return found

    def texts(self, kind: str) -> list[dict]:
        return [m for _, raw in list(self.messages) if isinstance(raw, str) and (m := json.loads(raw))["type"] == kind]

    async def send(self, kind: str, camera: str) -> float:
        await self.conn.write_message(json.dumps({"type": kind, "camera": camera}))
        return time.monotonic()

    def close(self) -> None:
        self.conn.close()
        self.reader.cancel()


async def until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.05)


def viewers(port: int) -> dict[str, int]:
    return {name: cam["viewers"] for name, cam in request(port, "GET", "/api/status")[1]["cameras"].items()}


async def one_camera_socket(port: int) -> None:
    sock = await Socket.open(port, "camera=b")
    await until(lambda: len(sock.frames()) >= 3, 10, "three frames of b")
    assert {(meta["camera"], shape) for meta, shape in sock.frames()} == {("b", SHAPES["b"])}
    assert sock.texts("status")[0]["camera"] == "b" and sock.texts("status")[0]["w"] == 160
    sock.close()


async def tiles_socket(port: int) -> None:
    """The page's kind of socket: both cameras, then one, then none while it stays open, then one again."""
    sock = await Socket.open(port, "watch=a,b")
    await until(lambda: {meta["camera"] for meta, _ in sock.frames()} == {"a", "b"}, 10, "frames of a and b")
    assert all(shape == SHAPES[meta["camera"]] for meta, shape in sock.frames())
    cameras = sock.texts("cameras")[0]["cameras"]
    assert set(cameras) == {"a", "b"} and (cameras["b"]["w"], cameras["b"]["h"]) == (160, 120)
    assert await asyncio.to_thread(viewers, port) == {"a": 1, "b": 1}

    paused = await sock.send("unwatch", "b")
    await asyncio.sleep(2.0)  # ten frames of each camera at 5 fps
    after = sock.frames(since=paused + 0.2)  # a frame already written to the socket may still arrive
    assert len(after) >= 5 and {meta["camera"] for meta, _ in after} == {"a"}, [m["camera"] for m, _ in after]
    assert await asyncio.to_thread(viewers, port) == {"a": 1, "b": 0}

    paused = await sock.send("unwatch", "a")
    statuses = len(sock.texts("cameras"))
    await asyncio.sleep(2.0)
    assert sock.frames(since=paused + 0.2) == [], "frames kept coming with no camera watched"
    assert len(sock.texts("cameras")) >= statuses + 1, "the socket went quiet altogether, not just its frames"
    assert await asyncio.to_thread(viewers, port) == {"a": 0, "b": 0}

    resumed = await sock.send("watch", "b")
    await until(lambda: sock.frames(since=resumed), 2, "b's newest frame at once on watching it again")
    assert {meta["camera"] for meta, _ in sock.frames(since=resumed)} == {"b"}
    sock.close()

    scoped = await Socket.open(port, "camera=a&watch=a")
    await until(lambda: len(scoped.frames()) >= 2, 10, "frames of a on a socket kept to a")
    await scoped.send("watch", "b")
    await until(lambda: scoped.reader.done(), 5, "the socket kept to a to close when asked for b")
    assert scoped.conn.close_code == 1008
    assert {meta["camera"] for meta, _ in scoped.frames()} == {"a"}


def handshake_status(port: int, query: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", f"/webcam?{query}", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                                      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                                      "Sec-WebSocket-Version": "13"})
    status = conn.getresponse().status
    conn.close()
    return status


def test_each_route_answers_for_the_camera_it_names(start_stage: Callable[..., Stage], ports: Ports) -> None:
    day = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    of_a = prepare(ports, [day + 60 * i for i in range(2)], camera="a")
    of_b = prepare(ports, [day + 30 + 60 * i for i in range(2)], camera="b")
    of_old = prepare(ports, [day + 200], camera="old")
    b_frames = f"tcp://127.0.0.1:{free_port()}"
    start_stage("gateway", "--frames", f"{ports.frames},{b_frames}")
    start_stage("capture", "--source", "demo", "--camera", "a", "--frames", ports.frames,
                "--width", "320", "--height", "240", "--fps", "5")
    capture_b = start_stage("capture", "--source", "demo", "--camera", "b", "--frames", b_frames,
                            "--width", "160", "--height", "120", "--fps", "5", "--seed", "2")
    port = ports.http
    for camera, shape in SHAPES.items():
        wait_for(lambda c=camera, s=shape: snapshot_of(port, c) == s, 20, f"{camera}'s snapshot")

    # live: the streams and the status of the camera named
    assert mjpeg_shapes(port, "/stream.mjpg?camera=b", 3) == [SHAPES["b"]] * 3
    assert mjpeg_shapes(port, "/stream.mjpg?camera=a", 3) == [SHAPES["a"]] * 3
    asyncio.run(one_camera_socket(port))
    asyncio.run(tiles_socket(port))
    status, body = request(port, "GET", "/api/status?camera=b")
    assert status == 200 and set(body["cameras"]) == {"b"} and body["cameras"]["b"]["w"] == 160
    assert body["stages"]["capture"]["ok"] and "disk" in body
    status, body = request(port, "GET", "/healthz?camera=a")
    assert status == 200 and body["status"] == "ok" and set(body["cameras"]) == {"a"}

    # recordings: the camera's own, and another camera's refused as if missing
    status, body = request(port, "GET", "/api/recordings?camera=a")
    assert status == 200 and [r["name"] for r in body["recordings"]] == of_a[::-1]
    assert body["recordings"][0]["video_url"] == f"/recordings/{of_a[-1]}.mp4?camera=a"
    assert body["recordings"][0]["thumbnail_url"] == f"/recordings/{of_a[-1]}.jpg?camera=a"
    status, body = request(port, "GET", "/api/recordings?camera=old")
    assert status == 200 and [r["name"] for r in body["recordings"]] == of_old, "a camera known by its recordings"
    status, body = request(port, "GET", "/api/recordings")
    assert len(body["recordings"]) == 5
    assert request(port, "GET", f"/api/recordings/{of_a[0]}?camera=a")[0] == 200
    status, body = request(port, "GET", f"/api/recordings/{of_a[0]}?camera=b")
    assert status == 404 and of_a[0] in body["error"]
    for suffix in (".mp4", ".jpg"):
        assert http_get(port, f"/recordings/{of_a[0]}{suffix}?camera=a")[0] == 200
        assert http_get(port, f"/recordings/{of_a[0]}{suffix}?camera=b")[0] == 404
        assert http_get(port, f"/recordings/{of_b[0]}{suffix}?camera=b")[0] == 200
    assert request(port, "DELETE", f"/api/recordings/{of_a[0]}?camera=b")[0] == 404
    assert sorted(p.suffix for p in ports.recordings.glob(f"{of_a[0]}*")) == [".jpg", ".json", ".mp4"]
    assert request(port, "DELETE", f"/api/recordings/{of_a[0]}?camera=a") == (200, {"deleted": of_a[0]})

    # an unknown camera is 404 where an answer is due now, an impossible id 400 everywhere
    for path in ("/snapshot.jpg", "/api/status", "/healthz", "/api/recordings"):
        status, body = request(port, "GET", f"{path}?camera=zz")
        assert status == 404 and "zz" in body["error"], (path, status, body)
    for path in ("/snapshot.jpg", "/stream.mjpg", "/api/status", "/healthz", "/api/recordings",
                 f"/api/recordings/{of_b[0]}", "/"):
        status, _, body = http_get(port, f"{path}?camera=no%20such%20id")
        assert status == 400 and "camera" in json.loads(body)["error"], path
    assert http_get(port, f"/recordings/{of_b[0]}.mp4?camera=..")[0] == 400
    assert handshake_status(port, "camera=bad%20id") == 400
    assert handshake_status(port, "watch=a,bad%20id") == 400
    assert handshake_status(port, "camera=a&watch=b") == 400
    assert http_get(port, "/?camera=zz")[0] == 200, "the page of a camera not seen yet waits for it"

    # one camera's health is its own
    assert capture_b.stop() == 0
    wait_for(lambda: request(port, "GET", "/healthz?camera=b")[0] == 503, 10, "b's health to turn 503")
    assert request(port, "GET", "/healthz?camera=a")[0] == 200
    assert request(port, "GET", "/healthz")[0] == 503, "the whole gateway's health counts every camera"
    status, body = request(port, "GET", "/snapshot.jpg?camera=b")
    assert status == 503 and "offline" in body["error"]
