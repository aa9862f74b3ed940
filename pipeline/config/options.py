"""Configuration of every stage, in one place: CLI flags, each mirrored by a CAMSERVER_* variable.

A flag wins over the environment, which wins over the default. The environment form exists so that
one ``.env`` file (read by honcho) or one ``environment=`` line (supervisord) configures the whole
pipeline, while a flag still overrides it for one stage. Every value is checked before a stage
opens a socket or a camera, and a bad one stops start-up with a single line naming the flag or
variable it came from and the value, instead of a traceback from deep inside OpenCV or ZeroMQ.

Several cameras are described in a TOML file (``--config`` or CAMSERVER_CONFIG, read by
pipeline.config.file): its top-level values are defaults for every stage and camera, a
``[cameras.ID]`` table holds one camera's settings, and variables and flags still win over both.
A stage of one camera (capture) takes its camera's table; the shared stages get every camera's
settings in ``Config.cameras`` and subscribe to every camera's frames endpoint, while learning
which cameras exist from the stream itself.
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.config.file import ConfigFile, ConfigFileError, read
from pipeline.passwd import check_hash
from pipeline.protocol import ProtocolError, check_camera_id
from pipeline.stage.redact import mask_url

ENV_PREFIX = "CAMSERVER_"
DEFAULT_FPS = 10.0
# The size asked of a webcam, and the demo scene's, when none is configured; other sources keep their own.
DEFAULT_WIDTH, DEFAULT_HEIGHT = 640, 480
# Cameras a detector or recorder keeps state for at once: a peer making up ids cannot exhaust memory.
MAX_CAMERAS = 16
# A config file's local cameras publish frames on consecutive loopback ports from here unless they
# name their own endpoint: below it, 5555-5557 stay the one-camera defaults.
FIRST_CAMERA_PORT = 5560
# What a [cameras.ID] table may set: the camera's source and picture, its detection and its recording.
CAMERA_OPTIONS = ("source", "fps", "width", "height", "quality", "loop", "seed", "frames", "threshold",
                  "pixel_threshold", "min_area", "lightswitch_percent", "noise_tune", "local_light", "shake",
                  "stable_frames", "min_motion_frames", "mask", "pre_seconds", "post_seconds",
                  "max_recording_seconds")


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the option and the value."""


class Source(NamedTuple):
    """Where capture reads frames from; ``kind`` is one of auto, demo, webcam, file, url."""

    kind: str
    target: str | int | None = None


class Mask(NamedTuple):
    """Regions the detector ignores: rectangles (x, y, w, h in frame pixels) or an image file."""

    rects: tuple[tuple[int, int, int, int], ...] = ()
    image: str | None = None


@dataclass(frozen=True)
class Config:
    """Every option of every stage; a stage reads only those it declares."""

    camera: str = "cam0"
    source: Source = Source("auto")
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    quality: int = 80
    loop: bool = False
    seed: int = 0
    frames: tuple[str, ...] = ("tcp://127.0.0.1:5555",)
    events: tuple[str, ...] = ("tcp://127.0.0.1:5556",)
    host: str = "127.0.0.1"
    port: int = 8100
    log_level: str = "INFO"
    log_time: bool = True
    threshold: float = 0.3
    pixel_threshold: int = 15
    min_area: int = 100
    lightswitch_percent: float = 50.0
    noise_tune: bool = True
    local_light: bool = True
    shake: bool = True
    stable_frames: int = 20
    min_motion_frames: int = 5
    mask: Mask = Mask()
    json: bool = False
    frame_stats: bool = False
    recorder_events: tuple[str, ...] = ("tcp://127.0.0.1:5557",)
    recordings: Path = Path("recordings")
    pre_seconds: float = 2.0
    post_seconds: float = 1.0
    max_disk: int = 0
    max_age: float = 0.0
    max_recording_seconds: float = 300.0
    user: str = "admin"
    password: str | None = None
    password_file: Path | None = None
    insecure_no_auth: bool = False
    allowed_hosts: tuple[str, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_connections: int = 200
    max_connections_per_client: int = 40
    max_viewers_per_client: int = 8
    curve_keys: Path | None = None
    insecure_bus: bool = False
    # Per camera of a config file, this stage's options with that camera's table applied.
    cameras: Mapping[str, Config] = field(default_factory=dict)
    on_motion_start: str | None = None
    on_motion_end: str | None = None
    on_recording_saved: str | None = None
    on_camera_lost: str | None = None
    on_camera_found: str | None = None
    hook_timeout: float = 30.0
    hook_max_running: int = 4
    camera_lost_after: float = 10.0
    webhook_url: str | None = None
    webhook_secret: str | None = None
    mqtt_host: str = "localhost"
    mqtt_port: int | None = None
    mqtt_user: str | None = None
    mqtt_password: str | None = None
    mqtt_password_file: Path | None = None
    mqtt_tls: bool = False
    mqtt_ca: Path | None = None
    mqtt_prefix: str = "camserver"
    mqtt_discovery_prefix: str = "homeassistant"
    mqtt_node_id: str | None = None
    mqtt_snapshot_seconds: float = 2.0
    gateway_url: str | None = None
    metrics_token: str | None = None


def parse_source(text: str) -> Source:
    """``auto``, ``demo``, a webcam index or device path, an rtsp/http(s) URL or an existing video file.

    A device path such as /dev/v4l/by-id/usb-...-video-index0 names the same camera after every
    reboot, where indexes can swap between two USB cameras.
    """
    text = text.strip()
    if text in ("auto", "demo"):
        return Source(text)
    if text.isdigit():
        return Source("webcam", int(text))
    if text.startswith("/dev/"):
        try:
            device = os.stat(text)  # follows the by-id and by-path symlinks to the device itself
        except OSError:
            raise ValueError(f"no such video device {text} (is the camera plugged in?)") from None
        if not stat.S_ISCHR(device.st_mode):
            raise ValueError(f"{text} is not a video device")
        return Source("webcam", text)
    if re.match(r"(rtsps?|https?)://.+", text, re.IGNORECASE):
        return Source("url", text)
    if "://" in text:
        raise ValueError("URLs must be rtsp://, rtsps://, http:// or https://")
    if not Path(text).is_file():
        raise ValueError("no such video file (expected auto, demo, a webcam index, a URL or a file)")
    return Source("file", text)


def parse_mask(text: str) -> Mask:
    """``x,y,w,h`` rectangles separated by ``;``, or the path of an image whose black areas are ignored."""
    text = text.strip()
    if not text:
        return Mask()
    if re.fullmatch(r"[\d,;\s]+", text):
        rects = []
        for part in filter(None, (p.strip() for p in text.split(";"))):
            numbers = [int(n) for n in part.split(",") if n.strip()]
            if len(numbers) != 4 or numbers[2] <= 0 or numbers[3] <= 0:
                raise ValueError(f"{part!r} is not a rectangle x,y,w,h with positive width and height")
            rects.append((numbers[0], numbers[1], numbers[2], numbers[3]))
        return Mask(rects=tuple(rects))
    if not Path(text).is_file():
        raise ValueError("expected rectangles x,y,w,h;x,y,w,h or an existing mask image file")
    return Mask(image=text)


def parse_size(text: str) -> int:
    """Bytes from ``5GB``, ``500MB``, ``1.5G``, ``800k`` or a plain number; 0 or ``none`` for no limit."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if text.strip().lower() in ("none", "off", ""):
        return 0
    if match is None:
        raise ValueError("expected a size such as 5GB, 500MB or 0 for no limit")
    return int(float(match.group(1)) * 1024 ** "_kmgt".index(match.group(2) or "_"))


def parse_duration(text: str) -> float:
    """Seconds from ``30d``, ``12h``, ``90m``, ``45s`` or a plain number of seconds; 0 for no limit."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if text.strip().lower() in ("none", "off", ""):
        return 0.0
    if match is None:
        raise ValueError("expected a duration such as 30d, 12h, 90m or 0 for no limit")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]


def parse_endpoints(text: str) -> tuple[str, ...]:
    """Comma-separated ZeroMQ endpoints, so one subscriber can listen to several cameras."""
    endpoints = tuple(part.strip() for part in text.split(",") if part.strip())
    if not endpoints:
        raise ValueError("expected at least one endpoint such as tcp://127.0.0.1:5555")
    for endpoint in endpoints:
        tcp = re.fullmatch(r"tcp://(\*|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d+)", endpoint)
        if tcp and 1 <= int(tcp.group(2)) <= 65535:
            continue
        if re.fullmatch(r"ipc://.+", endpoint):
            continue
        raise ValueError(f"{endpoint!r} is not tcp://HOST:PORT (port 1-65535) or ipc://PATH")
    return endpoints


def _number(kind: Callable[[str], Any], low: float, high: float, even: bool = False) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"expected a{'n integer' if kind is int else ' number'}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        if even and value % 2:
            raise ValueError("must be even (video encoders need even sizes)")
        return value

    return parse


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true/false, yes/no, on/off or 1/0")


def _camera(text: str) -> str:
    try:
        return check_camera_id(text)
    except ProtocolError as exc:
        raise ValueError(str(exc)) from None


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return level


def _folder(text: str) -> Path:
    path = Path(text.strip()).expanduser()
    if not text.strip():
        raise ValueError("must not be empty")
    if path.exists() and not path.is_dir():
        raise ValueError("exists and is not a folder")
    return path


def _host(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def _hosts(text: str) -> tuple[str, ...]:
    """Host names (no scheme, no port) separated by commas, lowercased as browsers send them."""
    names = tuple(name.strip().lower().rstrip(".") for name in text.split(",") if name.strip())
    for name in names:
        if not re.fullmatch(r"[a-z0-9_.-]+|\[?[0-9a-f:.]+\]?", name):
            raise ValueError(f"{name!r} is not a host name such as camera.example or 192.168.1.20")
    return names


def _user(text: str) -> str:
    if not re.fullmatch(r"[^:\s]{1,64}", text):
        raise ValueError("expected 1 to 64 characters without spaces or ':'")
    return text


def _text(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


def _metrics_token(text: str) -> str:
    """A token sent in an HTTP header: printable, no spaces, and long enough not to be guessed."""
    if not re.fullmatch(r"[\x21-\x7e]{16,256}", text):
        raise ValueError("expected 16 to 256 printable characters without spaces (e.g. from `openssl rand -hex 32`)")
    return text


def _password_file(text: str) -> Path:
    path = Path(text.strip()).expanduser()
    try:
        check_hash(path.read_text(errors="replace"))
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror})") from None
    return path


def _key_folder(text: str) -> Path:
    path = Path(text.strip()).expanduser()
    if not path.is_dir():
        raise ValueError("no such folder (make one with python -m pipeline.keys FOLDER)")
    return path


def _file(text: str) -> Path:
    path = Path(text.strip()).expanduser()
    if not path.is_file():
        raise ValueError("no such file")
    return path


@dataclass(frozen=True)
class Option:
    """One configuration option: its flag is ``--name`` and its variable CAMSERVER_NAME."""

    name: str
    parse: Callable[[str], Any]
    help: str
    default_text: str
    secret: bool = False

    def shown(self, raw: str) -> str:
        """The raw value as an error message may print it: never a password."""
        return "(hidden)" if self.secret else repr(mask_url(raw))

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


OPTIONS: dict[str, Option] = {
    option.name: option
    for option in (
        Option("camera", _camera, "camera id, used in topics, file names and URLs", "cam0"),
        Option("source", parse_source, "auto, demo, a webcam index (0) or device (/dev/v4l/by-id/...), a video file "
               "or an rtsp/http(s) URL", "auto"),
        Option("fps", _number(float, 0.1, 120), "frames per second to publish", "10; video files: their own rate"),
        Option("width", _number(int, 16, 7680, even=True),
               "largest frame width: a larger picture is scaled down, keeping its shape; set both or neither",
               "the source's own; 640 for a webcam and the demo"),
        Option("height", _number(int, 16, 4320, even=True), "largest frame height (see width); set both or neither",
               "the source's own; 480 for a webcam and the demo"),
        Option("quality", _number(int, 1, 100), "JPEG quality", "80"),
        Option("loop", _bool, "play a video file again from the start when it ends", "false"),
        Option("seed", _number(int, 0, 2**31 - 1), "seed of the demo scene, for repeatable tests", "0"),
        Option("frames", parse_endpoints, "ZeroMQ endpoint(s) of frames: capture binds, others connect",
               "tcp://127.0.0.1:5555"),
        Option("events", parse_endpoints, "ZeroMQ endpoint(s) of events: the detector binds, others connect",
               "tcp://127.0.0.1:5556"),
        Option("host", _host, "address the web server listens on (0.0.0.0 for every interface)", "127.0.0.1"),
        Option("port", _number(int, 1, 65535), "port the web server listens on", "8100"),
        Option("log_level", _log_level, "DEBUG, INFO, WARNING or ERROR", "INFO"),
        Option("log_time", _bool, "start each log line with the date and time (--no-log-time under a manager that "
               "adds its own, as honcho does)", "true"),
        Option("threshold", _number(float, 0.001, 100), "percent of the picture that must change for a frame to "
               "count as motion", "0.3"),
        Option("pixel_threshold", _number(int, 1, 255), "grey levels a pixel must change by to count as changed "
               "(raise it for a noisy camera)", "15"),
        Option("min_area", _number(int, 0, 10**8), "smallest changed region, in frame pixels, given a motion box",
               "100"),
        Option("lightswitch_percent", _number(float, 0, 100), "a frame where this percent of the picture changes "
               "is a lighting change, not motion (0: off)", "50"),
        Option("noise_tune", _bool, "lower the per-pixel threshold in a dark picture, and keep it above the noise "
               "measured on calm frames (off: --pixel-threshold as it is)", "true"),
        Option("local_light", _bool, "a region whose pixels all brighten or darken by a similar factor (a lamp, a "
               "shadow) is a lighting change, not motion", "true"),
        Option("shake", _bool, "a frame explained by a small shift of the whole picture is camera shake, not motion",
               "true"),
        Option("stable_frames", _number(int, 1, 10000), "an episode ends after this many frames in a row without "
               "motion", "20"),
        Option("min_motion_frames", _number(int, 1, 10000), "an episode with fewer frames of motion is discarded",
               "5"),
        Option("mask", parse_mask, "regions to ignore: x,y,w,h rectangles separated by ';', or an image whose "
               "black areas are ignored", "none"),
        Option("recorder_events", parse_endpoints, "ZeroMQ endpoint(s) of the recorder's events: the recorder "
               "binds, others connect", "tcp://127.0.0.1:5557"),
        Option("recordings", _folder, "folder of the recordings (the recorder writes, the gateway serves)",
               "./recordings"),
        Option("pre_seconds", _number(float, 0, 60), "seconds of footage kept before the first frame of motion",
               "2"),
        Option("post_seconds", _number(float, 0, 600), "seconds of footage kept after an episode has ended", "1"),
        Option("max_disk", parse_size, "the most the recordings may take, oldest deleted first (e.g. 5GB; 0: no "
               "limit)", "0"),
        Option("max_age", parse_duration, "recordings older than this are deleted (e.g. 30d; 0: keep forever)",
               "0"),
        Option("max_recording_seconds", _number(float, 10, 86400), "a recording longer than this is closed and the "
               "episode goes on in the next one", "300"),
        Option("json", _bool, "print events as JSON lines", "false"),
        Option("frame_stats", _bool, "also subscribe to frames and print fps and dropped frames every second",
               "false"),
        Option("user", _user, "user name of the login", "admin"),
        Option("password", _text, "password of the login (prefer --password-file: a flag shows in ps)", "none",
               secret=True),
        Option("password_file", _password_file, "file holding a password hash made by python -m pipeline.passwd",
               "none"),
        Option("insecure_no_auth", _bool, "allow listening beyond loopback without a password (anyone on the "
               "network can watch and delete)", "false"),
        Option("allowed_hosts", _hosts, "extra host names the page may be reached by, comma-separated (DNS "
               "rebinding protection refuses others)", "none"),
        Option("tls_cert", _file, "PEM certificate chain: serve HTTPS (with --tls-key)", "none"),
        Option("tls_key", _file, "PEM private key of --tls-cert", "none"),
        Option("max_connections", _number(int, 1, 100000), "open HTTP connections at most; more are closed at once",
               "200"),
        Option("max_connections_per_client", _number(int, 1, 100000), "open HTTP connections from one client "
               "address at most", "40"),
        Option("max_viewers_per_client", _number(int, 1, 10000), "live views (WebSocket and MJPEG) from one "
               "client address at most", "8"),
        Option("curve_keys", _key_folder, "folder of the bus's key pair made by python -m pipeline.keys: encrypt and "
               "authenticate every ZeroMQ socket (CURVE)", "none"),
        Option("insecure_bus", _bool, "allow bus endpoints beyond loopback without --curve-keys (anyone on the "
               "network can read the frames and publish forged ones)", "false"),
        Option("on_motion_start", _text, "command run when motion starts (split like a shell line, never run by "
               "one; see pipeline.hooks)", "none"),
        Option("on_motion_end", _text, "command run when motion ends (see pipeline.hooks)", "none"),
        Option("on_recording_saved", _text, "command run when a recording is saved; {path} is its mp4 (see "
               "pipeline.hooks)", "none"),
        Option("on_camera_lost", _text, "command run when a camera sends no frame for --camera-lost-after "
               "seconds (see pipeline.hooks)", "none"),
        Option("on_camera_found", _text, "command run when a lost camera sends frames again (see pipeline.hooks)",
               "none"),
        Option("hook_timeout", _number(float, 0.1, 86400), "seconds a hook command may run before it is killed", "30"),
        Option("hook_max_running", _number(int, 1, 1000), "hook commands running at once at most; more are dropped "
               "and counted", "4"),
        Option("camera_lost_after", _number(float, 0.5, 86400), "seconds without frames after which a camera counts "
               "as lost", "10"),
        Option("webhook_url", _text, "http(s) URL(s), comma-separated, that get each event as a signed JSON POST "
               "(see pipeline.hooks)", "none"),
        Option("webhook_secret", _text, "key of the webhooks' HMAC-SHA256 signature (X-Camserver-Signature)",
               "none", secret=True),
        Option("mqtt_host", _host, "MQTT broker the mqtt stage publishes to (see pipeline.mqtt)", "localhost"),
        Option("mqtt_port", _number(int, 1, 65535), "port of the MQTT broker", "1883; 8883 with --mqtt-tls"),
        Option("mqtt_user", _text, "user name at the MQTT broker", "none: anonymous"),
        Option("mqtt_password", _text, "password at the MQTT broker (prefer --mqtt-password-file: a flag shows "
               "in ps)", "none", secret=True),
        Option("mqtt_password_file", _file, "file whose first line is the password at the MQTT broker", "none"),
        Option("mqtt_tls", _bool, "connect to the MQTT broker over TLS, checking its certificate", "false"),
        Option("mqtt_ca", _file, "PEM CA certificate(s) the MQTT broker's certificate is checked against",
               "the system's"),
        Option("mqtt_prefix", _host, "first level of camserver's own MQTT topics", "camserver"),
        Option("mqtt_discovery_prefix", _host, "Home Assistant's MQTT discovery prefix", "homeassistant"),
        Option("mqtt_node_id", _host, "id of this camserver in discovery topics and unique ids (letters, digits, "
               "_ and -)", "the host name"),
        Option("mqtt_snapshot_seconds", _number(float, 0, 3600), "a camera's newest frame is published on MQTT at "
               "most this often, and at each motion start (0: only at motion start)", "2"),
        Option("gateway_url", _host, "URL the gateway is reached at from Home Assistant (e.g. "
               "http://camserver.local:8100), for links to the live view and recordings", "none"),
        Option("metrics_token", _metrics_token, "bearer token a Prometheus scraper may use for /metrics instead of "
               "the login (at least 16 characters)", "none: the login only", secret=True),
    )
}


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

    file: ConfigFile
    top: dict[str, Any]
    cameras: dict[str, dict[str, Any]]


def load_file(path: Path) -> FileSettings:
    """Read a config file and check every value in it, whichever stage will use it."""
    try:
        file = read(path, [name for name in OPTIONS if name != "camera"], CAMERA_OPTIONS)
    except ConfigFileError as exc:
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


def _sole_camera(file: ConfigFile) -> str | None:
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
                        help="TOML file of settings and cameras (default: none; env CAMSERVER_CONFIG)")
    for name in names:
        option = OPTIONS[name]
        text = f"{option.help} (default: {option.default_text}; env {option.env})"
        if option.parse is _bool:
            parser.add_argument(option.flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                                help=text)
        else:
            parser.add_argument(option.flag, dest=name, default=None, metavar=name.upper(), help=text)
    if "port" in names:
        parser.add_argument("port_positional", nargs="?", default=None, metavar="PORT",
                            help="the same as --port, kept for the original `gateway 8000` form")
    return parser
