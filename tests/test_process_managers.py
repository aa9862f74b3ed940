"""The Procfile under honcho and supervisor.conf under supervisord each bring up a live pipeline.

Both run the files exactly as shipped, configured only through CAMSERVER_* variables on free
ports, and are judged by what a user would see: JPEG frames on the gateway, every stage stopping
with status 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Ports, clean_env, wait_for
from tests.test_live import decode_jpeg, http_get

STAGES = ("capture", "detector", "recorder", "gateway", "logger")


def serves_frames(port: int) -> bool:
    try:
        status, _, body = http_get(port, "/snapshot.jpg")
    except OSError:
        return False
    return status == 200 and decode_jpeg(body).shape == (480, 640, 3)


def manager_env(ports: Ports) -> dict[str, str]:
    env = clean_env(**ports.env(), CAMSERVER_SOURCE="demo")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_honcho_runs_the_procfile(tmp_path: Path, ports: Ports) -> None:
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    log_path = tmp_path / "honcho.log"
    with log_path.open("wb") as log:
        honcho = subprocess.Popen(
            [sys.executable, "-m", "honcho", "start", "--no-colour", "-e", str(empty_env_file)],
            cwd=REPO, env=manager_env(ports), stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: serves_frames(ports.http), 30, "honcho's gateway to serve frames")
        honcho.send_signal(signal.SIGINT)
        honcho.wait(15)
    finally:
        if honcho.poll() is None:
            honcho.kill()
            honcho.wait(5)
    output = log_path.read_text()
    for stage in STAGES:
        assert f"{stage}.1 stopped (rc=0)" in output, output
    assert "Traceback" not in output


def test_supervisord_runs_supervisor_conf(tmp_path: Path, ports: Ports) -> None:
    if Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip("supervisor.conf runs .venv/bin/python: run the tests with ./run tests")
    log_path = tmp_path / "supervisord.log"
    with log_path.open("wb") as log:
        supervisord = subprocess.Popen(
            [str(Path(sys.executable).parent / "supervisord"), "-c", "supervisor.conf", "-n"],
            cwd=REPO, env=manager_env(ports), stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: serves_frames(ports.http), 30, "supervisord's gateway to serve frames")
        supervisord.send_signal(signal.SIGTERM)
        assert supervisord.wait(20) == 0
    finally:
        if supervisord.poll() is None:
            supervisord.kill()
            supervisord.wait(5)
    output = log_path.read_text()
    for stage in STAGES:
        assert f"stopped: {stage} (exit status 0)" in output, output
