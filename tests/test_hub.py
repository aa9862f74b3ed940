"""The gateway's hub: newest frame wins per viewer, camera routing, status and health."""

from __future__ import annotations

import asyncio

from pipeline.hub import OFFLINE_AFTER_S, Hub
from pipeline.protocol import Event, Frame

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
