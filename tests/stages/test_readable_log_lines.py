"""Logs a person reads: one line per thing, once, with one timestamp and the stage's name.

Run as shipped: the Procfile under honcho (which adds its own time and name), and a capture whose
stream fails, so that FFmpeg's own messages are in play.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.support.ports import Ports
from tests.support.stages import REPO, Stage, clean_env
from tests.support.waiting import wait_for

STAGE_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (capture|detector|recorder|gateway|logger) "
                        r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) \S")
HONCHO_LINE = re.compile(r"^\d\d:\d\d:\d\d (?P<name>\w+)\.1\s*\| (?P<line>.*)$")
DATE = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d")


def test_under_honcho_each_event_is_printed_once_with_one_timestamp(tmp_path: Path, ports: Ports) -> None:
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    env = clean_env(**ports.env(), CAMSERVER_SOURCE="demo", CAMSERVER_POST_SECONDS="0.5")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    log_path = tmp_path / "honcho.log"
    with log_path.open("wb") as log:
        honcho = subprocess.Popen([sys.executable, "-m", "honcho", "start", "--no-colour", "-e", str(env_file)],
                                  cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "recording_saved" in log_path.read_text(), 30, "the demo visitor's recording_saved")
        honcho.send_signal(signal.SIGINT)
        honcho.wait(20)
    finally:
        if honcho.poll() is None:
            honcho.kill()
            honcho.wait(5)
    lines = [match for line in log_path.read_text().splitlines() if (match := HONCHO_LINE.match(line))]
    assert lines
    for match in lines:
        assert not DATE.search(match["line"]), f"a second timestamp: {match.group()}"
        assert match["line"].startswith(f"{match['name']} "), f"not one of the stage's own lines: {match.group()}"
    for event in ("motion_start", "motion_end"):
        printed = [m.group() for m in lines if f"cam0 {event} " in m["line"]]
        assert len(printed) == 1, f"{event} printed {len(printed)} times:\n" + "\n".join(printed)
    name = re.search(r"recording_saved seq=\d+ name=(\S+)", log_path.read_text())[1]
    printed = [m.group() for m in lines if name in m["line"]]
    assert len(printed) == 2, "recording_started and recording_saved, once each:\n" + "\n".join(printed)


def test_ffmpeg_messages_are_the_stages_own_lines_with_passwords_masked(
        start_stage: Callable[..., Stage], ports: Ports) -> None:
    """RTSP goes through OpenCV's FFmpeg, which prints its own messages to file descriptor 2."""
    capture = start_stage("capture", "--source", "rtsp://admin:s3cret@127.0.0.1:1/stream")
    wait_for(lambda: capture.output().count("trying again") >= 3, 15, "three reconnects")
    capture.stop()
    output = capture.output()
    for line in output.splitlines():
        assert STAGE_LINE.match(line), f"a line that is not one of capture's: {line!r}"
    refused = [line for line in output.splitlines() if "Connection refused" in line]
    assert len(refused) == 1 and "capture WARNING tcp: " in refused[0], "FFmpeg's line, once: repeats are counted"
    assert "s3cret" not in output


def test_an_http_streams_failure_is_said_in_the_reconnect_line_without_the_password(
        start_stage: Callable[..., Stage], ports: Ports) -> None:
    """HTTP MJPEG goes through PyAV, whose error carries the URL: only its reason is logged."""
    capture = start_stage("capture", "--source", "http://admin:s3cret@127.0.0.1:1/video.mjpg")
    wait_for(lambda: capture.output().count("trying again") >= 2, 15, "two reconnects")
    capture.stop()
    output = capture.output()
    assert "gives no frames (Connection refused); trying again" in output, output
    assert all(STAGE_LINE.match(line) for line in output.splitlines()), output
    assert "s3cret" not in output
