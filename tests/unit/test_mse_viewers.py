"""The gateway's H.264 tracks and MSE viewers, driven message by message: demand, key frames, slow viewers.

The access units are real libx264 output from pipeline.video.h264.CameraEncoder; the viewers write
to a fake client socket that the test makes slow or fast.
"""

from __future__ import annotations

import json
from concurrent.futures import Future

import cv2

from pipeline.protocol import Frame, Video
from pipeline.video.demo import DemoScene
from pipeline.video.h264 import CameraEncoder
from pipeline.web.tracks import KEY_REQUEST_EVERY_S, MAX_BEHIND, MseViewer, Tracks, plays_h264
from pipeline.web.viewers import Ending
from tests.support.clock import FakeClock

W, H = 160, 120


def track(count: int, keys_at: tuple[int, ...] = (), size: tuple[int, int] = (W, H)) -> list[Video]:
    """``count`` access units of the demo scene, key frames at 0 and at ``keys_at``."""
    scene, encoder, out = DemoScene(*size, seed=1), CameraEncoder("cam0"), []
    for seq in range(count):
        if seq in keys_at:
            encoder.request_key()
        ok, jpeg = cv2.imencode(".jpg", scene.render(seq / 10, 1_700_000_000 + seq / 10))
        assert ok
        out += encoder.encode(Frame("cam0", seq, 1_700_000_000 + seq / 10, *size, True, jpeg.tobytes()))
    return out


class Demand:
    def __init__(self) -> None:
        self.said: list[tuple[str, str]] = []

    def want(self, camera: str) -> None:
        self.said.append(("want", camera))

    def release(self, camera: str) -> None:
        self.said.append(("release", camera))

    def key_frame(self, camera: str) -> None:
        self.said.append(("key", camera))


class Client:
    """A viewer's socket: slow ones keep their first write unfinished until ``take``."""

    def __init__(self, slow: bool = False) -> None:
        self.slow, self.sent, self.ended = slow, [], []
        self._unsent: list[Future[None]] = []

    def viewer(self) -> MseViewer:
        return MseViewer("cam0", self._write, self.ended.append)

    def _write(self, data: bytes) -> Future[None]:
        self.sent.append(data)
        written: Future[None] = Future()
        if self.slow:
            self._unsent.append(written)
        else:
            written.set_result(None)
        return written

    def take(self) -> None:
        unsent, self._unsent = self._unsent, []
        for written in unsent:
            written.set_result(None)

    def texts(self) -> list[dict[str, object]]:
        """The JSON messages sent, read back from their WebSocket frames (all short here)."""
        return [json.loads(data[2:]) for data in self.sent if data[0] == 0x81]

    def binaries(self) -> int:
        return sum(data[0] == 0x82 for data in self.sent)


def test_the_first_viewer_wants_the_track_and_the_last_one_lets_it_go() -> None:
    demand, clock = Demand(), FakeClock()
    tracks = Tracks(demand, clock)
    first, second = Client().viewer(), Client().viewer()
    tracks.join(first)
    clock.now += 1
    tracks.join(second)
    tracks.leave(first)
    tracks.leave(second)
    assert demand.said == [("want", "cam0"), ("key", "cam0"), ("release", "cam0")]


def test_a_viewer_gets_the_codec_and_init_then_every_fragment_from_a_key_frame_on() -> None:
    tracks, client = Tracks(Demand(), FakeClock()), Client()
    units = track(6)
    tracks.publish(units[0])  # nobody watching: nothing made
    tracks.join(client.viewer())
    for unit in units[1:]:  # joined between key frames: waits
        tracks.publish(unit)
    assert client.sent == []
    for unit in track(4):
        tracks.publish(unit)
    texts = client.texts()
    assert texts[0]["type"] == "mse" and str(texts[0]["value"]).startswith('video/mp4; codecs="avc1.')
    assert client.binaries() == 1 + 4, "the init segment, then one fragment per access unit"


def test_a_viewer_that_falls_behind_skips_to_the_next_key_frame_and_is_told_how_many_it_missed() -> None:
    demand, clock = Demand(), FakeClock()
    tracks, slow, fast = Tracks(demand, clock), Client(slow=True), Client()
    tracks.join(slow.viewer())
    tracks.join(fast.viewer())
    units = track(MAX_BEHIND + 10, keys_at=(MAX_BEHIND + 5,))
    for unit in units:
        clock.now += 0.1
        tracks.publish(unit)
    assert demand.said == [("want", "cam0"), ("key", "cam0")], "the dropped viewer asked for a key frame"
    assert fast.binaries() == 1 + len(units), "the fast viewer got everything"
    slow.take()
    drops = [text for text in slow.texts() if text["type"] == "drop"]
    assert len(drops) == 1 and drops[0]["frames"] >= MAX_BEHIND - 5
    assert slow.binaries() <= MAX_BEHIND + 1 + 1 + 5, "never more than about one GOP queued for a slow viewer"


def test_key_frame_requests_are_rate_limited_per_camera() -> None:
    demand, clock = Demand(), FakeClock()
    tracks = Tracks(demand, clock)
    tracks.join(Client().viewer())
    for _ in range(5):
        clock.now += KEY_REQUEST_EVERY_S / 4
        tracks.join(Client().viewer())
    assert demand.said.count(("key", "cam0")) == 1


def test_only_a_client_that_lists_h264_is_served() -> None:
    assert plays_h264("avc1.640029,avc1.64002A,hvc1.1.6.L153.B0,opus")
    assert not plays_h264("hvc1.1.6.L153.B0,opus") and not plays_h264(None) and not plays_h264("")


def test_closing_the_tracks_ends_every_viewer() -> None:
    tracks, client = Tracks(Demand(), FakeClock()), Client()
    viewer = client.viewer()
    tracks.join(viewer)
    tracks.close()
    assert viewer.closed and client.ended == ["closed"]


def test_an_ended_viewer_takes_nothing() -> None:
    client = Client()
    viewer = client.viewer()
    viewer.close()
    ended: list[Ending] = client.ended
    assert ended == ["closed"] and not viewer.offer(None, b"", True)  # type: ignore[arg-type]


def test_a_stream_that_changes_size_gives_every_viewer_a_new_codec_answer_and_init() -> None:
    tracks, client = Tracks(Demand(), FakeClock()), Client()
    tracks.join(client.viewer())
    for unit in track(3) + track(3, size=(320, 240)):
        tracks.publish(unit)
    assert [text["type"] for text in client.texts()] == ["mse", "mse"]
    assert client.binaries() == 2 + 6, "two init segments and every fragment"


def test_a_new_init_a_slow_viewer_never_got_goes_again_with_the_next_key_frame() -> None:
    clock = FakeClock()
    tracks, slow = Tracks(Demand(), clock), Client(slow=True)
    tracks.join(slow.viewer())
    tracks.publish(track(1)[0])  # written at once; the socket then stalls
    larger = track(MAX_BEHIND + 10, keys_at=(MAX_BEHIND + 5,), size=(320, 240))
    for unit in larger:  # the new size's init waits behind the stalled write, and is dropped with the rest
        clock.now += 0.1
        tracks.publish(unit)
    slow.take()
    assert [text["type"] for text in slow.texts()] == ["mse", "mse", "drop"]
    kinds = ["init" if data[0] == 0x82 and b"moov" in data[:64] else hex(data[0]) for data in slow.sent]
    drop = kinds.index("0x81", kinds.index("init", 2) + 1)
    assert kinds[drop - 2:drop + 2] == ["0x81", "init", "0x81", "0x82"], "codec answer, init, drop, fragments"
    assert 1 <= kinds[drop:].count("0x82") <= 21, "then at most one GOP: from the next key frame on"
