"""The gateway's hub: newest frame wins per viewer, camera routing, status and health."""

from __future__ import annotations

import asyncio

from pipeline.protocol import Event, Frame, Heartbeat
from pipeline.web.hub import FORGET_AFTER_S, MAX_CAMERAS, OFFLINE_AFTER_S, STAGE_SILENT_AFTER_S, Hub

JPEG = b"\xff\xd8\xff\xd9"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def frame(seq: int, camera: str = "cam0") -> Frame:
    return Frame(camera, seq, 1.0 + seq, 640, 480, True, JPEG)


def test_a_slow_viewer_gets_only_the_newest_frame_and_events_in_order() -> None:
    async def scenario() -> None:
        hub = Hub()
        viewer = hub.attach(None, wants_events=True)
        for seq in range(50):
            hub.publish_frame(frame(seq))
        hub.publish_event(Event("cam0", 48, 49.0, "a"))
        hub.publish_event(Event("cam0", 49, 50.0, "b"))
        events, newest = await viewer.next(timeout=1)
        assert newest is not None and newest.seq == 49
        assert [e.type for e in events] == ["a", "b"]
        assert await viewer.next(timeout=0.01) == ([], None)

    asyncio.run(scenario())


def test_frames_a_slow_viewer_never_got_are_counted_as_dropped() -> None:
    async def scenario() -> None:
        hub = Hub()
        slow, reading = hub.attach("cam0", wants_events=False), hub.attach("cam0", wants_events=False)
        for seq in range(5):
            hub.publish_frame(frame(seq))
            await reading.next(timeout=1)
        state = hub.cameras["cam0"]
        assert (state.offered, state.dropped) == (10, 4)  # the slow viewer keeps only frame 4 of 0-4
        assert (await slow.next(timeout=1))[1].seq == 4
        hub.publish_frame(frame(5))
        assert state.dropped == 4

    asyncio.run(scenario())


def test_viewers_get_their_own_camera_and_the_default_is_the_first_seen() -> None:
    async def scenario() -> None:
        hub = Hub()
        hub.publish_frame(frame(0, "garden"))
        default = hub.attach(None, wants_events=False)
        door = hub.attach("door", wants_events=False)
        assert (await default.next(timeout=0.01))[1].camera == "garden"
        hub.publish_frame(frame(1, "door"))
        hub.publish_event(Event("door", 1, 2.0, "x"))
        assert (await door.next(timeout=0.01)) == ([], frame(1, "door"))
        assert await default.next(timeout=0.01) == ([], None)

    asyncio.run(scenario())


def test_detach_wakes_a_waiting_viewer() -> None:
    async def scenario() -> None:
        hub = Hub()
        viewer = hub.attach(None, wants_events=True)
        waiting = asyncio.create_task(viewer.next())
        await asyncio.sleep(0)
        hub.close()
        assert await asyncio.wait_for(waiting, 1) == ([], None)
        assert viewer.closed and not hub.viewers

    asyncio.run(scenario())


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
    async def scenario() -> None:
        clock = FakeClock()
        hub = Hub(clock)
        hub.publish_frame(frame(0))
        assert (await hub.attach(None, wants_events=False).next(timeout=0.01))[1] == frame(0)
        assert hub.newest(None) == frame(0)
        clock.now += OFFLINE_AFTER_S
        assert await hub.attach(None, wants_events=False).next(timeout=0.01) == ([], None)
        assert hub.newest(None) is None

    asyncio.run(scenario())


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
