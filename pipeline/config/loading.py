"""A stage's configuration from its flags, the CAMSERVER_* variables and the config file, checked.

A flag wins over the environment, which wins over the config file, which wins over the default.
The environment form exists so that one ``.env`` file (read by ./run and honcho) or one
``environment=`` line (supervisord) configures the whole pipeline, while a flag still overrides it
for one stage. Every value is parsed before a stage opens a socket or a camera, and a bad one
stops start-up with a single line naming the flag, variable or file key it came from and the
value, instead of a traceback from deep inside OpenCV or ZeroMQ.

In the config file (pipeline.config.file) the top-level values apply to every stage and camera, a
``[cameras.ID]`` table holds one camera's settings, and variables and flags still win over both.
A stage of one camera (capture) takes its camera's table; the shared stages get every camera's
settings in ``Config.cameras`` and subscribe to every camera's frames endpoint, while learning
which cameras exist from the stream itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.bus.endpoints import parse_endpoints
from pipeline.config import file as configfile
from pipeline.config.options import CAMERA_OPTIONS, ENV_PREFIX, FIRST_CAMERA_PORT, OPTIONS, Config, ConfigError, Option
from pipeline.protocol import ProtocolError, check_camera_id

CONFIG_HELP = "TOML file of settings and cameras"


def load(
    stage: str,
    names: Sequence[str],
    description: str,
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build a stage's Config from its flags, the environment and the config file, or raise ConfigError."""
    environ = os.environ if environ is None else environ
    parser = _parser(stage, names, description)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    given: dict[str, Any] = {}
    for name in names:
        option = OPTIONS[name]
        raw, origin = getattr(args, name), option.flag
        if name == "port" and getattr(args, "port_positional", None) is not None:
            if raw is not None:
                raise ConfigError("give the port once: either as the positional argument or as --port")
            raw = args.port_positional
        if raw is None and option.env in environ:
            raw, origin = environ[option.env], option.env
        if raw is not None:
            given[name] = raw if isinstance(raw, bool) else _parse(option, raw, f"{origin} value")
    path = args.config or environ.get(ENV_PREFIX + "CONFIG")
    if not path:
        return replace(Config(), **given)
    return _with_file(load_file(Path(path)), names, given)


@dataclass(frozen=True)
class FileSettings:
    """A checked config file: its values parsed, at the top level and per camera."""

    file: configfile.ConfigFile
    top: dict[str, Any]
    cameras: dict[str, dict[str, Any]]


def load_file(path: Path) -> FileSettings:
    """Read a config file and check every value in it, whichever stage will use it."""
    try:
        file = configfile.read(path, [name for name in OPTIONS if name != "camera"], CAMERA_OPTIONS)
    except configfile.ConfigFileError as exc:
        raise ConfigError(str(exc)) from None
    for camera in file.cameras:
        try:
            check_camera_id(camera)
        except ProtocolError as exc:
            raise ConfigError(f"{path}: [cameras.{camera}]: {exc}") from None
    if file.remote_frames:
        try:
            parse_endpoints(",".join(file.remote_frames))
        except ValueError as exc:
            raise ConfigError(f"{path}: remote_frames: {exc}") from None
    return FileSettings(
        file,
        _file_values(file.top, path, ""),
        {camera: _file_values(table, path, f"cameras.{camera}.") for camera, table in file.cameras.items()},
    )


def camera_frames(settings: FileSettings, camera: str) -> tuple[str, ...]:
    """Where a local camera of the file publishes: its own ``frames``, or the next loopback port from 5560."""
    if "frames" in settings.cameras[camera]:
        return settings.cameras[camera]["frames"]
    return (f"tcp://127.0.0.1:{FIRST_CAMERA_PORT + settings.file.local_cameras.index(camera)}",)


def _with_file(settings: FileSettings, names: Sequence[str], given: dict[str, Any]) -> Config:
    """Layer the file under the variables and flags: default < top level < the camera's table < variable < flag."""
    file = settings.file
    top = {name: value for name, value in settings.top.items() if name in names}

    def layered(camera: str) -> dict[str, Any]:
        table = {name: value for name, value in settings.cameras[camera].items() if name in names}
        return {**top, **table, **given}

    if "camera" in names:  # a stage of one camera: it takes that camera's table
        camera = given.get("camera") or _sole_camera(file)
        if camera is None:
            return replace(Config(), **{**top, **given})
        if camera not in file.cameras:
            raise ConfigError(f"{file.path} has no [cameras.{camera}] table (cameras: {', '.join(file.cameras)})")
        if camera in file.remote:
            raise ConfigError(f"camera {camera} is captured on another host ({file.path}: remote = true)")
        values = layered(camera)
        if "frames" in names and "frames" not in given:
            values["frames"] = camera_frames(settings, camera)
        return replace(Config(), **{**values, "camera": camera})
    values = {**top, **given}
    if "frames" in names and "frames" not in given and (file.cameras or file.remote_frames):
        endpoints = [endpoint for camera in file.local_cameras for endpoint in camera_frames(settings, camera)]
        values["frames"] = tuple(dict.fromkeys((*endpoints, *file.remote_frames)))
    cameras = {camera: replace(Config(), **layered(camera)) for camera in file.cameras}
    return replace(Config(), **values, cameras=cameras)


def _sole_camera(file: configfile.ConfigFile) -> str | None:
    if not file.cameras:
        return None
    local = file.local_cameras
    if len(local) != 1:
        raise ConfigError(f"{file.path} lists cameras {', '.join(local)}: choose one with --camera "
                          f"(CAMSERVER_CAMERA)")
    return local[0]


def _file_values(texts: Mapping[str, str], path: Path, prefix: str) -> dict[str, Any]:
    """Parse a file's option texts, naming the file and key of a bad one."""
    return {name: _parse(OPTIONS[name], raw, f"{path}: {prefix}{name}") for name, raw in texts.items()}


def _parse(option: Option, raw: str, where: str) -> Any:
    try:
        return option.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"invalid {where} {option.shown(raw)}: {exc}") from None


def load_or_exit(
    stage: str, names: Sequence[str], description: str, check: Callable[[Config], None] | None = None
) -> Config:
    """The stages' entry point: a bad value prints one line and exits with status 2, like argparse.

    ``check`` is a stage's rule across several options; it raises ConfigError too.
    """
    try:
        cfg = load(stage, names, description)
        if check is not None:
            check(cfg)
        return cfg
    except ConfigError as exc:
        print(f"pipeline.{stage}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _parser(stage: str, names: Sequence[str], description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m pipeline.{stage}",
        description=description,
        epilog="Every option can also be set with the environment variable shown, or in the config file; a flag "
               "wins over a variable, which wins over the file.",
    )
    parser.add_argument("--config", default=None, metavar="FILE",
                        help=f"{CONFIG_HELP} (default: none; env {ENV_PREFIX}CONFIG)")
    for name in names:
        option = OPTIONS[name]
        more = f"; see docs/{option.see}" if option.see else ""
        text = f"{option.help} (default: {option.default_text}; env {option.env}{more})"
        if option.is_switch:
            parser.add_argument(option.flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                                help=text)
        else:
            parser.add_argument(option.flag, dest=name, default=None, metavar=name.upper(), help=text)
    if "port" in names:
        parser.add_argument("port_positional", nargs="?", default=None, metavar="PORT",
                            help="the same as --port, kept for the original `gateway 8000` form")
    return parser
