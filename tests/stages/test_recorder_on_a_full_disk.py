"""End to end, as processes: a recordings disk that fills up costs the episode, never the recorder."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import pytest

from pipeline.record.mp4 import probe
from tests.support.bus import EventLog
from tests.support.ports import Ports
from tests.support.recordings import fill, leftovers, small_tmpfs
from tests.support.stages import Stage
from tests.support.waiting import wait_for

# Frames this small make fragments that fit Python's file buffer, so the disk fills on a flush and the
# fragment stays buffered: the case where cleaning up used to fail again and take the recorder down.
WIDTH, HEIGHT = "64", "48"
# At that size the demo's visit is about 4 KB of H.264 a second: it fills this within a few seconds.
ROOM_LEFT = 10_000


@pytest.mark.timeout(60)
def test_a_full_disk_discards_the_episode_and_the_next_one_is_saved_once_there_is_room(
        start_stage: Callable[..., Stage], ports: Ports) -> None:
    with small_tmpfs(ports.recordings, "600k") as disk:
        fill(disk, leave=ROOM_LEFT)
        events = EventLog(ports)
        stages: list[Stage] = []
        try:
            recorder = start_stage("recorder", "--pre-seconds", "1", "--post-seconds", "1")
            stages += [recorder, start_stage("detector")]
            time.sleep(1.0)  # subscribers connected before the first frame
            stages.append(start_stage("capture", "--source", "demo", "--width", WIDTH, "--height", HEIGHT))

            discarded = events.wait_for("recording_discarded", 20)
            assert discarded.data["reason"] == "disk full"
            assert recorder.proc.poll() is None, recorder.output()
            assert leftovers(disk) == []
            assert not [e for e in events.events if e.type == "recording_saved"]

            # Room again (as if someone deleted old files): the demo's next visit, 16 s after the first.
            subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True, timeout=10)
            saved = events.wait_for("recording_saved", 30)

            assert saved.data["name"] != discarded.data["name"]
            info = probe(disk / saved.data["video"])
            assert info is not None and info[2] == "h264" and info[0] > 3.0, info
            assert recorder.proc.poll() is None, recorder.output()
            assert leftovers(disk) == []
            wait_for(lambda: "disk full" in recorder.output(), 2, "the recorder to log that the disk is full")
        finally:
            events.close()
            for stage in stages:
                stage.stop()
