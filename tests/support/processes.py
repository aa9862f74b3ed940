"""Processes seen from outside: what /proc says of them, and the process managers that run the stages.

./run and supervisor.conf run the repository's own .venv/bin/python: the helpers here say when a
test cannot run them as shipped, and make sure neither they nor their stages outlive a failed test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.stages import REPO, Stage


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_mb(stage: Stage) -> float:
    with open(f"/proc/{stage.proc.pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def children(pid: int) -> dict[int, str]:
    """The live child processes of ``pid``: their pids and command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and cmdline:
            found[int(entry.name)] = cmdline
    return found


def require_repo_venv() -> None:
    if Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip("supervisor.conf runs .venv/bin/python: run the tests with ./run tests")


def run_would_install() -> bool:
    """Whether ./run would pip install first (as it decides: no install stamp newer than pyproject.toml)."""
    pyproject = (REPO / "pyproject.toml").stat().st_mtime_ns
    stamps = [REPO / ".venv" / f".installed-{mode}" for mode in ("start", "tests")]
    return not any(stamp.exists() and stamp.stat().st_mtime_ns >= pyproject for stamp in stamps)


def stop_all(manager: subprocess.Popen[bytes]) -> None:
    """Make sure neither ./run's supervisord nor a stage outlives a failed test."""
    stages = children(manager.pid) if manager.poll() is None else {}
    if manager.poll() is None:
        manager.terminate()  # supervisord stops its stages, which are in process groups of their own
        try:
            manager.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(manager.pid, signal.SIGKILL)
            manager.wait(5)
    for pid in stages:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
