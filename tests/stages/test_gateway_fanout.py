"""The gateway's fan-out: every viewer gets capture's bytes as they were, slow ones never hold back the others.

Two kinds of test: the real processes (demo capture at 1280x720, gateway) with a ZeroMQ SUB that
records what capture published, and the gateway's application in this process on a free port, fed
frames by hand, where what happens per frame can be counted.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq

from pipeline.bus.sockets import subscriber
from pipeline.protocol import Frame, frame_topic
from pipeline.web import wire
from tests.support.ports import Ports
from tests.support.stages import Stage
from tests.support.waiting import wait_for
from tests.support.web import LiveClient, RawReader, gateway_app, gateway_up, raw_connection, websocket_request


class Published:
    """Every frame capture publishes, by seq, as a ZeroMQ SUB of its own receives it."""

    def __init__(self, endpoint: str) -> None:
        self.jpegs: dict[int, bytes] = {}
        self._stop = threading.Event()
        self._ctx = zmq.Context()
        self._sock = subscriber(self._ctx, [endpoint], [frame_topic()], 1000)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._sock.poll(50):
                frame = Frame.decode(self._sock.recv_multipart())
                self.jpegs[frame.seq] = frame.jpeg

    def newest(self) -> int:
        return max(self.jpegs, default=-1)

    def jpeg(self, seq: int) -> bytes:
        """Frame ``seq`` as capture published it; the gateway may hand it to a viewer before this SUB has it."""
        wait_for(lambda: seq in self.jpegs, 5, f"the test's SUB to receive frame {seq}")
        return self.jpegs[seq]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        self._ctx.term()


@pytest.fixture
def published(ports: Ports) -> Iterator[Published]:
    sub = Published(ports.frames)
    yield sub
    sub.close()


def mjpeg_request(port: int, version: str = "1.1") -> bytes:
    return f"GET /stream.mjpg HTTP/{version}\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()





def mjpeg_frames(port: int, count: int) -> list[tuple[int, bytes]]:
    """(seq, JPEG) of ``count`` parts read by http.client, which undoes HTTP/1.1 chunking itself."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/stream.mjpg")
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Transfer-Encoding") == "chunked"
    frames = []
    while len(frames) < count:
        assert response.readline() == f"--{wire.MJPEG_BOUNDARY}\r\n".encode()
        headers = {}
        while (line := response.readline().rstrip()) != b"":
            key, value = line.decode().split(":", 1)
            headers[key.lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        frames.append((int(headers["x-camserver-seq"]), response.read(int(headers["content-length"]))))
        assert response.readline() == b"\r\n"
    conn.close()
    return frames


def check_frames(frames: list[tuple[int, bytes]], published: Published, first_seq: int) -> None:
    """New frames in order, each byte for byte a JPEG capture published."""
    seqs = [seq for seq, _ in frames]
    assert seqs == sorted(set(seqs)), f"frames out of order or repeated: {seqs}"
    compared = [(seq, jpeg) for seq, jpeg in frames if seq >= first_seq]
    assert len(compared) >= len(frames) - 1, "the SUB missed frames the viewer got"
    for seq, jpeg in compared:
        assert jpeg == published.jpeg(seq), f"frame {seq} differs from what capture published"


def test_stalled_viewers_do_not_hold_back_the_others_who_get_capture_bytes_exactly(
        start_stage: Callable[..., Stage], ports: Ports, published: Published) -> None:
    start_stage("gateway", CAMSERVER_MAX_VIEWERS_PER_CLIENT="20")
    start_stage("capture", "--source", "demo", "--fps", "15", "--width", "1280", "--height", "720")
    wait_for(gateway_up(ports.http), 20, "the gateway to serve frames")
    wait_for(lambda: len(published.jpegs) >= 3, 10, "the SUB to receive frames")
    first_seq = published.newest() + 1
    stalled = [raw_connection(ports.http, websocket_request(ports.http, "/webcam")) for _ in range(4)]
    stalled += [raw_connection(ports.http, mjpeg_request(ports.http)) for _ in range(2)]

    async def watch() -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
        await asyncio.sleep(2.0)  # the stalled sockets' buffers fill up meanwhile
        mjpeg = asyncio.create_task(asyncio.to_thread(mjpeg_frames, ports.http, 30))
        client = await LiveClient.connect(ports.http)
        websocket = []
        for _ in range(30):
            meta, jpeg = await client.next_frame()
            websocket.append((meta["seq"], jpeg))
        client.conn.close()
        return websocket, await asyncio.wait_for(mjpeg, 30)

    try:
        websocket, mjpeg = asyncio.run(watch())
    finally:
        for sock in stalled:
            sock.close()
    check_frames(websocket, published, first_seq)
    check_frames(mjpeg, published, first_seq)


def test_a_viewer_that_reads_again_gets_the_newest_frame_not_a_backlog(
        start_stage: Callable[..., Stage], ports: Ports, published: Published) -> None:
    start_stage("gateway")
    start_stage("capture", "--source", "demo", "--fps", "15", "--width", "1280", "--height", "720")
    wait_for(gateway_up(ports.http), 20, "the gateway to serve frames")
    wait_for(lambda: len(published.jpegs) >= 3, 10, "the SUB to receive frames")
    websocket = RawReader(raw_connection(ports.http, websocket_request(ports.http, "/webcam")))
    mjpeg = RawReader(raw_connection(ports.http, mjpeg_request(ports.http, "1.0")))
    try:
        for reader in (websocket, mjpeg):
            assert reader.until(b"\r\n\r\n").split(b" ", 2)[1] in (b"101", b"200")
        stalled_from = published.newest()
        time.sleep(3.0)
        resumed_at = published.newest()
        assert resumed_at - stalled_from >= 30, "capture did not publish during the stall"
        websocket_seqs = _seqs_until_fresh(websocket.websocket_frames(), resumed_at, published)
        mjpeg_seqs = _seqs_until_fresh(((int(h["X-Camserver-Seq"]), j) for h, j in mjpeg.mjpeg_parts()), resumed_at,
                                       published)
    finally:
        websocket.sock.close()
        mjpeg.sock.close()
    # What was on its way when the client stopped reading may still come; the 45 frames since must not.
    assert len(websocket_seqs) <= 3, f"stale frames queued for a stalled WebSocket viewer: {websocket_seqs}"
    assert len(mjpeg_seqs) <= 3, f"stale frames queued for a stalled MJPEG viewer: {mjpeg_seqs}"


def _seqs_until_fresh(frames: Iterator[tuple[int, bytes]], fresh_from: int, published: Published) -> list[int]:
    """The seqs of the stale frames a resumed viewer reads before the first one published since it resumed
    (give or take the one the gateway got a moment before the SUB); every JPEG checked against capture's."""
    stale = []
    for seq, jpeg in frames:
        assert jpeg == published.jpeg(seq)
        if seq >= fresh_from - 1:
            return stale
        stale.append(seq)
        assert len(stale) < 40, "the resumed viewer is reading the whole backlog"
    raise AssertionError("the stream ended")


class CountingWire:
    """Counts how often each kind of frame message is made, by wrapping wire.py's encoders."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made: dict[str, int] = {"websocket_frame": 0, "mjpeg_chunk": 0}
        for name in self.made:
            monkeypatch.setattr(wire, name, self._counted(name, getattr(wire, name)))

    def _counted(self, name: str, encode: Callable[[Frame], bytes]) -> Callable[[Frame], bytes]:
        def counted(frame: Frame) -> bytes:
            self.made[name] += 1
            return encode(frame)

        return counted


def test_each_frame_is_made_once_for_all_viewers_and_every_message_size_is_framed_right(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Payloads of each WebSocket length form (7-bit, 16-bit, 64-bit) reach 5 WebSocket and 3 MJPEG
    viewers byte for byte, and each frame's messages are made once, not once per viewer."""
    wire = CountingWire(monkeypatch)
    jpegs = [b"\xff\xd8" + os.urandom(size) + b"\xff\xd9" for size in (10, 120, 124, 1000, 65531, 65532, 300_000)]

    async def scenario() -> tuple[list[list[bytes]], list[list[bytes]]]:
        with gateway_app(tmp_path, viewers_per_client=20) as (hub, port):
            sockets = [await LiveClient.connect(port) for _ in range(5)]
            streams = [await asyncio.to_thread(_open_mjpeg, port) for _ in range(3)]
            await asyncio.sleep(0.2)
            websocket_got: list[list[bytes]] = [[] for _ in sockets]
            mjpeg_got: list[list[bytes]] = [[] for _ in streams]
            for seq, jpeg in enumerate(jpegs):
                hub.publish_frame(Frame("cam0", seq, time.time(), 64, 48, False, jpeg))
                for client, got in zip(sockets, websocket_got, strict=True):
                    meta, data = await client.next_frame()
                    assert meta["seq"] == seq
                    got.append(data)
                for response, got in zip(streams, mjpeg_got, strict=True):
                    got.append(await asyncio.to_thread(_read_part, response))
            for client in sockets:
                client.conn.close()
            hub.close()
            return websocket_got, mjpeg_got

    websocket_got, mjpeg_got = asyncio.run(scenario())
    assert all(got == jpegs for got in websocket_got)
    assert all(got == jpegs for got in mjpeg_got)
    assert wire.made == {"websocket_frame": len(jpegs), "mjpeg_chunk": len(jpegs)}


def _open_mjpeg(port: int) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/stream.mjpg")
    response = conn.getresponse()
    assert response.status == 200
    return response


def _read_part(response: http.client.HTTPResponse) -> bytes:
    assert response.readline() == f"--{wire.MJPEG_BOUNDARY}\r\n".encode()
    headers = {}
    while (line := response.readline().rstrip()) != b"":
        key, value = line.decode().split(":", 1)
        headers[key.lower()] = value.strip()
    jpeg = response.read(int(headers["content-length"]))
    assert response.readline() == b"\r\n"
    return jpeg


def test_an_http_1_0_mjpeg_client_gets_plain_parts_and_the_gateway_stops_cleanly(tmp_path: Path) -> None:
    """HTTP/1.0 knows no chunked encoding: the parts come as they are, and the stream ends at the close."""
    jpegs = [b"\xff\xd8" + bytes([n]) * 5000 + b"\xff\xd9" for n in range(3)]

    async def scenario() -> tuple[bytes, list[bytes], bytes]:
        with gateway_app(tmp_path) as (hub, port):
            reader = RawReader(await asyncio.to_thread(raw_connection, port, mjpeg_request(port, "1.0")))
            try:
                head = await asyncio.to_thread(reader.until, b"\r\n\r\n")
                await asyncio.sleep(0.1)
                got = []
                parts = reader.mjpeg_parts()
                for seq, jpeg in enumerate(jpegs):
                    hub.publish_frame(Frame("cam0", seq, time.time(), 64, 48, False, jpeg))
                    got.append((await asyncio.to_thread(next, parts))[1])
                hub.close()  # as the gateway does when it stops: the stream ends
                rest = await asyncio.to_thread(reader.sock.recv, 100)
                return head, got, rest
            finally:
                reader.sock.close()

    head, got, rest = asyncio.run(scenario())
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" not in head.lower()
    assert got == jpegs
    assert rest == b""


def test_a_websocket_viewer_is_closed_with_1001_when_the_gateway_stops(tmp_path: Path) -> None:
    async def scenario() -> int | None:
        with gateway_app(tmp_path) as (hub, port):
            client = await LiveClient.connect(port)
            hub.publish_frame(Frame("cam0", 0, time.time(), 64, 48, False, b"\xff\xd8\xff\xd9"))
            await client.next_frame()
            hub.close()
            while await asyncio.wait_for(client.conn.read_message(), 5) is not None:
                pass
            return client.conn.close_code

    assert asyncio.run(scenario()) == 1001

