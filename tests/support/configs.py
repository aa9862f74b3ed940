"""Config files (TOML) written by the tests: a shared example of cameras, and configs on free ports."""

from __future__ import annotations

from pathlib import Path

from tests.support.ports import free_port

# Per-camera settings over top-level ones: a local demo camera, one on its own endpoint, a remote one.
TWO_CAMERAS = """
log_level = "DEBUG"
pixel-threshold = 20
pre_seconds = 3
[cameras.porch]
source = "demo"
seed = 3
mask = [[0, 0, 10, 10], [20, 20, 5, 5]]
[cameras.yard]
source = "demo"
frames = "tcp://127.0.0.1:6000"
threshold = 1.5
pre_seconds = 0
[cameras.shed]
remote = true
threshold = 2
"""


def write(tmp_path: Path, text: str) -> Path:
    """``text`` as tmp_path/cameras.toml."""
    path = tmp_path / "cameras.toml"
    path.write_text(text)
    return path


def config_text(cameras: dict[str, str], recordings: Path, http_port: int) -> str:
    """A config on free ports: the shared endpoints at the top, then each camera's table and frames port."""
    text = (f'events = "tcp://127.0.0.1:{free_port()}"\nrecorder_events = "tcp://127.0.0.1:{free_port()}"\n'
            f'video = "tcp://127.0.0.1:{free_port()}"\n'
            f'port = {http_port}\nrecordings = "{recordings}"\npre_seconds = 0\npost_seconds = 0\n'
            'stable_frames = 10\n')
    for camera, table in cameras.items():
        text += f'\n[cameras.{camera}]\nframes = "tcp://127.0.0.1:{free_port()}"\n{table}\n'
    return text
