"""Every option of every stage, written once: its type, default, parser, range and description.

Each field of ``Config`` is an option: ``--name`` as a flag, CAMSERVER_NAME as a variable, ``name``
in the config file. A flag wins over the variable, which wins over the file, which wins over the
default (pipeline.config.loading). ``--help``, the options reference (docs/options.md, generated
by ``python -m pipeline.config.reference``) and the checks all read this table, so a default or
a range written here is the only one there is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.bus.endpoints import parse_endpoints
from pipeline.config import parsers
from pipeline.config.parsers import Mask, Number, Source, boolean
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


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the option and the value."""


@dataclass(frozen=True)
class Option:
    """One option, as the field of Config that declares it says; its flag is ``--name``, its variable CAMSERVER_NAME."""

    name: str
    parse: Callable[[str], Any]
    help: str
    default: Any
    # What the reference and --help say of the default, where the value alone would say less.
    shown_default: str | None = None
    secret: bool = False
    camera: bool = False  # may be set in a [cameras.ID] table of the config file
    see: str | None = None  # the page of docs/ that tells more

    def shown(self, raw: str) -> str:
        """The raw value as an error message may print it: never a password."""
        return "(hidden)" if self.secret else repr(mask_url(raw))

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def is_switch(self) -> bool:
        """A yes/no option: ``--name`` / ``--no-name`` on the command line."""
        return self.parse is boolean

    @property
    def default_text(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        value = self.default
        if value is None or value == ():
            return "none"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return f"{value:g}"
        if isinstance(value, tuple) and not isinstance(value, Source | Mask):
            return ",".join(str(item) for item in value)
        return str(value)


def option(parse: Callable[[str], Any], help: str, default: Any = None, *, shown: str | None = None,
           secret: bool = False, camera: bool = False, see: str | None = None) -> Any:
    """A field of Config that is an option (see Option); typed Any so that each field keeps its own type."""
    return field(default=default, metadata={"option": {"parse": parse, "help": help, "shown_default": shown,
                                                       "secret": secret, "camera": camera, "see": see}})


@dataclass(frozen=True)
class Config:
    """Every option of every stage; a stage reads only those it declares."""

    # Capture: one camera's source and picture.
    camera: str = option(parsers.camera_id, "camera id (letters, digits, _ and -; used in topics, file names and "
                         "URLs); with a config file, which of its cameras to capture", "cam0",
                         shown="cam0; the config file's only camera")
    source: Source = option(parsers.parse_source, "auto (the first webcam, else the demo scene with a warning), demo, "
                            "a webcam index (0) or device path (/dev/video0, or /dev/v4l/by-id/usb-...-video-index0, "
                            "which names the same camera after every reboot where indexes can swap), a video file, or "
                            "an rtsp://, rtsps://, http(s):// URL (another camserver's /stream.mjpg works too)",
                            Source("auto"), camera=True, see="cameras.md")
    fps: float | None = option(Number(float, 0.1, 120), "frames per second published, paced by a monotonic clock "
                               "without drift", shown="10; a video file: its own rate", camera=True)
    width: int | None = option(Number(int, 16, 7680, even=True), "largest frame width: a larger picture is scaled "
                               "down into --width x --height keeping its shape (a decode and an encode per frame), "
                               "never enlarged; set both or neither",
                               shown="the source's own; 640 asked of a webcam and the demo", camera=True)
    height: int | None = option(Number(int, 16, 4320, even=True), "largest frame height (see --width); set both or "
                                "neither", shown="the source's own; 480 asked of a webcam and the demo", camera=True)
    quality: int = option(Number(int, 1, 100), "JPEG quality of the frames capture encodes (a JPEG source's own "
                          "pictures pass through as they are)", 80, camera=True)
    loop: bool = option(boolean, "play a video file again from the start when it ends (otherwise capture exits 0)",
                        False, camera=True)
    seed: int = option(Number(int, 0, 2**31 - 1), "seed of the demo scene, for repeatable tests", 0, camera=True)

    # The bus.
    frames: tuple[str, ...] = option(parse_endpoints, "ZeroMQ endpoint(s) of frames, comma-separated: capture binds, "
                                     "the others connect", ("tcp://127.0.0.1:5555",), camera=True,
                                     shown="tcp://127.0.0.1:5555; a config file's cameras: from port 5560",
                                     see="protocol.md")
    events: tuple[str, ...] = option(parse_endpoints, "ZeroMQ endpoint(s) of the detector's events: the detector "
                                     "binds, the others connect", ("tcp://127.0.0.1:5556",), see="protocol.md")
    recorder_events: tuple[str, ...] = option(parse_endpoints, "ZeroMQ endpoint(s) of the recorder's events: the "
                                              "recorder binds, the others connect", ("tcp://127.0.0.1:5557",),
                                              see="protocol.md")
    video: tuple[str, ...] = option(parse_endpoints, "ZeroMQ endpoint(s) of the cameras' H.264 tracks: the encoder "
                                    "binds, the others connect and subscribe to what they want encoded",
                                    ("tcp://127.0.0.1:5558",), see="protocol.md")
    curve_keys: Path | None = option(parsers.key_folder, "folder of the bus's key pair made by python -m "
                                     "pipeline.keys DIR: every ZeroMQ socket encrypted and every peer authenticated "
                                     "(CURVE)", see="cameras.md")
    insecure_bus: bool = option(boolean, "allow bus endpoints beyond loopback without --curve-keys (anyone on the "
                                "network could watch the frames and publish forged ones)", False, see="security.md")

    # Every stage's log.
    log_level: str = option(parsers.log_level, "DEBUG (adds one line per HTTP request), INFO, WARNING or ERROR",
                            "INFO")
    log_time: bool = option(boolean, "start each log line with the date and time (the Procfile turns it off: honcho "
                            "adds its own)", True)

    # Detection.
    threshold: float = option(Number(float, 0.001, 100), "percent of the picture that must change for a frame to be "
                              "significant (motion)", 0.3, camera=True, see="detection.md")
    pixel_threshold: int = option(Number(int, 1, 255), "grey levels (of 255) a pixel must change by to count as "
                                  "changed, in a bright picture (see --noise-tune)", 15, camera=True)
    noise_tune: bool = option(boolean, "lower the per-pixel threshold in a dark picture, in proportion to its "
                              "brightness below mid-grey, and keep it at least 6 times the mean difference of calm "
                              "frames (the camera's own noise), never under 4; off: --pixel-threshold as it is", True,
                              camera=True)
    min_area: int = option(Number(int, 0, 10**8), "smallest changed region, in frame pixels, that gets a motion box",
                           100, camera=True)
    lightswitch_percent: float = option(Number(float, 0, 100), "a frame where this percent of the picture changes at "
                                        "once is a lighting change, not motion (0: off)", 50.0, camera=True)
    local_light: bool = option(boolean, "a region whose pixels all brighten or darken by a similar factor (a lamp, a "
                               "shadow) is a lighting change, not motion", True, camera=True)
    shake: bool = option(boolean, "a frame explained by a small shift of the whole picture (wind on the camera) is "
                         "shake, not motion", True, camera=True)
    stable_frames: int = option(Number(int, 1, 10000), "an episode ends after this many frames in a row without motion",
                                20, camera=True)
    min_motion_frames: int = option(Number(int, 1, 10000), "an episode with fewer significant frames is discarded "
                                    "(keep: false)", 5, camera=True)
    mask: Mask = option(parsers.parse_mask, "regions to ignore: x,y,w,h rectangles in frame pixels separated by ; "
                        "(0,0,640,120;500,300,140,180), or an image file whose black areas are ignored (any size; it "
                        "is scaled to the frame)", Mask(), camera=True, see="detection.md")

    # Recording.
    recordings: Path = option(parsers.folder, "folder of the recordings (the recorder writes, the gateway serves)",
                              Path("recordings"), shown="./recordings", see="recordings.md")
    pre_seconds: float = option(Number(float, 0, 60), "footage kept from before the first frame of motion", 2.0,
                                camera=True)
    post_seconds: float = option(Number(float, 0, 600), "footage kept after the episode has ended (motion_end)", 1.0,
                                 camera=True)
    max_recording_seconds: float = option(Number(float, 10, 86400), "a recording this long is closed and the episode "
                                          "goes on in the next file; the two sidecars name each other (continued_in, "
                                          "continues)", 300.0, camera=True)
    max_disk: int = option(parsers.parse_size, "the most the recordings may take (5GB, 500MB); the oldest go first", 0,
                           shown="0: no limit", see="recordings.md")
    max_age: float = option(parsers.parse_duration, "recordings older than this are deleted (30d, 12h)", 0.0,
                            shown="0: kept forever")

    # The gateway.
    host: str = option(parsers.host, "address the web server listens on; 0.0.0.0 to reach it from the network, which "
                       "needs a password", "127.0.0.1", see="security.md")
    port: int = option(Number(int, 1, 65535), "web server port (python -m pipeline.gateway 8000 works too)", 8100)
    user: str = option(parsers.user, "user name of the login", "admin")
    password: str | None = option(parsers.nonempty, "the login's password (kept hashed in memory); prefer the "
                                  "variable or --password-file, since a flag shows in ps", secret=True,
                                  see="security.md")
    password_file: Path | None = option(parsers.password_file, "a file holding a password hash made by python -m "
                                        "pipeline.passwd", see="security.md")
    insecure_no_auth: bool = option(boolean, "listen beyond loopback without a password (anyone on the network can "
                                    "watch and delete; a WARNING at every start)", False)
    allowed_hosts: tuple[str, ...] = option(parsers.hosts, "more host names the page is reached by, comma-separated "
                                            "(a DNS name, a reverse proxy's name); DNS rebinding protection refuses "
                                            "others", (), see="security.md")
    tls_cert: Path | None = option(parsers.file, "PEM certificate chain: serve HTTPS (with --tls-key)",
                                   see="security.md")
    tls_key: Path | None = option(parsers.file, "PEM private key of --tls-cert")
    max_connections: int = option(Number(int, 1, 100000), "open HTTP connections at most; more are closed at once",
                                  200)
    max_connections_per_client: int = option(Number(int, 1, 100000), "open HTTP connections from one client address "
                                             "at most", 40)
    max_viewers_per_client: int = option(Number(int, 1, 10000), "live views (WebSocket and MJPEG) from one client "
                                         "address at most; more get 429", 8)
    metrics_token: str | None = option(parsers.token, "bearer token a Prometheus scraper may use for /metrics instead "
                                       "of the login (at least 16 characters)", shown="none: the login only",
                                       secret=True, see="integrations.md")

    # The logger.
    json: bool = option(boolean, "print events as JSON lines", False)
    frame_stats: bool = option(boolean, "also subscribe to frames and print, each second, fps and dropped frames per "
                               "camera", False)

    # Hooks and webhooks.
    on_motion_start: str | None = option(parsers.nonempty, "command run when motion starts (split like a shell line, "
                                         "never run by one)", see="integrations.md")
    on_motion_end: str | None = option(parsers.nonempty, "command run when motion ends", see="integrations.md")
    on_recording_saved: str | None = option(parsers.nonempty, "command run when a recording is saved; {path} is its "
                                            "mp4", see="integrations.md")
    on_camera_lost: str | None = option(parsers.nonempty, "command run when a camera sends no frame for "
                                        "--camera-lost-after seconds", see="integrations.md")
    on_camera_found: str | None = option(parsers.nonempty, "command run when a lost camera sends frames again",
                                         see="integrations.md")
    hook_timeout: float = option(Number(float, 0.1, 86400), "seconds a hook command may run before it is killed", 30.0)
    hook_max_running: int = option(Number(int, 1, 1000), "hook commands running at once at most; more are dropped and "
                                   "counted", 4)
    camera_lost_after: float = option(Number(float, 0.5, 86400), "seconds without frames after which a camera counts "
                                      "as lost", 10.0)
    webhook_url: str | None = option(parsers.nonempty, "http(s) URL(s), comma-separated, that get each event as a "
                                     "signed JSON POST", see="integrations.md")
    webhook_secret: str | None = option(parsers.nonempty, "key of the webhooks' HMAC-SHA256 signature "
                                        "(X-Camserver-Signature)", secret=True, see="integrations.md")

    # MQTT and Home Assistant.
    mqtt_host: str = option(parsers.host, "MQTT broker the mqtt stage publishes to", "localhost",
                            see="integrations.md")
    mqtt_port: int | None = option(Number(int, 1, 65535), "port of the MQTT broker",
                                   shown="1883; 8883 with --mqtt-tls")
    mqtt_user: str | None = option(parsers.nonempty, "user name at the MQTT broker", shown="none: anonymous")
    mqtt_password: str | None = option(parsers.nonempty, "password at the MQTT broker (prefer --mqtt-password-file: a "
                                       "flag shows in ps)", secret=True)
    mqtt_password_file: Path | None = option(parsers.file, "file whose first line is the password at the MQTT broker")
    mqtt_tls: bool = option(boolean, "connect to the MQTT broker over TLS, checking its certificate", False)
    mqtt_ca: Path | None = option(parsers.file, "PEM CA certificate(s) the MQTT broker's certificate is checked "
                                  "against", shown="the system's")
    mqtt_prefix: str = option(parsers.host, "first level of camserver's own MQTT topics", "camserver")
    mqtt_discovery_prefix: str = option(parsers.host, "Home Assistant's MQTT discovery prefix", "homeassistant")
    mqtt_node_id: str | None = option(parsers.host, "id of this camserver in discovery topics and unique ids "
                                      "(letters, digits, _ and -)", shown="the host name")
    mqtt_snapshot_seconds: float = option(Number(float, 0, 3600), "a camera's newest frame is published on MQTT at "
                                          "most this often, and at each motion start (0: only at motion start)", 2.0)
    gateway_url: str | None = option(parsers.host, "URL the gateway is reached at from Home Assistant (e.g. "
                                     "http://camserver.local:8100), for links to the live view and recordings")

    # Per camera of a config file, this stage's options with that camera's table applied: not an option.
    cameras: Mapping[str, Config] = field(default_factory=dict)


OPTIONS: dict[str, Option] = {
    each.name: Option(each.name, default=each.default, **each.metadata["option"])
    for each in fields(Config)
    if "option" in each.metadata and each.default is not MISSING
}
# What a [cameras.ID] table may set: the camera's source and picture, its detection and its recording.
CAMERA_OPTIONS = tuple(name for name, each in OPTIONS.items() if each.camera)
