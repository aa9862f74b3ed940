"""The encoder stage between a demo capture and subscribers of its H.264 tracks, as real processes.

A subscription is the request for a track: nothing is encoded while nobody subscribes, a
subscriber gets a key frame within a second and then a track FFmpeg decodes, subscribing again
forces a key frame, the encoder stops after the last subscriber left, and a subscriber still
there gets a key frame soon after the encoder was killed and restarted.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator

import av
import pytest
import zmq

from pipeline.protocol import STAGE_PREFIX, Heartbeat, Video, stage_topic, video_topic
from tests.support.bus import collect
from tests.support.ports import free_port
from tests.support.stages import Stage
from tests.support.waiting import wait_for

TOPIC = video_topic("cam0")


class Bus:
    """One viewer of the encoder's video socket and one listener to its heartbeats."""

    def __init__(self, endpoint: str) -> None:
        self._ctx = zmq.Context()
        self.viewer = self._ctx.socket(zmq.SUB)
        self.watcher = self._ctx.socket(zmq.SUB)
        for sock in (self.viewer, self.watcher):
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
        self.watcher.setsockopt(zmq.SUBSCRIBE, stage_topic())  # a heartbeat listener asks for no track

    def videos(self, seconds: float) -> list[Video]:
        """The track messages that arrive within ``seconds``."""
        found: list[Video] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.viewer.poll(max(1, round(left * 1000))):
                found.append(Video.decode(self.viewer.recv_multipart()))
        return found

    def key_frame(self, timeout: float) -> tuple[Video, float]:
        """The next key frame and how long it took to come; AssertionError after ``timeout``."""
        started = time.monotonic()
        while (left := started + timeout - time.monotonic()) > 0:
            if self.viewer.poll(max(1, round(left * 1000))):
                video = Video.decode(self.viewer.recv_multipart())
                if video.key:
                    return video, time.monotonic() - started
        raise AssertionError(f"no key frame within {timeout} s")

    def counters(self, timeout: float = 5.0) -> dict[str, int]:
        """The counters of the encoder's next heartbeat, the ones queued before now skipped."""
        while self.watcher.poll(0):
            self.watcher.recv_multipart()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if self.watcher.poll(max(1, round(left * 1000))):
                parts = self.watcher.recv_multipart()
                if parts[0].startswith(STAGE_PREFIX):
                    return Heartbeat.decode(parts).counters
        raise AssertionError(f"no heartbeat of the encoder within {timeout} s")

    def close(self) -> None:
        self.viewer.close()
        self.watcher.close()
        self._ctx.term()


@pytest.fixture
def video_endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture
def bus(video_endpoint: str) -> Iterator[Bus]:
    bus = Bus(video_endpoint)
    yield bus
    bus.close()


def start_encoder(start_stage: Callable[..., Stage], endpoint: str) -> Stage:
    encoder = start_stage("encoder", CAMSERVER_VIDEO=endpoint)
    wait_for(lambda: "encoding frames from" in encoder.output(), 15, "the encoder to start")
    return encoder


def pictures(videos: list[Video]) -> list[tuple[int, int]]:
    """The sizes of the pictures FFmpeg's h264 decoder makes of the track's access units, in order."""
    decoder = av.CodecContext.create("h264", "r")
    decoded = [picture for video in videos for picture in decoder.decode(av.Packet(video.data))]
    return [(picture.width, picture.height) for picture in decoded + decoder.decode(None)]


def test_a_track_is_encoded_while_subscribed_and_stops_after(start_stage, ports, bus, video_endpoint):
    start_stage("capture", "--source", "demo")
    encoder = start_encoder(start_stage, video_endpoint)
    assert collect(ports.frames, until=bool, timeout=10), "capture publishes no frames"
    idle = [bus.counters(), bus.counters()]  # two heartbeats, 2 s of frames apart, and no subscriber
    assert [counters["frames_encoded"] for counters in idle] == [0, 0], encoder.output()

    bus.viewer.setsockopt(zmq.SUBSCRIBE, TOPIC)
    first, waited = bus.key_frame(1.0)
    print(f"\nfirst key frame {waited * 1000:.0f} ms after subscribing")
    assert first.config and (first.width, first.height) == (640, 480)
    track = [first, *bus.videos(2.0)]
    assert [video.seq for video in track] == list(range(first.seq, first.seq + len(track)))
    assert pictures(track) == [(640, 480)] * len(track)

    bus.key_frame(3.0)  # just after a key frame on its own schedule, the next is 2 s away
    bus.viewer.setsockopt(zmq.SUBSCRIBE, TOPIC)
    _, waited = bus.key_frame(1.0)
    print(f"forced key frame {waited * 1000:.0f} ms after subscribing again")
    assert waited < 0.6
    assert bus.counters()["keyframes_forced"] >= 1

    bus.viewer.setsockopt(zmq.UNSUBSCRIBE, TOPIC)  # held twice: both go
    bus.viewer.setsockopt(zmq.UNSUBSCRIBE, TOPIC)
    left = time.monotonic()
    wait_for(lambda: bus.counters()["cameras_encoding"] == 0, 15, "the encoder to stop")
    print(f"encoder freed {time.monotonic() - left:.1f} s after the last unsubscription")
    stopped = bus.counters()["frames_encoded"]
    assert bus.counters()["frames_encoded"] == stopped
    assert "Traceback" not in encoder.output()
    assert encoder.stop() == 0


def test_a_subscriber_gets_a_key_frame_soon_after_the_encoder_restarts(start_stage, bus, video_endpoint):
    start_stage("capture", "--source", "demo")
    encoder = start_encoder(start_stage, video_endpoint)
    bus.viewer.setsockopt(zmq.SUBSCRIBE, TOPIC)
    bus.key_frame(2.0)

    encoder.stop(signal.SIGKILL)
    restarted = time.monotonic()
    start_stage("encoder", CAMSERVER_VIDEO=video_endpoint)
    again, _ = bus.key_frame(10.0)
    took = time.monotonic() - restarted
    print(f"\nkey frame {took:.2f} s after restarting the encoder (its start-up included)")
    assert took < 3.0
    assert again.seq == 0  # a new track
