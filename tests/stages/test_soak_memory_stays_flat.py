"""A short soak in CI: the whole pipeline at 30 fps with a viewer, and no stage's memory keeps rising.

It runs bench/soak.py (the same script runs for hours by hand) and reads its JSON summary.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.stages import REPO, clean_env

SECONDS, WARMUP = 75, 25
MAX_GROWTH_MB = 20.0


@pytest.mark.timeout(SECONDS + 90)
def test_memory_is_flat_at_30_fps() -> None:
    done = subprocess.run([sys.executable, "bench/soak.py", "--seconds", str(SECONDS), "--fps", "30",
                           "--warmup", str(WARMUP), "--json"], cwd=REPO, env=clean_env(), capture_output=True,
                          text=True, timeout=SECONDS + 60)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["viewer_fps"] >= 25, result
    assert result["recordings"] >= 3, "the demo's visitor comes every 16 s: each visit is a recording"
    for stage, figures in result["stages"].items():
        assert figures["growth_mb"] < MAX_GROWTH_MB, f"{stage} grew {figures['growth_mb']} MB: {result}"
