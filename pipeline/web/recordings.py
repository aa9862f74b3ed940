"""The recordings: the page's list and player API, and the files themselves with HTTP Range.

Each takes ``?camera=ID``, and a recording is checked against the camera it belongs to (the one
its name ends with): ``/api/recordings/NAME?camera=B`` and ``/recordings/F?camera=B`` of camera
A's recording are 404, as for a recording that does not exist, and so is its DELETE. The list
with ``?camera=`` holds that camera's recordings only, with ``?camera=`` on their video and
thumbnail URLs, so that a client kept to one camera stays kept to it; it is 404 for a camera the
gateway knows neither live nor from a recording. An id no camera can have is 400 everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tornado.web
from tornado.escape import url_escape

from pipeline.record.library import Library, parse_name
from pipeline.web.base import Guarded, GuardedStatic, camera_argument, log
from pipeline.web.hub import Hub

MAX_PAGE = 500


def with_urls(sidecar: dict[str, Any], camera: str | None = None) -> dict[str, Any]:
    """The sidecar with the URLs of its video and thumbnail, carrying ``?camera=`` when the client gave one."""
    query = "" if camera is None else f"?camera={url_escape(camera)}"
    thumbnail = sidecar.get("thumbnail")
    return {**sidecar, "video_url": f"/recordings/{sidecar['video']}{query}",
            "thumbnail_url": f"/recordings/{thumbnail}{query}" if thumbnail else None}


def belongs(name: str, camera: str | None) -> bool:
    """Whether the recording (or file stem) ``name`` is one of ``camera``'s; any recording when camera is None."""
    parsed = parse_name(name)
    return camera is None or (parsed is not None and parsed[0] == camera)


class RecordingList(Guarded):
    """A page of recordings, newest first: ?limit=N&before=NAME&from=TS&to=TS&camera=ID."""

    def initialize(self, library: Library, hub: Hub) -> None:
        self.library, self.hub = library, hub

    def get(self) -> None:
        limit = self._number("limit", int, 50)
        if not 1 <= limit <= MAX_PAGE:
            raise tornado.web.HTTPError(400, f"limit must be between 1 and {MAX_PAGE}")
        camera = camera_argument(self)
        recordings, cursor = self.library.page(limit, self.get_argument("before", None),
                                               self._number("from", float, None), self._number("to", float, None),
                                               camera)
        if camera is not None and not recordings and camera not in self.hub.cameras \
                and camera not in self.library.cameras():
            raise tornado.web.HTTPError(404, "no camera %r: it has no recordings and no frame has come from it",
                                        camera)
        self.set_header("Cache-Control", "no-store")
        self.finish({"recordings": [with_urls(r, camera) for r in recordings], "next": cursor})

    def _number(self, key: str, kind: type, default: Any) -> Any:
        raw = self.get_argument(key, None)
        if raw is None:
            return default
        try:
            return kind(raw)
        except ValueError:
            raise tornado.web.HTTPError(400, f"{key} must be a number, not {raw!r}") from None


class Recording(Guarded):
    """One recording's sidecar (GET) or its removal (DELETE); ?camera=ID must be the recording's camera."""

    def initialize(self, library: Library) -> None:
        self.library = library

    def get(self, name: str) -> None:
        camera = camera_argument(self)
        self.set_header("Cache-Control", "no-store")
        self.finish(with_urls(self._sidecar(name, camera), camera))

    def delete(self, name: str) -> None:
        self._sidecar(name, camera_argument(self))
        self.library.delete(name)
        log.info("deleted recording %s at the request of %s", name, self.current_user or self.request.remote_ip)
        self.finish({"deleted": name})

    def _sidecar(self, name: str, camera: str | None) -> dict[str, Any]:
        sidecar = self.library.get(name) if belongs(name, camera) else None
        if sidecar is None and camera is not None:
            raise tornado.web.HTTPError(404, "no recording named %r of camera %s", name, camera)
        if sidecar is None:
            raise tornado.web.HTTPError(404, "no recording named %r", name)
        return sidecar


class RecordingFile(GuardedStatic):
    """Published recording files only: Tornado keeps requests inside the folder, this hides the rest."""

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        path = Path(absolute_path)
        served = Library(Path(root)).file(path.stem, path.suffix) if belongs(path.stem, camera_argument(self)) else None
        # Only a regular file directly in the folder: no symlink, no subfolder (x%2F<name>.mp4).
        if served is None or os.path.abspath(served) != absolute_path:
            raise tornado.web.HTTPError(404)
        return super().validate_absolute_path(root, absolute_path)
