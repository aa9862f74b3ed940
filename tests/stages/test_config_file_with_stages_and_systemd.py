"""The config file through the commands, as processes: a stage with a bad file exits 2 with one line,
and the systemd units pipeline.procs writes (with a config file or without) pass systemd-analyze verify.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.configs import TWO_CAMERAS, write
from tests.support.stages import REPO, clean_env


def test_a_stage_with_a_bad_file_exits_2_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[cameras.a]\nsource = \"demo\"\nthreshold = -1\n")
    result = subprocess.run([sys.executable, "-m", "pipeline.detector", "--config", str(path)], cwd=REPO,
                            env=clean_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"pipeline.detector: error: invalid {path}: cameras.a.threshold '-1': must be between 0.001 and 100"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_systemd_units_verify(tmp_path: Path) -> None:
    path = write(tmp_path, TWO_CAMERAS)
    result = subprocess.run([sys.executable, "-m", "pipeline.procs", "--config", str(path), "--format", "systemd",
                             "--output", str(tmp_path / "units")], cwd=REPO, capture_output=True, text=True,
                            timeout=30, check=True)
    units = sorted((tmp_path / "units").iterdir())
    assert [str(u) for u in units] == sorted(result.stdout.split()) and len(units) == 8
    verify = subprocess.run(["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True,
                            timeout=60)
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr  # warnings too, such as a bad value


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_without_a_config_file_the_units_run_the_shipped_six_reading_env(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pipeline.procs", "--format", "systemd", "--output", str(tmp_path)],
                   cwd=REPO, env=clean_env(), capture_output=True, timeout=30, check=True)
    units = sorted(tmp_path.iterdir())
    assert [u.name for u in units] == sorted(["camserver.target", *(f"camserver-{s}.service" for s in (
        "capture", "detector", "recorder", "gateway", "logger", "encoder"))])
    gateway = (tmp_path / "camserver-gateway.service").read_text()
    assert f"EnvironmentFile=-{REPO}/.env\n" in gateway and "-m pipeline.gateway --no-log-time\n" in gateway
    verify = subprocess.run(["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True,
                            timeout=60)
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
