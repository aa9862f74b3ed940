"""The web app's page and its scripts and styles (pipeline/web/)."""

from __future__ import annotations

from collections.abc import Awaitable

from pipeline.httpd.base import GuardedStatic


class Page(GuardedStatic):
    """Static files; each answer also sets the XSRF cookie the page's DELETE and logout send back."""

    def get(self, path: str, include_body: bool = True) -> Awaitable[None]:
        self.xsrf_token  # noqa: B018  (reading it sets the cookie when the browser has none)
        return super().get(path, include_body)
