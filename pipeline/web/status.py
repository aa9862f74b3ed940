"""Health and status: /healthz for monitors (public), /api/status for the page and scripts.

``/healthz`` is 200 when every camera that counts sent a frame within the last OFFLINE_AFTER_S (5 s)
and at least one camera exists, else 503; its JSON gives each camera's frame and event ages.

``/healthz?camera=ID`` is that one camera's health, for a monitor per camera: 200 while the camera
sends frames (one within the last 5 s), 503 once it has fallen silent, and 404 for a camera the
gateway does not know, one never seen since the gateway started or forgotten after its silence (a
camera that streamed is forgotten after an hour, a stray id after 5 s): to a monitor, 503 and 404
both mean down. The other cameras and the stages play no part in it. Like /healthz, it needs no
password: the camera names it can confirm are the ones plain /healthz lists anyway.

``/api/status?camera=ID`` is /api/status with that camera only under ``cameras`` (404 for one the
gateway does not know); the stages, the disk and the counts are the whole gateway's.
"""

from __future__ import annotations

import tornado.web

from pipeline.bus.sockets import Decoder
from pipeline.record.library import Library
from pipeline.web.base import Guarded, camera_argument, known_camera
from pipeline.web.hub import Hub


class Health(Guarded):
    """Public on purpose: a monitor or a container's health check has no password."""

    public = True

    def initialize(self, hub: Hub) -> None:
        self.hub = hub

    def get(self) -> None:
        camera = camera_argument(self)
        if camera is None:
            healthy, body = self.hub.health()
        else:
            found = self.hub.camera_health(camera)
            if found is None:
                raise tornado.web.HTTPError(404, "no camera %r: no frame has come from it", camera)
            healthy, body = found
        self.set_status(200 if healthy else 503)
        self.set_header("Cache-Control", "no-store")
        self.finish(body)


class Status(Guarded):
    def initialize(self, hub: Hub, library: Library, decoder: Decoder) -> None:
        self.hub, self.library, self.decoder = hub, library, decoder

    def get(self) -> None:
        camera = known_camera(self, self.hub.cameras)
        self.set_header("Cache-Control", "no-store")
        self.finish({**self.hub.overview(camera), "disk": self.library.disk(),
                     "malformed_messages": self.decoder.malformed})
