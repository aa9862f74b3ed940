"""The options' value parsers: text from a flag, a variable or the config file to a checked value.

Each takes the text and returns the value or raises ValueError with what was expected; the loader
adds which option and where the text came from. Flags, variables and the file share them, so a
value means the same wherever it is written.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.passwd import check_hash
from pipeline.protocol import ProtocolError, check_camera_id


class Source(NamedTuple):
    """Where capture reads frames from; ``kind`` is one of auto, demo, webcam, file, url."""

    kind: str
    target: str | int | None = None

    def __str__(self) -> str:
        return self.kind if self.target is None else str(self.target)


class Mask(NamedTuple):
    """Regions the detector ignores: rectangles (x, y, w, h in frame pixels) or an image file."""

    rects: tuple[tuple[int, int, int, int], ...] = ()
    image: str | None = None

    def __str__(self) -> str:
        if self.image is not None:
            return self.image
        return ";".join(",".join(str(n) for n in rect) for rect in self.rects) or "none"


class Number:
    """A number within a range (and even, for a picture's sides); the range is shown in the options' reference."""

    def __init__(self, kind: Callable[[str], Any], low: float, high: float, even: bool = False) -> None:
        self.kind, self.low, self.high, self.even = kind, low, high, even

    def __call__(self, text: str) -> Any:
        try:
            value = self.kind(text)
        except ValueError:
            raise ValueError(f"expected a{'n integer' if self.kind is int else ' number'}") from None
        if not self.low <= value <= self.high:
            low, high = self._bounds()
            raise ValueError(f"must be between {low} and {high}")
        if self.even and value % 2:
            raise ValueError("must be even (video encoders need even sizes)")
        return value

    @property
    def values(self) -> str:
        """The range as the reference shows it: ``0.1 to 120``, ``16 to 7680, even``."""
        low, high = self._bounds()
        return f"{low} to {high}" + (", even" if self.even else "")

    def _bounds(self) -> tuple[str, str]:
        shown = [f"{bound:g}" if self.kind is float else str(bound) for bound in (self.low, self.high)]
        return shown[0], shown[1]


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true/false, yes/no, on/off or 1/0")


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


def camera_id(text: str) -> str:
    try:
        return check_camera_id(text)
    except ProtocolError as exc:
        raise ValueError(str(exc)) from None


def log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return level


def folder(text: str) -> Path:
    path = Path(text.strip()).expanduser()
    if not text.strip():
        raise ValueError("must not be empty")
    if path.exists() and not path.is_dir():
        raise ValueError("exists and is not a folder")
    return path


def host(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def hosts(text: str) -> tuple[str, ...]:
    """Host names (no scheme, no port) separated by commas, lowercased as browsers send them."""
    names = tuple(name.strip().lower().rstrip(".") for name in text.split(",") if name.strip())
    for name in names:
        if not re.fullmatch(r"[a-z0-9_.-]+|\[?[0-9a-f:.]+\]?", name):
            raise ValueError(f"{name!r} is not a host name such as camera.example or 192.168.1.20")
    return names


def user(text: str) -> str:
    if not re.fullmatch(r"[^:\s]{1,64}", text):
        raise ValueError("expected 1 to 64 characters without spaces or ':'")
    return text


def nonempty(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


def token(value: str) -> str:
    """A token sent in an HTTP header: printable, no spaces, and long enough not to be guessed."""
    if not re.fullmatch(r"[\x21-\x7e]{16,256}", value):
        raise ValueError("expected 16 to 256 printable characters without spaces (e.g. from `openssl rand -hex 32`)")
    return value


def password_file(value: str) -> Path:
    path = Path(value.strip()).expanduser()
    try:
        check_hash(path.read_text(errors="replace"))
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror})") from None
    return path


def key_folder(value: str) -> Path:
    path = Path(value.strip()).expanduser()
    if not path.is_dir():
        raise ValueError("no such folder (make one with python -m pipeline.keys FOLDER)")
    return path


def file(value: str) -> Path:
    path = Path(value.strip()).expanduser()
    if not path.is_file():
        raise ValueError("no such file")
    return path
