"""The TOML configuration file: global defaults, one table per camera, read with the standard library.

    log_level = "INFO"          # any option, by the name of its flag (dashes or underscores)
    stages = ["capture", "detector", "recorder", "gateway", "logger", "encoder"]   # what this host runs
    remote_frames = ["tcp://garden-pi.local:5555"]   # captures on other hosts to subscribe to

    [cameras.porch]             # a camera id: letters, digits, - and _
    source = "/dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920-video-index0"
    mask = [[0, 0, 200, 80]]    # or "0,0,200,80" or an image path

    [cameras.garden]
    remote = true               # captured on another host; only its detection and recording settings here

This module only turns the file into raw option text per key, checking every key's name and
type, so that pipeline.config.options parses file values, variables and flags with the same parsers and
names the key of any bad value. It knows nothing of what the options mean.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGES = ("capture", "detector", "recorder", "gateway", "logger", "encoder")
# Stages run only when asked for: listed in ``stages``, or configured at the file's top level.
OPTIONAL_STAGES = {
    "hooks": ("on_motion_start", "on_motion_end", "on_recording_saved", "on_camera_lost", "on_camera_found",
              "webhook_url"),
    "mqtt": ("mqtt_host",),
}


class ConfigFileError(ValueError):
    """A file that cannot be used; the message starts with the file and names the key."""


@dataclass(frozen=True)
class ConfigFile:
    """A file's values as option text, the way a variable would give them: ``{"fps": "15"}``."""

    path: Path
    top: dict[str, str] = field(default_factory=dict)
    # In the file's order, which gives local cameras their default frames ports.
    cameras: dict[str, dict[str, str]] = field(default_factory=dict)
    remote: frozenset[str] = frozenset()
    remote_frames: tuple[str, ...] = ()
    stages: tuple[str, ...] | None = None  # None: not given

    @property
    def stages_here(self) -> tuple[str, ...]:
        """The stages this host runs: as listed, or the usual five and the optional ones configured."""
        if self.stages is not None:
            return self.stages
        return STAGES + tuple(stage for stage, keys in OPTIONAL_STAGES.items() if any(key in self.top for key in keys))

    @property
    def local_cameras(self) -> list[str]:
        """The cameras captured on this host, in the file's order."""
        return [camera for camera in self.cameras if camera not in self.remote]


def read(path: Path, options: Collection[str], camera_options: Collection[str]) -> ConfigFile:
    """Read and check ``path``: every key must be one of ``options`` (in a camera table, of ``camera_options``)."""
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigFileError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{path}: not valid TOML: {exc}") from None

    def fail(key: str, message: str) -> ConfigFileError:
        return ConfigFileError(f"{path}: {key}: {message}")

    top: dict[str, str] = {}
    cameras: dict[str, dict[str, str]] = {}
    remote: set[str] = set()
    remote_frames: tuple[str, ...] = ()
    stages = None
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        if key == "cameras":
            if not isinstance(value, dict):
                raise fail(raw_key, "expected tables [cameras.ID]")
            for camera, table in value.items():
                if not isinstance(table, dict):
                    raise fail(f"cameras.{camera}", "expected a table [cameras.ID] of camera settings")
                cameras[camera] = {}
                for raw_name, item in table.items():
                    name, where = raw_name.replace("-", "_"), f"cameras.{camera}.{raw_name}"
                    if name == "remote":
                        if not isinstance(item, bool):
                            raise fail(where, "expected true or false")
                        if item:
                            remote.add(camera)
                    elif name in camera_options:
                        cameras[camera][name] = _text(item, lambda m, w=where: fail(w, m))
                    else:
                        raise fail(where, f"unknown camera setting; known: remote, {', '.join(sorted(camera_options))}")
                if camera in remote and "source" in cameras[camera]:
                    raise fail(f"cameras.{camera}.source", "a remote camera's source is set on the host capturing it")
        elif key == "stages":
            stages = _names(value, lambda m, k=raw_key: fail(k, m))
            known = (*STAGES, *OPTIONAL_STAGES)
            unknown = [stage for stage in stages if stage not in known]
            if unknown:
                raise fail(raw_key, f"unknown stage {unknown[0]!r}; known: {', '.join(known)}")
        elif key == "remote_frames":
            remote_frames = _names(value, lambda m, k=raw_key: fail(k, m))
        elif key == "camera":
            raise fail(raw_key, "camera ids are the names of the [cameras.ID] tables")
        elif key in options:
            top[key] = _text(value, lambda m, k=raw_key: fail(k, m))
        else:
            raise fail(raw_key, "unknown setting (see python -m pipeline.<stage> --help for the options)")
    if cameras and "frames" in top:
        raise fail("frames", "with [cameras.ID] tables, set frames per camera (or leave the default ports)")
    return ConfigFile(path, top, cameras, frozenset(remote), remote_frames, stages)


def _text(value: Any, fail: Callable[[str], ConfigFileError]) -> str:
    """A TOML value as the text a variable would hold: lists of endpoints and mask rectangles joined."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ",".join(value)
    rects = isinstance(value, list) and all(isinstance(item, list) for item in value)
    if rects and all(isinstance(n, int) and not isinstance(n, bool) for item in value for n in item):
        return ";".join(",".join(str(n) for n in item) for item in value)
    raise fail("expected a string, a number, true/false, a list of strings or a list of [x, y, w, h]")


def _names(value: Any, fail: Callable[[str], ConfigFileError]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise fail("expected a list of strings")
    return tuple(value)
