"""The H.264 live view: go2rtc's MSE WebSocket, so its players and Home Assistant's cards can use it too.

``/api/ws?src=CAMERA`` (``?camera=`` works too; neither: the default camera). The client sends
``{"type": "mse", "value": "<codecs it plays>"}``; the server answers
``{"type": "mse", "value": "video/mp4; codecs=\\"avc1.PPCCLL\\""}``, then the init segment as a
binary message, then one moof+mdat per frame (pipeline/web/tracks.py), starting at a key frame
asked for on the viewer's behalf. A client that lists no H.264 gets ``{"type": "error"}`` and the
socket closes. The same login, Host and Origin checks as every route (pipeline/web/base.py).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import tornado.web
import tornado.websocket

from pipeline.protocol import ProtocolError, check_camera_id
from pipeline.web.base import GuardedSocket, camera_argument
from pipeline.web.hub import Hub
from pipeline.web.tracks import MseViewer, Tracks, parse_request, plays_h264
from pipeline.web.viewers import Ending, StreamQuota, make_live


class MseSocket(GuardedSocket):
    """One viewer of one camera's H.264 track."""

    def initialize(self, hub: Hub, tracks: Tracks, quota: StreamQuota) -> None:
        self.hub, self.tracks, self.quota = hub, tracks, quota
        self.camera: str | None = None
        self.viewer: MseViewer | None = None
        self.counted = False

    async def get(self, *args: Any, **kwargs: Any) -> None:
        source = self.get_argument("src", None)
        try:
            self.camera = check_camera_id(source) if source is not None else camera_argument(self)
        except ProtocolError as exc:
            raise tornado.web.HTTPError(400, str(exc)) from None
        self.quota.refuse_if_full(self.request.remote_ip or "?")
        await super().get(*args, **kwargs)

    def open(self) -> None:
        self.quota.take(self.request.remote_ip or "?")
        self.counted = True
        make_live(self.ws_connection.stream)  # type: ignore[union-attr]

    def on_message(self, message: str | bytes) -> None:
        request = parse_request(message)
        if request is None or request["type"] != "mse" or self.viewer is not None:
            return  # go2rtc's clients send other kinds (webrtc, mp4) that this server does not offer
        camera = self.camera or self.hub.default_camera()
        if not plays_h264(request.get("value")) or camera is None:
            why = "no camera yet" if camera is None else "the browser plays no H.264 (avc1), this camera's codec"
            self.write_message(json.dumps({"type": "error", "value": why}))
            self.close(1003, why[:120])
            return
        self.viewer = MseViewer(camera, self._write, self._ended)
        self.tracks.join(self.viewer)

    def on_close(self) -> None:
        if self.viewer is not None:
            self.tracks.leave(self.viewer)
        if self.counted:
            self.quota.give_back(self.request.remote_ip or "?")

    def _write(self, data: bytes) -> object:
        """Whole WebSocket frames made once for every viewer, written as LiveSocket writes them."""
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            raise tornado.websocket.WebSocketClosedError()
        return connection.stream.write(data)  # type: ignore[attr-defined]

    def _ended(self, why: Ending) -> None:
        if why == "failed":
            self.settings["guard"].notes.log(logging.ERROR, "mse", "H.264 live view of %s failed; closing it",
                                             self.camera or "the default camera", exc_info=True)
            self.close(1011, "internal error")
        elif why == "closed" and self.ws_connection is not None:
            self.close(1001, "gateway stopping")
