"""The Procfile under honcho, supervisor.conf under supervisord and ./run each bring up a live pipeline.

All run the files exactly as shipped, configured only through CAMSERVER_* variables on free
ports, and are judged by what a user would see: JPEG frames on the gateway, every stage stopping
with status 0; under ./run, a stage killed with SIGKILL comes back while the others carry on.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.media import decode_jpeg
from tests.support.ports import Ports
from tests.support.processes import children, require_repo_venv, run_would_install, stop_all
from tests.support.stages import REPO, clean_env
from tests.support.waiting import wait_for
from tests.support.web import http_get

STAGES = ("capture", "detector", "recorder", "gateway", "logger", "encoder")


def serves_frames(port: int, since: float = 0.0) -> bool:
    """Whether the gateway's snapshot is a whole frame, taken after ``since`` (a time.time())."""
    try:
        status, headers, body = http_get(port, "/snapshot.jpg")
    except OSError:
        return False
    return (status == 200 and float(headers.get("X-Camserver-Ts", 0)) > since
            and decode_jpeg(body).shape == (480, 640, 3))


def manager_env(ports: Ports, **extra: str) -> dict[str, str]:
    env = clean_env(**ports.env(), CAMSERVER_SOURCE="demo", **extra)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_manager(command: list[str], ports: Ports, log_path: Path, stop: signal.Signals,
                **extra_env: str) -> tuple[int, str]:
    """Start a process manager, wait until its gateway serves frames, stop it; its exit status and output."""
    # appending, as supervisord's loggers do when they open /dev/stdout, so no writer overwrites another
    with log_path.open("ab") as log:
        manager = subprocess.Popen(command, cwd=REPO, env=manager_env(ports, **extra_env), stdout=log,
                                   stderr=subprocess.STDOUT)
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
    require_repo_venv()
    command = [str(Path(sys.executable).parent / "supervisord"), "-c", "supervisor.conf", "-n"]
    # its socket and pid file in this test's folder, not in logs/, where a running ./run may have them
    code, output = run_manager(command, ports, tmp_path / "supervisord.log", signal.SIGTERM,
                               CAMSERVER_SUPERVISOR_DIR=str(tmp_path))
    assert code == 0, output
    for stage in STAGES:
        assert f"stopped: {stage} (exit status 0)" in output, output


def run_env(tmp_path: Path, ports: Ports) -> dict[str, str]:
    """./run's environment: this test's ports, no .env, supervisord's socket in this test's folder."""
    require_repo_venv()
    if run_would_install():
        pytest.skip("./run would install into .venv first: run ./run or ./run tests once")
    no_env_file = tmp_path / "empty.env"
    no_env_file.write_text("")
    return manager_env(ports, CAMSERVER_ENV_FILE=str(no_env_file),
                       CAMSERVER_SUPERVISOR_DIR=str(tmp_path / "supervisor"))


def test_run_restarts_a_crashed_stage_and_the_others_carry_on(tmp_path: Path, ports: Ports) -> None:
    env = run_env(tmp_path, ports)
    supervisorctl = [str(Path(sys.executable).parent / "supervisorctl"), "-c", str(REPO / "supervisor.conf"),
                     "-s", f"unix://{tmp_path / 'supervisor' / 'supervisor.sock'}", "status"]

    def running() -> dict[str, int] | None:
        """Each stage's pid, once every stage is RUNNING as a child of ./run, as `supervisorctl status` says."""
        status = subprocess.run(supervisorctl, capture_output=True, text=True, timeout=10).stdout
        pids = {}
        for line in status.splitlines():  # "capture   RUNNING   pid 1234, uptime 0:00:05"
            words = line.split()
            if words[1:3] == ["RUNNING", "pid"]:
                pids[words[0]] = int(words[3].rstrip(","))
        if sorted(pids) != sorted(STAGES):
            return None
        alive = children(manager.pid)
        assert all(f"-m pipeline.{stage}" in alive.get(pid, "") for stage, pid in pids.items()), (pids, alive)
        return pids

    def restarted(stage: str, old: dict[str, int]) -> dict[str, int] | None:
        now = running()
        return now if now and now[stage] != old[stage] else None

    log_path = tmp_path / "run.log"
    # opened as `./run > file` would open it: ./run makes every writer append
    with log_path.open("wb") as log:
        manager = subprocess.Popen([str(REPO / "run")], cwd=tmp_path, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: serves_frames(ports.http), 30, "./run's gateway to serve frames")
        pids = wait_for(running, 10, "every stage RUNNING")
        for stage in STAGES:
            os.kill(pids[stage], signal.SIGKILL)
            killed = time.time()
            after = wait_for(lambda s=stage, old=pids: restarted(s, old), 5, f"a new {stage} RUNNING after kill -9")
            others = set(STAGES) - {stage}
            assert {s: after[s] for s in others} == {s: pids[s] for s in others}, f"killing {stage} restarted others"
            wait_for(lambda k=killed: serves_frames(ports.http, since=k), 10, f"new frames after {stage} restarted")
            pids = after
        manager.send_signal(signal.SIGINT)
        code = manager.wait(30)
    finally:
        stop_all(manager)
    output = log_path.read_text(errors="replace")
    assert code == 0, output
    for stage in STAGES:
        assert f"exited: {stage} (terminated by SIGKILL; not expected)" in output, output
        assert f"stopped: {stage} (exit status 0)" in output, output
    assert "Traceback" not in output, output
    assert "capture INFO camera cam0: built-in DEMO SCENE" in output, output


def test_run_logs_to_a_socket_as_under_systemd(tmp_path: Path, ports: Ports) -> None:
    """systemd hands ./run a socket to the journal as stdout, which supervisord cannot open as /dev/stdout."""
    env = run_env(tmp_path, ports)
    journal, stdout = socket.socketpair()
    received: list[bytes] = []

    def read() -> None:
        while chunk := journal.recv(65536):
            received.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    with stdout:
        manager = subprocess.Popen([str(REPO / "run")], cwd=REPO, env=env, stdout=stdout, stderr=stdout,
                                   start_new_session=True)
    try:
        wait_for(lambda: serves_frames(ports.http), 30, "./run's gateway to serve frames")
        manager.send_signal(signal.SIGTERM)
        code = manager.wait(30)
        reader.join(10)  # the relay ends with supervisord
    finally:
        stop_all(manager)
        journal.close()
    output = b"".join(received).decode(errors="replace")
    assert code == 0, output
    assert not reader.is_alive(), "the relay to the journal outlived ./run"
    for stage in STAGES:
        assert f"stopped: {stage} (exit status 0)" in output, output
    assert "gateway INFO live view on http://127.0.0.1:" in output, output
