"""Crash recovery after a real crash: a writer process killed with SIGKILL mid-recording leaves a part
file, which the recordings folder salvages into a listed, playable, cut-short recording.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.record.library import Library, recording_name
from pipeline.record.mp4 import probe
from tests.support.recordings import files, temporary_files
from tests.support.stages import REPO

W, H = 320, 240  # CRASHING_WRITER's size
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z

CRASHING_WRITER = """
import sys
import cv2
from pathlib import Path
from pipeline.video.demo import DemoScene
from pipeline.record.mp4 import Mp4Writer

path, start, frames = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
scene = DemoScene(320, 240, seed=5)
writer = Mp4Writer(path, 320, 240)
for i in range(frames):
    writer.write(cv2.imencode(".jpg", scene.render(i / 10, start + i / 10))[1].tobytes(), start + i / 10)
print("written", flush=True)
sys.stdin.read()  # wait here, the writer still open, until killed
"""


def crash_while_recording(part: Path, start_ts: float, frames: int) -> None:
    """Write ``frames`` at 10 fps into ``part`` in another process, then kill -9 it with the writer open."""
    with subprocess.Popen([sys.executable, "-c", CRASHING_WRITER, str(part), repr(start_ts), str(frames)],
                          cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            line = proc.stdout.readline()
            assert line == b"written\n", proc.stderr.read().decode()
        finally:
            proc.kill()  # SIGKILL: no close, no trailer, no atexit
            proc.wait(10)


def test_recover_salvages_a_part_file_left_by_a_killed_writer(tmp_path: Path) -> None:
    library = Library(tmp_path)
    name = recording_name("cam0", T0)
    crash_while_recording(library.part_path(name), T0, frames=35)  # 3.5 s
    assert files(tmp_path) == [f".{name}.mp4.part"]

    saved = library.recover()

    assert [s["name"] for s in saved] == [name]
    listed = library.recordings()
    assert listed == saved
    sidecar = listed[0]
    assert sidecar["cut_short"] is True
    assert sidecar["camera"] == "cam0"
    assert sidecar["start"] == pytest.approx(T0)
    # At most the fragment in progress (up to one keyframe interval) is lost.
    assert 3.5 - 1.2 <= sidecar["duration"] <= 3.5 + 0.05
    assert sidecar["end"] == pytest.approx(sidecar["start"] + sidecar["duration"], abs=0.01)
    info = probe(library.path(name, ".mp4"))
    assert info is not None
    duration, frames, codec = info
    assert codec == "h264"
    assert duration == pytest.approx(sidecar["duration"], abs=0.01)
    assert frames == sidecar["frames"] and 23 <= frames <= 35
    thumbnail = cv2.imdecode(np.frombuffer(library.path(name, ".jpg").read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert thumbnail is not None and thumbnail.shape == (H, W, 3)
    assert sidecar["thumbnail"] == f"{name}.jpg"
    assert sidecar["size"] == library.path(name, ".mp4").stat().st_size
    assert files(tmp_path) == [f"{name}.jpg", f"{name}.json", f"{name}.mp4"]
    assert temporary_files(tmp_path) == []
