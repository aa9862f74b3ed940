"""End to end, as processes: demo capture + detector + recorder (+ gateway) write and serve MP4s."""

from __future__ import annotations

import http.client
import json
import signal
import time
from collections.abc import Callable

from pipeline.protocol import Event
from pipeline.record.library import Library
from pipeline.record.mp4 import probe
from tests.support.bus import EventLog
from tests.support.ports import Ports
from tests.support.recordings import leftovers
from tests.support.stages import Stage
from tests.support.waiting import wait_for
from tests.support.web import gateway_up, http_get


def record_the_demo_visit(start_stage: Callable[..., Stage], ports: Ports) -> tuple[Stage, Event]:
    """Recorder (no pre-roll), detector and demo capture: the recorder and its recording_started."""
    events = EventLog(ports)
    try:
        recorder = start_stage("recorder", "--pre-seconds", "0")
        start_stage("detector")
        time.sleep(1.0)
        start_stage("capture", "--source", "demo")
        return recorder, events.wait_for("recording_started", 20)
    finally:
        events.close()


def test_a_kept_episode_is_one_h264_mp4_served_with_range(start_stage: Callable[..., Stage], ports: Ports) -> None:
    events = EventLog(ports)
    try:
        recorder = start_stage("recorder", "--pre-seconds", "1", "--post-seconds", "1")
        start_stage("detector")
        start_stage("gateway")
        time.sleep(1.0)  # subscribers connected before the first frame, so the pre-roll is full
        start_stage("capture", "--source", "demo")
        start = events.wait_for("motion_start", 20)
        end = events.wait_for("motion_end", 20)
        saved = events.wait_for("recording_saved", 10)
    finally:
        events.close()
    assert end.data["keep"] is True
    video = ports.recordings / saved.data["video"]
    duration, frames, codec = probe(video)
    expected = end.ts - start.ts + 1 + 1
    assert codec == "h264"
    assert abs(duration - expected) <= 0.1 * expected, (duration, expected)
    assert abs(saved.data["duration"] - duration) < 0.2
    assert frames >= 0.9 * 10 * expected
    sidecar = json.loads((ports.recordings / f"{saved.data['name']}.json").read_text())
    assert sidecar["cut_short"] is False and sidecar["camera"] == "cam0"
    assert sidecar["peak_delta"] == end.data["peak_delta"] and sidecar["peak_seq"] == end.data["peak_seq"]
    assert (ports.recordings / saved.data["thumbnail"]).stat().st_size > 1000
    assert leftovers(ports.recordings) == []

    wait_for(gateway_up(ports.http), 5, "the gateway")
    status, _, body = http_get(ports.http, "/api/recordings")
    (listed,) = json.loads(body)["recordings"]
    assert status == 200 and listed["name"] == saved.data["name"]
    assert listed["video_url"] == f"/recordings/{saved.data['video']}"
    conn = http.client.HTTPConnection("127.0.0.1", ports.http, timeout=10)
    conn.request("GET", listed["video_url"], headers={"Range": "bytes=100-199"})
    response = conn.getresponse()
    assert response.status == 206 and response.getheader("Content-Type") == "video/mp4"
    assert response.read() == video.read_bytes()[100:200]
    for path in ("/recordings/..%2Fpyproject.toml", f"/recordings/.{saved.data['name']}.mp4.part",
                 "/recordings/notes.txt"):
        assert http_get(ports.http, path)[0] in (403, 404), path
    assert recorder.stop() == 0


def test_a_discarded_episode_leaves_no_file(start_stage: Callable[..., Stage], ports: Ports) -> None:
    events = EventLog(ports)
    try:
        start_stage("recorder")
        start_stage("detector", "--min-motion-frames", "1000")
        time.sleep(1.0)
        start_stage("capture", "--source", "demo")
        events.wait_for("recording_started", 20)
        discarded = events.wait_for("recording_discarded", 20)
    finally:
        events.close()
    assert discarded.data["reason"] == "episode discarded by the detector"
    assert sorted(p.name for p in ports.recordings.iterdir()) == []


def test_kill_9_mid_episode_keeps_the_footage_as_a_cut_short_recording(
    start_stage: Callable[..., Stage], ports: Ports
) -> None:
    recorder, started = record_the_demo_visit(start_stage, ports)
    time.sleep(3.5)
    killed_at = time.time()
    recorder.proc.send_signal(signal.SIGKILL)
    recorder.proc.wait(5)
    assert [p.name for p in ports.recordings.iterdir() if p.name.endswith(".part")], "no file was being written"

    restarted = start_stage("recorder")
    library = Library(ports.recordings)
    wait_for(lambda: any(r["name"] == started.data["name"] for r in library.recordings()), 15,
             "the cut-short recording to be recovered")
    recovered = next(r for r in library.recordings() if r["name"] == started.data["name"])
    assert recovered["cut_short"] is True and recovered["thumbnail"]
    written = killed_at - started.data["start_ts"]
    assert written - 1.5 <= recovered["duration"] <= written + 0.2, (recovered["duration"], written)
    assert probe(ports.recordings / recovered["video"])[2] == "h264"
    assert not [p for p in ports.recordings.iterdir() if p.name.startswith(f".{started.data['name']}")]
    assert restarted.stop() == 0
    assert leftovers(ports.recordings) == []


def test_retention_deletes_the_oldest_recordings_first(start_stage: Callable[..., Stage], ports: Ports) -> None:
    library = Library(ports.recordings)
    ports.recordings.mkdir()
    names = [f"2026010{day}T120000.000Z_cam0" for day in range(1, 6)]
    for name in names:
        part = library.part_path(name)
        part.write_bytes(b"\0" * 100_000)
        library.publish(name, part, b"\xff\xd8\xff\xd9", {"camera": "cam0", "duration": 1.0})
    recorder = start_stage("recorder", "--max-disk", "250KB")
    wait_for(lambda: len(library.recordings()) == 2, 15, "retention to leave two recordings")
    assert [r["name"] for r in library.recordings()] == [names[4], names[3]]
    assert "retention: deleted 3 recording(s)" in recorder.output()
    assert recorder.stop() == 0


def test_sigterm_mid_episode_finishes_the_recording_properly(start_stage: Callable[..., Stage], ports: Ports) -> None:
    recorder, started = record_the_demo_visit(start_stage, ports)
    time.sleep(2.0)
    stopped_at = time.time()
    assert recorder.stop(signal.SIGTERM) == 0, recorder.output()
    sidecar = Library(ports.recordings).get(started.data["name"])
    assert sidecar is not None and sidecar["cut_short"] is True
    written = stopped_at - started.data["start_ts"]
    duration, _, codec = probe(ports.recordings / sidecar["video"])
    assert codec == "h264" and written - 0.5 <= duration <= written + 0.2, (duration, written)
    assert leftovers(ports.recordings) == []
