"""The web app's page and its scripts and styles (pipeline/web/static/)."""

from __future__ import annotations

from collections.abc import Awaitable

from pipeline.web.base import GuardedStatic, camera_argument


class Page(GuardedStatic):
    """Static files; each answer also sets the XSRF cookie the page's DELETE and logout send back.

    ``/?camera=ID`` is the page of one camera, which the page's script shows; an id no camera can
    have is 400 here already. One not seen yet is the page's to say: it waits for the camera.
    """

    def get(self, path: str, include_body: bool = True) -> Awaitable[None]:
        camera_argument(self)
        self.xsrf_token  # noqa: B018  (reading it sets the cookie when the browser has none)
        return super().get(path, include_body)
