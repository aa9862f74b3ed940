"""Several cameras from one config file, through the real processes it asks for.

Each test writes a config file on free loopback ports, starts exactly the processes
``pipeline.procs`` lists for it (one capture per camera, one detector, recorder, gateway and
logger), and judges what a user sees: every camera's frames at the gateway, at its own size, and
every camera's motion recorded as its own mp4 (and only there), per-camera settings applied.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.configs import config_text
from tests.support.ports import free_port
from tests.support.processes import children, require_repo_venv, run_would_install, stop_all
from tests.support.stages import REPO, RunConfig, clean_env
from tests.support.waiting import wait_for
from tests.support.web import assert_one_recording_each, http_get, recordings_of, snapshot_shape


def square_clip(path: Path) -> None:
    """A still grey scene that a white square crosses from frame 10 to 40 of 80, in its left half."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for i in range(80):
        image = np.full((240, 320, 3), 90, np.uint8)
        if 10 <= i < 40:
            x = 10 + (i - 10) * 4
            image[100:140, x:x + 40] = 255
        writer.write(image)
    writer.release()


def test_two_file_sources_keep_their_own_detection_settings(tmp_path: Path, run_config: RunConfig) -> None:
    """The same clip on two cameras: the one whose mask hides the square's path records nothing."""
    clip, port, recordings = tmp_path / "square.avi", free_port(), tmp_path / "recordings"
    square_clip(clip)
    stages = run_config(config_text({
        "left": f'source = "{clip}"\nloop = true',
        "masked": f'source = "{clip}"\nloop = true\nmask = [[0, 80, 200, 80]]',
    }, recordings, port))
    for camera in ("left", "masked"):
        wait_for(lambda c=camera: snapshot_shape(port, c) == (240, 320, 3), 20, f"{camera}'s frames")
    assert_one_recording_each(port, ["left"], recordings, 25)
    assert recordings_of(port, "masked") == []
    logged = next(s for s in stages if s.name == "logger").output()
    assert "left motion_start seq=" in logged and "masked motion_start" not in logged, logged


def test_run_starts_every_camera_of_the_config_and_each_fails_alone(tmp_path: Path) -> None:
    """`CAMSERVER_CONFIG=cameras.toml ./run`: one supervised capture per camera; killing one leaves the other."""
    require_repo_venv()
    if run_would_install():
        pytest.skip("./run would install into .venv first: run ./run or ./run tests once")
    port, recordings = free_port(), tmp_path / "recordings"
    path = tmp_path / "cameras.toml"
    path.write_text(config_text({"porch": 'source = "demo"\nwidth = 320\nheight = 240',
                                 "yard": 'source = "demo"\nseed = 5\nwidth = 256\nheight = 192'}, recordings, port))
    (tmp_path / "empty.env").write_text("")
    env = clean_env(CAMSERVER_CONFIG=str(path), CAMSERVER_ENV_FILE=str(tmp_path / "empty.env"),
                    CAMSERVER_SUPERVISOR_DIR=str(tmp_path / "supervisor"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with (tmp_path / "run.log").open("wb") as log:
        manager = subprocess.Popen([str(REPO / "run")], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_for(lambda: snapshot_shape(port, "porch") == (240, 320, 3), 30, "porch's frames")
        wait_for(lambda: snapshot_shape(port, "yard") == (192, 256, 3), 10, "yard's frames")
        porch = next(pid for pid, command in children(manager.pid).items() if "--camera porch" in command)
        yard_before = frame_seq(port, "yard")
        os.kill(porch, signal.SIGKILL)
        killed = time.time()
        wait_for(lambda: frame_seq(port, "yard") > yard_before + 20, 10, "yard's frames going on")
        wait_for(lambda: frame_ts(port, "porch") > killed, 15, "porch back after kill -9")
        manager.send_signal(signal.SIGTERM)
        code = manager.wait(30)
    finally:
        stop_all(manager)
    output = (tmp_path / "run.log").read_text(errors="replace")
    assert code == 0, output
    assert "exited: capture-porch (terminated by SIGKILL; not expected)" in output, output
    assert "exited: capture-yard" not in output, output
    for name in ("capture-porch", "capture-yard", "detector", "recorder", "gateway", "logger", "encoder"):
        assert f"stopped: {name} (exit status 0)" in output, output


def frame_seq(port: int, camera: str) -> int:
    return int(http_get(port, f"/snapshot.jpg?camera={camera}")[1].get("X-Camserver-Seq", -1))


def frame_ts(port: int, camera: str) -> float:
    try:
        return float(http_get(port, f"/snapshot.jpg?camera={camera}")[1].get("X-Camserver-Ts", 0))
    except OSError:
        return 0.0
