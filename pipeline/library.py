"""The recordings folder: names, sidecars, atomic publication, listing, retention and recovery.

Each recording is three files sharing one name, ``<UTC start>_<camera>``, e.g.
``20261124T013207.123Z_cam0``: the video (``.mp4``), its thumbnail (``.jpg``) and a JSON sidecar
(``.json``). Names sort by start time across cameras and never collide for one camera. While a
recording is written it is ``.<name>.mp4.part``, a hidden name nobody lists or serves; it gets its
final name by an atomic rename once complete, and the sidecar is written last, so a recording is
listed only when all of it is there. Whatever a crash leaves behind is sorted out by ``recover``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import cv2

from pipeline.mp4 import probe, salvage

log = logging.getLogger("camserver.recorder")

VIDEO, THUMBNAIL, SIDECAR = ".mp4", ".jpg", ".json"
PART = ".mp4.part"
_NAME = re.compile(r"(\d{8}T\d{6}\.\d{3}Z)_([A-Za-z0-9_-]{1,64})")


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


def _starts_within(name: str, since: float | None, until: float | None) -> bool:
    parsed = parse_name(name)
    if parsed is None:
        return False
    return (since is None or parsed[1] >= since) and (until is None or parsed[1] < until)


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

    def part_path(self, name: str) -> Path:
        return self.root / f".{name}{PART}"

    def path(self, name: str, suffix: str) -> Path:
        return self.root / f"{name}{suffix}"

    def publish(self, name: str, part: Path, thumbnail: bytes | None, sidecar: dict[str, Any]) -> dict[str, Any]:
        """Give a finished ``part`` its final name, with thumbnail and sidecar; the sidecar as written."""
        if thumbnail is not None:
            write_atomically(self.path(name, THUMBNAIL), thumbnail)
        video = self.path(name, VIDEO)
        part.replace(video)
        sidecar = {
            **sidecar,
            "name": name,
            "video": video.name,
            "thumbnail": self.path(name, THUMBNAIL).name if thumbnail is not None else None,
            "size": video.stat().st_size,
        }
        write_atomically(self.path(name, SIDECAR), json.dumps(sidecar, indent=1).encode())
        self._sync_folder()
        return sidecar

    def recordings(self) -> list[dict[str, Any]]:
        """Every complete recording's sidecar, newest first; unreadable sidecars are skipped."""
        return self.page(limit=None)[0]

    def page(
        self, limit: int | None, before: str | None = None, since: float | None = None, until: float | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Sidecars newest first: older than the name ``before``, started in [since, until), at most
        ``limit``; and the name to pass as ``before`` for the next page (None on the last one).

        Names carry the start time, so filtering and paging read only the sidecars returned.
        """
        names = [name for name in reversed(self._names())
                 if (before is None or name < before) and _starts_within(name, since, until)]
        found = []
        for name in names[:limit]:
            sidecar = self.get(name)
            if sidecar is not None:
                found.append(sidecar)
        more = limit is not None and len(names) > limit
        return found, names[limit - 1] if more and limit else None

    def get(self, name: str) -> dict[str, Any] | None:
        """One recording's sidecar, or None when there is no such (complete, readable) recording."""
        if parse_name(name) is None:
            return None
        path = self.path(name, SIDECAR)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("skipping unreadable sidecar %s: %s", path.name, exc)
            return None

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
