"""The code base stays `ruff check` clean: CI enforces what the style guide asks."""

from __future__ import annotations

import subprocess
import sys

from tests.support.stages import REPO


def test_ruff_check_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
