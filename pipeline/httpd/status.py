"""Health and status: /healthz for monitors (public), /api/status for the page and scripts."""

from __future__ import annotations

from pipeline.bus import Decoder
from pipeline.httpd.base import Guarded
from pipeline.hub import Hub
from pipeline.library import Library


class Health(Guarded):
    """Public on purpose: a monitor or a container's health check has no password."""

    public = True

    def initialize(self, hub: Hub) -> None:
        self.hub = hub

    def get(self) -> None:
        healthy, body = self.hub.health()
        self.set_status(200 if healthy else 503)
        self.set_header("Cache-Control", "no-store")
        self.finish(body)


class Status(Guarded):
    def initialize(self, hub: Hub, library: Library, decoder: Decoder) -> None:
        self.hub, self.library, self.decoder = hub, library, decoder

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish({**self.hub.overview(), "disk": self.library.disk(), "malformed_messages": self.decoder.malformed})
