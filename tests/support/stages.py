"""The pipeline's stages as processes of a test: one way to start them, one way to reap them.

Every stage runs as ``python -m pipeline.<stage>`` from the repository with this interpreter, in an
environment without the developer's CAMSERVER_* variables, its output going to a file the test can
read; whatever a test leaves running is killed and waited for when it ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline import procs
from tests.support.ports import Ports

REPO = Path(__file__).resolve().parents[2]


def clean_env(**overrides: str) -> dict[str, str]:
    """The test's environment without any CAMSERVER_* of the developer's shell, plus overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMSERVER_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


@dataclass
class Stage:
    """A stage running as its own process, its output going to a file the test can read."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def spawn(name: str, stage: str, args: Sequence[str], log_path: Path, env: dict[str, str], **popen: Any) -> Stage:
    """Start ``python -m pipeline.<stage> <args>`` from the repository, its output going to ``log_path``."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", f"pipeline.{stage}", *args], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT, **popen)
    return Stage(name, proc, log_path)


def reap(stages: list[Stage]) -> None:
    """Kill whatever a test left running of the stages it started, and wait for each."""
    for stage in stages:
        if stage.proc.poll() is None:
            stage.proc.kill()
        stage.proc.wait(5)


@pytest.fixture
def start_stage(tmp_path: Path, ports: Ports) -> Iterator[Callable[..., Stage]]:
    """Start ``python -m pipeline.<name> [args]`` wired to this test's ports; all are reaped after."""
    started: list[Stage] = []

    def start(name: str, *args: str, **env: str) -> Stage:
        stage = spawn(name, name, args, tmp_path / f"{name}-{len(started)}.log", clean_env(**{**ports.env(), **env}))
        started.append(stage)
        return stage

    yield start
    reap(started)


RunConfig = Callable[..., list[Stage]]


@pytest.fixture
def run_config(tmp_path: Path) -> Iterator[RunConfig]:
    """Start the processes a config file asks for, each as ``python -m pipeline.<stage> <its args>``."""
    started: list[Stage] = []

    def run(text: str, name: str = "cameras") -> list[Stage]:
        """The processes of config ``text``, saved as NAME.toml; their logs are NAME-PROCESS.log."""
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        stages = [spawn(process.name, process.stage, process.args, tmp_path / f"{name}-{process.name}.log", clean_env())
                  for process in procs.processes(path)]
        started.extend(stages)
        return stages

    yield run
    reap(started)
