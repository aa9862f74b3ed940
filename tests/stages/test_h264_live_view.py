"""The gateway's H.264 live view, as a go2rtc client sees it: MSE handshake, init segment, playable fragments.

The real gateway process runs on free ports; the test stands in for the encoder stage: it binds
the video endpoint as an XPUB (as the encoder does), watches the gateway's subscriptions come and
go, and publishes what pipeline.video.h264.CameraEncoder makes of demo-scene JPEGs, forcing a key
frame whenever the gateway asks for one. What the WebSocket client receives is decoded with PyAV.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import Callable, Iterator

import av
import cv2
import pytest
import tornado.websocket
import zmq

from pipeline.protocol import Frame, video_topic
from pipeline.video.demo import DemoScene
from pipeline.video.h264 import CameraEncoder
from tests.support.ports import Ports
from tests.support.stages import Stage
from tests.support.waiting import wait_for
from tests.support.web import gateway_listening

W, H, FPS = 320, 240, 10
CODECS = "avc1.640029,avc1.64002A,avc1.4D4029,avc1.42E01E,hvc1.1.6.L153.B0,mp4a.40.2,opus"


class FakeEncoderStage:
    """The encoder's side of the bus: an XPUB that hears requests, and a camera's track published on demand."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.sock.bind(endpoint)
        self.requests: list[bytes] = []
        self.scene = DemoScene(W, H, seed=3)
        self.encoder = CameraEncoder("cam0")
        self.seq = 0

    def hear(self, timeout_s: float = 0.0) -> list[bytes]:
        """Subscription messages since the last call: b"\\x01video.cam0" wants, b"\\x00video.cam0" lets go."""
        deadline = time.monotonic() + timeout_s
        while self.sock.poll(max(0, int((deadline - time.monotonic()) * 1000))):
            request = self.sock.recv()
            self.requests.append(request)
            if request == b"\x01" + video_topic("cam0"):
                self.encoder.request_key()
        return self.requests

    def publish(self, count: int) -> None:
        """``count`` frames of the demo scene through the real encoder onto the bus, at FPS."""
        for _ in range(count):
            self.hear()
            ts = time.time()
            ok, jpeg = cv2.imencode(".jpg", self.scene.render(self.seq / FPS, ts))
            assert ok
            for video in self.encoder.encode(Frame("cam0", self.seq, ts, W, H, True, jpeg.tobytes())):
                self.sock.send_multipart(video.encode())
            self.seq += 1
            time.sleep(1 / FPS)

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


@pytest.fixture
def encoder_stage(ports: Ports) -> Iterator[FakeEncoderStage]:
    stage = FakeEncoderStage(ports.video)
    yield stage
    stage.close()


class MseClient:
    """A go2rtc-style MSE client: sends the codecs it plays, keeps every message it gets."""

    def __init__(self, port: int, query: str = "src=cam0", codecs: str = CODECS) -> None:
        self.port, self.query, self.codecs = port, query, codecs
        self.texts: list[dict[str, object]] = []
        self.binaries: list[bytes] = []
        self.closed = False

    async def run(self, until: Callable[[MseClient], bool], timeout_s: float) -> None:
        conn = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{self.port}/api/ws?{self.query}")
        await conn.write_message(json.dumps({"type": "mse", "value": self.codecs}))
        deadline = time.monotonic() + timeout_s
        try:
            while not until(self) and time.monotonic() < deadline:
                try:
                    message = await asyncio.wait_for(conn.read_message(), deadline - time.monotonic())
                except TimeoutError:
                    return  # the test's assertions say what was missing
                if message is None:
                    self.closed = True
                    return
                if isinstance(message, bytes):
                    self.binaries.append(message)
                else:
                    self.texts.append(json.loads(message))
        finally:
            conn.close()


def decoded(binaries: list[bytes]) -> list[av.VideoFrame]:
    """The pictures of init segment + fragments, as a browser's MSE would get them, decoded by FFmpeg."""
    with av.open(io.BytesIO(b"".join(binaries)), format="mp4") as container:
        return list(container.decode(video=0))


def watching(client: MseClient, until: Callable[[MseClient], bool]) -> threading.Thread:
    """The client reading in an event loop of its own, while the test publishes frames from this thread."""
    thread = threading.Thread(target=lambda: asyncio.run(client.run(until, 20)), daemon=True)
    thread.start()
    return thread


def test_a_go2rtc_client_gets_the_codec_an_init_segment_and_playable_fragments(
        start_stage: Callable[..., Stage], ports: Ports, encoder_stage: FakeEncoderStage) -> None:
    stage = encoder_stage
    start_stage("gateway")
    wait_for(gateway_listening(ports.http), 15, "the gateway to listen")
    assert stage.hear(0.5) == [], "no track is wanted before a viewer"

    client = MseClient(ports.http)
    viewer = watching(client, lambda c: len(c.binaries) >= 21)
    stage.publish(25)
    viewer.join(20)

    assert b"\x01video.cam0" in stage.requests, "the viewer's gateway asked for the camera's track"
    assert client.texts[0]["type"] == "mse"
    assert str(client.texts[0]["value"]).startswith('video/mp4; codecs="avc1.')
    pictures = decoded(client.binaries)
    assert len(pictures) == len(client.binaries) - 1 >= 20, "every fragment is one picture"
    assert pictures[0].key_frame and (pictures[0].width, pictures[0].height) == (W, H)
    stage.hear(12)
    assert stage.requests[-1] == b"\x00video.cam0", "the track is let go when its last viewer leaves"


def test_a_second_viewer_asks_for_a_key_frame_and_starts_at_it(
        start_stage: Callable[..., Stage], ports: Ports, encoder_stage: FakeEncoderStage) -> None:
    stage = encoder_stage
    start_stage("gateway")
    wait_for(gateway_listening(ports.http), 15, "the gateway to listen")
    first, second = MseClient(ports.http), MseClient(ports.http)
    threads = [watching(first, lambda c: len(c.binaries) >= 40)]
    stage.publish(25)  # first is watching; the encoder's own key frames come every 2 s
    requests_before = len(stage.requests)
    threads.append(watching(second, lambda c: len(c.binaries) >= 16))
    stage.publish(25)
    for thread in threads:
        thread.join(20)
    assert b"\x01video.cam0" in stage.requests[requests_before:], "the joining viewer asked for a key frame"
    pictures = decoded(second.binaries)
    assert pictures[0].key_frame and len(pictures) >= 15, "the second viewer started at the key frame it asked for"


def test_a_client_that_plays_no_h264_is_told_so(
        start_stage: Callable[..., Stage], ports: Ports, encoder_stage: FakeEncoderStage) -> None:
    start_stage("gateway")
    wait_for(gateway_listening(ports.http), 15, "the gateway to listen")
    client = MseClient(ports.http, codecs="hvc1.1.6.L153.B0,opus")
    asyncio.run(client.run(lambda c: c.closed, 5))
    assert client.texts and client.texts[0]["type"] == "error" and client.closed
