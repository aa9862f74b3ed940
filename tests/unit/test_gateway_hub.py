"""The gateway's hub and its viewers: newest frame wins per viewer, camera routing, status and health."""

from __future__ import annotations

from concurrent.futures import Future

from pipeline.protocol import Event, Frame, Heartbeat
from pipeline.web.camera_state import FORGET_AFTER_S, OFFLINE_AFTER_S
from pipeline.web.hub import MAX_CAMERAS, STAGE_SILENT_AFTER_S, Hub
from pipeline.web.viewers import Ending, StreamViewer
from tests.support.clock import FakeClock

JPEG = b"\xff\xd8\xff\xd9"


class Client:
    """A viewer's client socket as StreamViewer sees it: what was written, and whether a slow one has taken it."""

    def __init__(self, slow: bool = False) -> None:
        self.slow = slow
        self.sent: list[str] = []
        self.ended: list[Ending] = []
        self._unsent: list[Future[None]] = []

    def viewer(self, camera: str | None, wants_events: bool) -> StreamViewer:
        return StreamViewer(camera, self._write, lambda f: f"frame {f.camera} {f.seq}".encode(),
                            (lambda e: f"event {e.type}".encode()) if wants_events else None, self.ended.append)

    def take(self) -> None:
        """The slow client reads what its socket holds: the viewer sends what waited meanwhile."""
        unsent, self._unsent = self._unsent, []
        for written in unsent:
            written.set_result(None)

    def _write(self, data: bytes) -> Future[None]:
        self.sent.append(data.decode())
        written: Future[None] = Future()
        if self.slow:
            self._unsent.append(written)
        else:
            written.set_result(None)
        return written  # type: ignore[return-value]  # StreamViewer only asks done(), exception() and for callbacks


def frame(seq: int, camera: str = "cam0") -> Frame:
    return Frame(camera, seq, 1.0 + seq, 640, 480, True, JPEG)


def test_a_slow_viewer_gets_only_the_newest_frame_and_events_in_order() -> None:
    hub, client = Hub(), Client(slow=True)
    hub.add(client.viewer(None, wants_events=True))
    for seq in range(50):
        hub.publish_frame(frame(seq))
    hub.publish_event(Event("cam0", 48, 49.0, "a"))
    hub.publish_event(Event("cam0", 49, 50.0, "b"))
    assert client.sent == ["frame cam0 0"], "nothing more while the socket still holds frame 0"
    client.take()
    assert client.sent == ["frame cam0 0", "event a", "event b", "frame cam0 49"]
    client.take()
    assert len(client.sent) == 4


def test_frames_a_slow_viewer_never_got_are_counted_as_dropped() -> None:
    hub, slow, reading = Hub(), Client(slow=True), Client()
    hub.add(slow.viewer("cam0", wants_events=False))
    hub.add(reading.viewer("cam0", wants_events=False))
    for seq in range(5):
        hub.publish_frame(frame(seq))
    state = hub.cameras["cam0"]
    # The slow socket still holds frame 0: 1, 2 and 3 were each pushed out by the next one, never sent.
    assert (state.offered, state.dropped) == (10, 3)
    assert len(reading.sent) == 5
    slow.take()
    assert slow.sent == ["frame cam0 0", "frame cam0 4"]
    hub.publish_frame(frame(5))
    assert state.dropped == 3


def test_viewers_get_their_own_camera_and_the_default_is_the_first_seen() -> None:
    hub, default, door = Hub(), Client(), Client()
    hub.publish_frame(frame(0, "garden"))
    hub.add(default.viewer(None, wants_events=False))
    hub.add(door.viewer("door", wants_events=False))
    assert default.sent == ["frame garden 0"] and door.sent == []
    hub.publish_frame(frame(1, "door"))
    hub.publish_event(Event("door", 1, 2.0, "x"))
    assert door.sent == ["frame door 1"]
    assert default.sent == ["frame garden 0"]


def test_closing_the_hub_ends_every_viewer() -> None:
    hub, client = Hub(), Client(slow=True)
    viewer = hub.add(client.viewer(None, wants_events=True))
    hub.close()
    assert viewer.closed and client.ended == ["closed"] and not hub.viewers


def test_status_and_health_follow_the_clock() -> None:
    clock = FakeClock()
    hub = Hub(clock)
    assert hub.health() == (False, {"status": "stale", "cameras": {}})
    assert hub.status(None)["online"] is False
    for seq in range(21):
        hub.publish_frame(frame(seq))
        clock.now += 0.1
    status = hub.status(None)
    assert status["online"] is True and status["camera"] == "cam0" and (status["w"], status["h"]) == (640, 480)
    assert 9.0 < status["fps"] < 11.0
    healthy, body = hub.health()
    assert healthy and body["cameras"]["cam0"]["event_age"] is None
    hub.publish_event(Event("cam0", 20, 21.0, "x"))
    assert hub.health()[1]["cameras"]["cam0"]["event_age"] == 0.0
    clock.now += OFFLINE_AFTER_S
    healthy, body = hub.health()
    assert not healthy and body["status"] == "stale"
    assert hub.status(None)["online"] is False


def test_a_stray_camera_is_forgotten_and_health_recovers() -> None:
    """One frame from a made-up camera must not make /healthz fail for good."""
    clock = FakeClock()
    hub = Hub(clock)
    for seq in range(60):
        hub.publish_frame(frame(seq))
        if seq == 30:
            hub.publish_frame(frame(0, "stray"))
        clock.now += 0.1
    assert set(hub.cameras) == {"cam0", "stray"} and hub.health()[0]
    for seq in range(60, 120):
        hub.publish_frame(frame(seq))
        clock.now += 0.1
    healthy, body = hub.health()
    assert healthy and set(body["cameras"]) == {"cam0"}
    assert set(hub.cameras) == {"cam0"}, "the stray's state is freed"


def test_a_real_camera_that_goes_silent_fails_health_until_it_is_forgotten() -> None:
    clock = FakeClock()
    hub = Hub(clock)
    for seq in range(50):
        hub.publish_frame(frame(seq))
        hub.publish_frame(frame(seq, "door"))
        clock.now += 0.1
    for seq in range(50, 150):
        hub.publish_frame(frame(seq))
        clock.now += 0.1
    healthy, body = hub.health()
    assert not healthy and body["cameras"]["door"]["frame_age"] > OFFLINE_AFTER_S
    clock.now += FORGET_AFTER_S
    hub.publish_frame(frame(150))
    assert set(hub.cameras) == {"cam0"} and hub.health()[0]


def test_cameras_beyond_the_maximum_are_refused_not_stored() -> None:
    hub = Hub(FakeClock())
    assert all(hub.publish_frame(frame(0, f"fake{n}")) for n in range(MAX_CAMERAS))
    assert hub.publish_frame(frame(0, "onemore")) is False
    assert len(hub.cameras) == MAX_CAMERAS


def test_a_new_viewer_never_gets_an_old_frame_as_live() -> None:
    clock = FakeClock()
    hub, early, late = Hub(clock), Client(), Client()
    hub.publish_frame(frame(0))
    hub.add(early.viewer(None, wants_events=False))
    assert early.sent == ["frame cam0 0"] and hub.newest(None) == frame(0)
    clock.now += OFFLINE_AFTER_S
    hub.add(late.viewer(None, wants_events=False))
    assert late.sent == [] and hub.newest(None) is None


def test_the_default_camera_is_the_first_one_online() -> None:
    clock = FakeClock()
    hub = Hub(clock)
    for seq in range(40):
        hub.publish_frame(frame(seq, "garden"))
        clock.now += 0.1
    for seq in range(100):
        hub.publish_frame(frame(seq, "door"))
        clock.now += 0.1
    assert hub.default_camera() == "door"


def test_stages_are_judged_by_their_heartbeats_and_their_flags_expire_with_them() -> None:
    clock = FakeClock()
    hub = Hub(clock)
    for stage in ("capture", "detector", "recorder", "made-up"):
        hub.publish_heartbeat(Heartbeat(stage, 1.0))
    overview = hub.overview()
    assert overview["cameras"] == {}, "no camera needed for stage health"
    assert overview["stages"] == {name: {"ok": True, "age": 0.0} for name in ("capture", "detector", "recorder")}

    hub.publish_frame(frame(0))
    hub.publish_event(Event("cam0", 0, 1.0, "delta", {"motion": True}))
    hub.publish_event(Event("cam0", 0, 1.0, "recording_started", {"name": "x"}))
    assert hub.overview()["cameras"]["cam0"]["motion"] and hub.overview()["cameras"]["cam0"]["recording"]
    clock.now += STAGE_SILENT_AFTER_S  # the recorder and detector died without a word
    hub.publish_heartbeat(Heartbeat("capture", 2.0))
    hub.publish_frame(frame(1))
    overview = hub.overview()
    assert overview["stages"]["recorder"]["ok"] is False and overview["stages"]["detector"]["ok"] is False
    assert overview["stages"]["capture"]["ok"] is True
    assert overview["cameras"]["cam0"]["recording"] is False and overview["cameras"]["cam0"]["motion"] is False


def test_each_captures_counters_are_kept_apart_and_freed_with_its_camera() -> None:
    clock = FakeClock()
    hub = Hub(clock=clock)
    hub.publish_frame(frame(0, "porch"))
    hub.publish_heartbeat(Heartbeat("capture", 1.0, {"frames_published": 5}, "porch"))
    hub.publish_heartbeat(Heartbeat("capture", 1.0, {"frames_published": 9}, "yard"))
    hub.publish_heartbeat(Heartbeat("detector", 1.0, {"frames_analysed": 14}))
    assert hub.stage_counters == {("capture", "porch"): {"frames_published": 5},
                                  ("capture", "yard"): {"frames_published": 9},
                                  ("detector", ""): {"frames_analysed": 14}}
    clock.now += OFFLINE_AFTER_S + 1  # porch sent one frame and fell silent: a stray, forgotten
    hub.publish_frame(frame(1, "yard"))
    assert ("capture", "porch") not in hub.stage_counters and ("capture", "yard") in hub.stage_counters
