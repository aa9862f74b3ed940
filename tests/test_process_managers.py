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


def run_manager(command: list[str], ports: Ports, log_path: Path, stop: signal.Signals) -> tuple[int, str]:
    """Start a process manager, wait until its gateway serves frames, stop it; its exit status and output."""
    with log_path.open("wb") as log:
        manager = subprocess.Popen(command, cwd=REPO, env=manager_env(ports), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: serves_frames(ports.http), 30, f"{Path(command[0]).name}'s gateway to serve frames")
        manager.send_signal(stop)
        code = manager.wait(20)
    finally:
        if manager.poll() is None:
            manager.kill()
            manager.wait(5)
    return code, log_path.read_text()


def test_honcho_runs_the_procfile(tmp_path: Path, ports: Ports) -> None:
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    command = [sys.executable, "-m", "honcho", "start", "--no-colour", "-e", str(empty_env_file)]
    _, output = run_manager(command, ports, tmp_path / "honcho.log", signal.SIGINT)
    for stage in STAGES:
        assert f"{stage}.1 stopped (rc=0)" in output, output
    assert "Traceback" not in output


def test_supervisord_runs_supervisor_conf(tmp_path: Path, ports: Ports) -> None:
    if Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip("supervisor.conf runs .venv/bin/python: run the tests with ./run tests")
    command = [str(Path(sys.executable).parent / "supervisord"), "-c", "supervisor.conf", "-n"]
    code, output = run_manager(command, ports, tmp_path / "supervisord.log", signal.SIGTERM)
    assert code == 0, output
    for stage in STAGES:
        assert f"stopped: {stage} (exit status 0)" in output, output
