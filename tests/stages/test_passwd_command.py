"""The passwd command as a process: a private file of the hash the gateway accepts, never an empty password."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline import passwd
from tests.support.stages import REPO, clean_env


def test_the_passwd_command_writes_a_private_file_the_gateway_accepts(tmp_path: Path) -> None:
    out = tmp_path / "password"
    done = subprocess.run([sys.executable, "-m", "pipeline.passwd", "-o", str(out)], input=b"s3cret pass\n",
                          cwd=REPO, env=clean_env(), capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    assert passwd.verify(passwd.check_hash(out.read_text()), "s3cret pass")
    assert b"s3cret" not in done.stdout + done.stderr
    empty = subprocess.run([sys.executable, "-m", "pipeline.passwd"], input=b"\n", cwd=REPO, env=clean_env(),
                           capture_output=True, timeout=30)
    assert empty.returncode == 2 and b"must not be empty" in empty.stderr
