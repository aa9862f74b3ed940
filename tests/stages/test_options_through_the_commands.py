"""Options through the commands, as processes: a bad value or an unreadable mask image stops a stage
with one clear line; --help lists every option with its default and its variable; docs/options.md
is what ``python -m pipeline.config.reference`` makes of the option table.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config.options import OPTIONS
from tests.support.stages import REPO, clean_env


def test_unreadable_mask_image_stops_the_detector(tmp_path: Path) -> None:
    junk = tmp_path / "mask.png"
    junk.write_bytes(b"not an image")
    result = subprocess.run([sys.executable, "-m", "pipeline.detector", "--mask", str(junk),
                             "--events", "tcp://127.0.0.1:1", "--frames", "tcp://127.0.0.1:2"],
                            cwd=REPO, capture_output=True, text=True, env=clean_env(), timeout=30)
    assert result.returncode == 1
    assert f"cannot read mask image {junk}" in result.stderr


@pytest.mark.parametrize("stage", ["capture", "detector", "recorder", "gateway", "logger", "encoder"])
def test_bad_value_stops_stage_with_one_line(stage: str) -> None:
    result = subprocess.run([sys.executable, "-m", f"pipeline.{stage}"], cwd=REPO, capture_output=True, text=True,
                            env=clean_env(CAMSERVER_FRAMES="nonsense", CAMSERVER_EVENTS="nonsense"), timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "CAMSERVER_" in lines[0] and "'nonsense'" in lines[0]


@pytest.mark.parametrize("stage", ["capture", "detector", "recorder", "gateway", "logger", "encoder"])
def test_help_lists_options_with_defaults_and_variables(stage: str) -> None:
    result = subprocess.run([sys.executable, "-m", f"pipeline.{stage}", "--help"], cwd=REPO, capture_output=True,
                            text=True, env=clean_env(), timeout=30)
    assert result.returncode == 0
    assert "--log-level" in result.stdout and "CAMSERVER_LOG_LEVEL" in result.stdout
    assert "default: INFO" in result.stdout
    assert "--no-log-time" in result.stdout and "CAMSERVER_LOG_TIME" in result.stdout
    assert ("--max-recording-seconds" in result.stdout) == (stage == "recorder")


def test_the_options_reference_in_docs_is_what_the_option_table_makes() -> None:
    """docs/options.md is generated: a default, range or description changed in the table must be regenerated."""
    made = subprocess.run([sys.executable, "-m", "pipeline.config.reference"], cwd=REPO, capture_output=True, text=True,
                          env=clean_env(), timeout=60, check=True).stdout
    assert (REPO / "docs" / "options.md").read_text() == made, \
        "docs/options.md is stale: run python -m pipeline.config.reference > docs/options.md"
    for option in OPTIONS.values():
        assert f"| `{option.flag}`" in made and f"`{option.env}`" in made, option.flag
