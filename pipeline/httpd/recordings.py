"""The recordings: the page's list and player API, and the files themselves with HTTP Range."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tornado.web

from pipeline.httpd.base import Guarded, GuardedStatic, camera_argument, log
from pipeline.library import Library

MAX_PAGE = 500


def with_urls(sidecar: dict[str, Any]) -> dict[str, Any]:
    thumbnail = sidecar.get("thumbnail")
    return {**sidecar, "video_url": f"/recordings/{sidecar['video']}",
            "thumbnail_url": f"/recordings/{thumbnail}" if thumbnail else None}


class RecordingList(Guarded):
    """A page of recordings, newest first: ?limit=N&before=NAME&from=TS&to=TS."""

    def initialize(self, library: Library) -> None:
        self.library = library

    def get(self) -> None:
        limit = self._number("limit", int, 50)
        if not 1 <= limit <= MAX_PAGE:
            raise tornado.web.HTTPError(400, f"limit must be between 1 and {MAX_PAGE}")
        recordings, cursor = self.library.page(limit, self.get_argument("before", None),
                                               self._number("from", float, None), self._number("to", float, None),
                                               camera_argument(self))
        self.set_header("Cache-Control", "no-store")
        self.finish({"recordings": [with_urls(r) for r in recordings], "next": cursor})

    def _number(self, key: str, kind: type, default: Any) -> Any:
        raw = self.get_argument(key, None)
        if raw is None:
            return default
        try:
            return kind(raw)
        except ValueError:
            raise tornado.web.HTTPError(400, f"{key} must be a number, not {raw!r}") from None


class Recording(Guarded):
    def initialize(self, library: Library) -> None:
        self.library = library

    def get(self, name: str) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish(with_urls(self._sidecar(name)))

    def delete(self, name: str) -> None:
        self._sidecar(name)
        self.library.delete(name)
        log.info("deleted recording %s at the request of %s", name, self.current_user or self.request.remote_ip)
        self.finish({"deleted": name})

    def _sidecar(self, name: str) -> dict[str, Any]:
        sidecar = self.library.get(name)
        if sidecar is None:
            raise tornado.web.HTTPError(404, f"no recording named {name!r}")
        return sidecar


class RecordingFile(GuardedStatic):
    """Published recording files only: Tornado keeps requests inside the folder, this hides the rest."""

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        path = Path(absolute_path)
        served = Library(Path(root)).file(path.stem, path.suffix)
        # Only a regular file directly in the folder: no symlink, no subfolder (x%2F<name>.mp4).
        if served is None or os.path.abspath(served) != absolute_path:
            raise tornado.web.HTTPError(404)
        return super().validate_absolute_path(root, absolute_path)
