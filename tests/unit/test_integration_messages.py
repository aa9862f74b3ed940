"""What the integrations make of events, without a broker or a hook: topics, discovery, argv, lost cameras.

The end-to-end tests (tests/stages/test_hooks_and_webhooks.py, test_mqtt_with_home_assistant.py)
run the stages against a real broker and real commands; these pin the translations themselves.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.integrations.commands import recording_file, substitute
from pipeline.integrations.mqtt_topics import OFFLINE, ONLINE, Topics, discovery_config
from pipeline.integrations.watchdog import Watchdog
from pipeline.integrations.webhooks import body
from pipeline.protocol import Event, Frame
from pipeline.record.library import recording_name
from tests.support.clock import FakeClock

JPEG = b"\xff\xd8\xff\xd9"


def test_a_camera_is_one_home_assistant_device_with_motion_snapshot_and_last_recording() -> None:
    topics = Topics("camserver", "homeassistant")
    config = discovery_config(topics, "attic", "porch", "http://cam.local:8100/")
    assert topics.discovery("attic", "porch") == "homeassistant/device/attic_porch/config"
    assert config["dev"]["ids"] == ["attic_porch"] and config["dev"]["cu"] == "http://cam.local:8100/?camera=porch"
    assert config["o"]["name"] == "camserver", "Home Assistant requires the origin"
    assert (config["availability_topic"], config["payload_available"], config["payload_not_available"]) == (
        "camserver/status", ONLINE, OFFLINE)
    components = config["cmps"]
    assert {name: part["p"] for name, part in components.items()} == {
        "motion": "binary_sensor", "snapshot": "image", "last_recording": "sensor"}
    assert components["motion"]["state_topic"] == "camserver/porch/motion"
    assert components["snapshot"]["image_topic"] == "camserver/porch/snapshot"
    assert len({part["unique_id"] for part in components.values()}) == 3
    assert "cu" not in discovery_config(topics, "attic", "porch", None)["dev"]


def test_placeholders_are_replaced_in_each_argument_and_other_braces_left_alone() -> None:
    values = {"event": "motion_start", "camera": "porch", "path": "", "name": "", "ts": "12.000"}
    argv = ["notify", "--title={camera} {event}", "{ts}", "{unknown}", "{"]
    assert substitute(argv, values) == ["notify", "--title=porch motion_start", "12.000", "{unknown}", "{"]


def test_only_a_recording_of_the_recorders_own_naming_reaches_a_hook(tmp_path: Path) -> None:
    name = recording_name("porch", 1_700_000_000.0)

    def saved(**data: object) -> Event:
        return Event("porch", 1, 1.0, "recording_saved", data)

    assert recording_file(saved(name=name, video=f"{name}.mp4"), tmp_path) == (str(tmp_path / f"{name}.mp4"), name)
    for data in ({"name": "../x", "video": "../x.mp4"}, {"name": "-rf", "video": "-rf.mp4"},
                 {"name": name, "video": "other.mp4"}, {"name": name}, {"name": 3, "video": f"{name}.mp4"}):
        assert recording_file(saved(**data), tmp_path) == ("", ""), data


def test_a_webhook_gets_the_event_its_camera_time_and_data() -> None:
    event = Event("porch", 7, 12.5, "motion_end", {"keep": True})
    assert body(event) == {"event": "motion_end", "camera": "porch", "ts": 12.5, "data": {"keep": True}}


def test_a_camera_is_lost_once_after_its_silence_and_found_when_frames_return() -> None:
    clock = FakeClock()
    watchdog = Watchdog(10.0, clock)
    assert watchdog.frame(Frame("porch", 0, 1.0, 4, 4, False, JPEG)) is None, "streaming at start is not 'found'"
    clock.now += 9.9
    assert watchdog.tick() == []
    clock.now += 0.1
    [lost] = watchdog.tick()
    assert (lost.camera, lost.type, lost.seq, lost.data) == ("porch", "camera_lost", 0, {"silent_s": 10.0})
    clock.now += 30
    assert watchdog.tick() == [], "lost once, not at every tick"
    found = watchdog.frame(Frame("porch", 5, 50.0, 4, 4, False, JPEG))
    assert found is not None and (found.type, found.seq, found.data) == ("camera_found", 5, {"silent_s": 40.0})
