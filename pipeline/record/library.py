"""The recordings folder: names, sidecars, atomic publication, listing, retention and recovery.

Each recording is three files sharing one name, ``<UTC start>_<camera>``, e.g.
``20261124T013207.123Z_cam0``: the video (``.mp4``), its thumbnail (``.jpg``) and a JSON sidecar
(``.json``). Names sort by start time across cameras and never collide for one camera. While a
recording is written it is ``.<name>.mp4.part``, a hidden name nobody lists or serves; it gets its
final name by an atomic rename once complete, and the sidecar is written last, so a recording is
listed only when all of it is there. Whatever a crash leaves behind is sorted out by ``recover``.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import shutil
import stat
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import cv2

from pipeline.record.mp4 import probe, salvage

log = logging.getLogger("camserver.recorder")

VIDEO, THUMBNAIL, SIDECAR = ".mp4", ".jpg", ".json"
PART = ".mp4.part"
_NAME = re.compile(r"(\d{8}T\d{6}\.\d{3}Z)_([A-Za-z0-9_-]{1,64})")
# Ours are under a kilobyte: a bigger one was not written by publish, and is not read whole.
MAX_SIDECAR_BYTES = 64 * 1024


def recording_name(camera: str, start_ts: float) -> str:
    stamp = datetime.fromtimestamp(start_ts, UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3]
    return f"{stamp}Z_{camera}"


def parse_name(name: str) -> tuple[str, float] | None:
    """(camera, start ts) of a recording name, or None for any other file name."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    try:
        start = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    except ValueError:  # the right shape but no real date (month 13): not one of ours
        return None
    return match.group(2), start.timestamp()


def _camera_of(name: str) -> str | None:
    parsed = parse_name(name)
    return None if parsed is None else parsed[0]


def _starts_within(name: str, since: float | None, until: float | None) -> bool:
    parsed = parse_name(name)
    if parsed is None:
        return False
    return (since is None or parsed[1] >= since) and (until is None or parsed[1] < until)


def _refuse_constant(token: str) -> Any:
    """json's hook for NaN and Infinity: Python reads them, but a browser's JSON.parse does not."""
    raise ValueError(f"{token} is not a JSON number")


def _finite_float(text: str) -> float:
    """json's hook for numbers with a fraction or exponent: 1e999 reads as inf, which is not JSON either."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is out of range")
    return number


def _is_number(value: object) -> bool:
    """A JSON number: Python's bool is an int, but true is no duration."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _sidecar_problem(name: str, sidecar: object) -> str | None:
    """Why a decoded sidecar cannot be listed, or None when the API and the page can rely on it.

    The API builds the video and thumbnail URLs from ``video`` and ``thumbnail`` and the page shows
    ``camera`` and ``duration``: those must be there and be this recording's own. ``start`` may be
    missing (the page takes it from the name) but must be a number when it is there.
    """
    if not isinstance(sidecar, dict):
        return f"a JSON {type(sidecar).__name__}, not an object"
    if sidecar.get("name") != name:
        return "its name is not the file's"
    if sidecar.get("video") != f"{name}{VIDEO}":
        return "its video is not the recording's"
    if sidecar.get("thumbnail") not in (None, f"{name}{THUMBNAIL}"):
        return "its thumbnail is not the recording's"
    if not isinstance(sidecar.get("camera"), str):
        return "no camera"
    if not _is_number(sidecar.get("duration")):
        return "no duration"
    if sidecar.get("start") is not None and not _is_number(sidecar["start"]):
        return "a start that is not a number"
    return None


def _read_sidecar(path: Path) -> Any:
    """The decoded JSON of ``path``; ValueError unless it is a small regular file of valid, finite JSON.

    Opened without following a symlink, which could make the gateway serve any file it can read.
    O_NONBLOCK because opening a FIFO for reading would otherwise wait for a writer forever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError("a symbolic link") from None
        raise
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        data = file.read(MAX_SIDECAR_BYTES + 1)
    if len(data) > MAX_SIDECAR_BYTES:
        raise ValueError(f"larger than {MAX_SIDECAR_BYTES} bytes")
    try:
        return json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` holds either nothing or all of it, even after a power cut."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    tmp.replace(path)


def thumbnail_from_video(path: Path) -> bytes | None:
    """A JPEG of the frame in the middle of a video, for recordings whose best frame is unknown."""
    try:
        with av.open(str(path)) as container:
            frames = [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
    except (av.FFmpegError, OSError):
        return None
    if not frames:
        return None
    ok, jpeg = cv2.imencode(".jpg", frames[len(frames) // 2], [cv2.IMWRITE_JPEG_QUALITY, 80])
    return jpeg.tobytes() if ok else None


class Library:
    """One recordings folder, shared by the recorder (which writes) and the gateway (which reads)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Sidecars already warned about: the gateway reads them again for every listing.
        self._skipped: set[str] = set()

    def part_path(self, name: str) -> Path:
        return self.root / f".{name}{PART}"

    def path(self, name: str, suffix: str) -> Path:
        return self.root / f"{name}{suffix}"

    def file(self, name: str, suffix: str) -> Path | None:
        """The file of a recording to serve, or None unless it is a regular file in the folder itself.

        A symlink is refused wherever it points: even inside the folder it could name a ``.part``
        being written or another recording's file.
        """
        if parse_name(name) is None or suffix not in (VIDEO, THUMBNAIL, SIDECAR):
            return None
        path = self.path(name, suffix)
        try:
            return path if stat.S_ISREG(path.lstat().st_mode) else None
        except OSError:
            return None

    def publish(self, name: str, part: Path, thumbnail: bytes | None, sidecar: dict[str, Any]) -> dict[str, Any]:
        """Give a finished ``part`` its final name, with thumbnail and sidecar; the sidecar as written.

        ValueError, before anything is renamed or written, for a sidecar holding NaN or infinity:
        JSON has no such numbers, and the API would send them on to browsers that cannot parse them.
        """
        video = self.path(name, VIDEO)
        sidecar = {
            **sidecar,
            "name": name,
            "video": video.name,
            "thumbnail": self.path(name, THUMBNAIL).name if thumbnail is not None else None,
            "size": part.stat().st_size,
        }
        encoded = json.dumps(sidecar, indent=1, allow_nan=False).encode()
        if thumbnail is not None:
            write_atomically(self.path(name, THUMBNAIL), thumbnail)
        part.replace(video)
        write_atomically(self.path(name, SIDECAR), encoded)
        self._sync_folder()
        return sidecar

    def recordings(self) -> list[dict[str, Any]]:
        """Every complete recording's sidecar, newest first; unreadable or invalid sidecars are skipped."""
        return self.page(limit=None)[0]

    def page(
        self, limit: int | None, before: str | None = None, since: float | None = None, until: float | None = None,
        camera: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Sidecars newest first: of ``camera`` (or every camera), older than the name ``before``, started
        in [since, until), at most ``limit``; and the name to pass as ``before`` for the next page (None
        on the last one).

        Names carry the camera and the start time, so filtering and paging read only the sidecars returned.
        """
        names = [name for name in reversed(self._names())
                 if (before is None or name < before) and _starts_within(name, since, until)
                 and (camera is None or _camera_of(name) == camera)]
        found = []
        for name in names[:limit]:
            sidecar = self.get(name)
            if sidecar is not None:
                found.append(sidecar)
        more = limit is not None and len(names) > limit
        return found, names[limit - 1] if more and limit else None

    def cameras(self) -> set[str]:
        """The cameras that have recordings here, as the recordings' names say."""
        return {camera for name in self._names() if (camera := _camera_of(name)) is not None}

    def get(self, name: str) -> dict[str, Any] | None:
        """One recording's sidecar, or None when there is no such (complete, valid) recording.

        Checked here, where it is read, so that one broken or hostile file cannot fail a whole
        listing or put invalid JSON in the API: it is skipped, with a warning once per file.
        """
        if parse_name(name) is None:
            return None
        path = self.path(name, SIDECAR)
        try:
            sidecar = _read_sidecar(path)
            problem = _sidecar_problem(name, sidecar)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            problem = str(exc)
        if problem is not None:
            if name not in self._skipped:
                self._skipped.add(name)
                log.warning("skipping sidecar %s: %s", path.name, problem)
            return None
        self._skipped.discard(name)
        return sidecar

    def disk(self) -> dict[str, int]:
        """Bytes the recordings use, and free and total bytes on their filesystem."""
        usage = shutil.disk_usage(self.root if self.root.is_dir() else Path.cwd())
        return {"recordings_bytes": self.usage(), "free_bytes": usage.free, "total_bytes": usage.total}

    def delete(self, name: str) -> None:
        """Remove a recording, sidecar first so that it leaves the listing before its files go."""
        for suffix in (SIDECAR, VIDEO, THUMBNAIL):
            self.path(name, suffix).unlink(missing_ok=True)

    def usage(self) -> int:
        """Bytes used by complete recordings."""
        return sum(self._size(name) for name in self._names())

    def enforce(self, max_bytes: int, max_age_s: float, now: float | None = None) -> list[str]:
        """Delete the oldest recordings until within both limits (0 means no limit); their names."""
        now = time.time() if now is None else now
        names = self._names()
        sizes = {name: self._size(name) for name in names}
        total = sum(sizes.values())
        deleted = []
        for name in names:
            parsed = parse_name(name)
            too_old = max_age_s > 0 and parsed is not None and parsed[1] < now - max_age_s
            too_big = max_bytes > 0 and total > max_bytes
            if not (too_old or too_big):
                break
            self.delete(name)
            total -= sizes[name]
            deleted.append(name)
        if deleted:
            log.info("retention: deleted %d recording(s), oldest first: %s", len(deleted), ", ".join(deleted))
        return deleted

    def recover(self) -> list[dict[str, Any]]:
        """Make leftovers of a crash whole again: salvage .part files, complete half-published ones.

        Returns the sidecars of the recordings it saved. Nothing with a temporary name remains.
        """
        if not self.root.is_dir():
            return []
        saved = []
        for pattern in (".*.tmp", ".*.salvage"):
            for leftover in self.root.glob(pattern):
                leftover.unlink(missing_ok=True)
        for part in sorted(self.root.glob(f".*{PART}")):
            name = part.name[1:-len(PART)]
            parsed = parse_name(name)
            salvaged = part.with_name(part.name + ".salvage")
            info = salvage(part, salvaged) if parsed is not None else None
            part.unlink(missing_ok=True)
            if info is None:
                salvaged.unlink(missing_ok=True)
                log.warning("removed %s: nothing in it is playable", part.name)
                continue
            saved.append(self._publish_recovered(name, salvaged, info[0], info[1]))
            log.warning("recovered %s: %.1f s of footage, marked cut short", name, info[0])
        for video in sorted(self.root.glob(f"*{VIDEO}")):
            if parse_name(video.stem) is not None and not self.path(video.stem, SIDECAR).exists():
                info = probe(video)
                if info is None:
                    video.unlink()
                    continue
                saved.append(self._publish_recovered(video.stem, video, info[0], info[1]))
        return saved

    def _publish_recovered(self, name: str, video: Path, duration: float, frames: int) -> dict[str, Any]:
        camera, start = parse_name(name) or ("", 0.0)
        thumb = self.path(name, THUMBNAIL)
        thumbnail = thumb.read_bytes() if thumb.exists() else thumbnail_from_video(video)
        return self.publish(name, video, thumbnail, {
            "camera": camera, "start": start, "end": start + duration, "duration": round(duration, 3),
            "frames": frames, "significant_frames": None, "peak_delta": None, "cut_short": True,
        })

    def _names(self) -> list[str]:
        """Names of complete recordings, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob(f"*{SIDECAR}") if parse_name(p.stem) is not None)

    def _size(self, name: str) -> int:
        return sum(path.stat().st_size for suffix in (VIDEO, THUMBNAIL, SIDECAR)
                   if (path := self.path(name, suffix)).exists())

    def _sync_folder(self) -> None:
        """A rename is durable only once the folder itself is synced."""
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
