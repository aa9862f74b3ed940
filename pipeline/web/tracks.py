"""Each camera's H.264 track in the gateway: fMP4 made once per frame, and the MSE viewers it is sent to.

One encode per camera serves every viewer: the encoder encodes a camera only while the gateway
holds its ``video.`` subscription (``Demand``), which it takes at the first MSE viewer and gives
back at the last one. A viewer who joins a running track asks for a key frame at once (rate-limited
per camera), so nobody waits for a GOP. Each viewer writes to its own socket and keeps at most
MAX_BEHIND fragments waiting; one that falls further behind drops them, is told how many
(``{"type": "drop", "frames": N}``) and goes on from the next key frame, so no viewer is ever more
than one GOP behind live and a slow phone never holds up the others.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import tornado.iostream
import tornado.websocket

from pipeline.protocol import Video
from pipeline.video import fmp4
from pipeline.video.nal import NAL_PPS, NAL_SPS, nal_type, split_annexb
from pipeline.web.viewers import Ending
from pipeline.web.wire import WS_BINARY, websocket_header, websocket_text

# A viewer with more fragments than this still waiting skips to the next key frame (about 2 s at 30 fps).
MAX_BEHIND = 60
# Key frames asked of the encoder for one camera at most this often: joins in a burst share one.
KEY_REQUEST_EVERY_S = 0.3


class Demand(Protocol):
    """How the gateway tells the bus which tracks it wants (pipeline/web/pump.py subscribes its socket)."""

    def want(self, camera: str) -> None: ...

    def release(self, camera: str) -> None: ...

    def key_frame(self, camera: str) -> None: ...


class MseViewer:
    """One MSE WebSocket: the codec answer and init segment at its first key frame, then every fragment.

    ``write`` hands whole WebSocket frames to the client's stream and returns the write's future
    (raising once the socket is gone); at most one write is outstanding, as with StreamViewer.
    """

    def __init__(self, camera: str, write: Callable[[bytes], object], end: Callable[[Ending], None]) -> None:
        self.camera = camera
        self.closed = False
        self._write, self._end = write, end
        self._init: bytes | None = None  # the init segment this viewer's MediaSource was given
        self._init_frame = b""  # that init as the WebSocket frame queued for it
        self._waiting: deque[bytes] = deque()
        self._in_flight = False
        self.dropped = 0  # fragments never sent since the last drop notice
        self.needs_key = True

    def offer(self, track: fmp4.Track, framed: bytes, key: bool) -> bool:
        """Take one fragment (already a WebSocket frame); True when the viewer needs a key frame to go on."""
        if self.closed:
            return False
        if self.needs_key and not key:
            self.dropped += 1
            return False
        if key and (self.needs_key or self._init is not track.init):  # a start, or the stream changed size
            self.needs_key = False
            if self._init is not track.init:
                self._init = track.init
                mime = f'video/mp4; codecs="{track.codec}"'
                self._waiting.append(websocket_text({"type": "mse", "value": mime}))
                self._init_frame = websocket_header(WS_BINARY, len(track.init)) + track.init
                self._waiting.append(self._init_frame)
            if self.dropped:
                self._waiting.append(websocket_text({"type": "drop", "frames": self.dropped}))
                self.dropped = 0
        elif len(self._waiting) >= MAX_BEHIND:
            if any(data is self._init_frame for data in self._waiting):
                self._init = None  # never sent: the codec answer and init go again with the next key frame
            fragments = sum(data[0] == 0x82 and data is not self._init_frame for data in self._waiting)
            self.dropped += fragments + 1
            self._waiting.clear()
            self.needs_key = True
            return True
        self._waiting.append(framed)
        self._send()
        return False

    def close(self) -> None:
        self._finish("closed")

    def _send(self) -> None:
        if self._in_flight or self.closed or not self._waiting:
            return
        try:
            written = None
            while self._waiting:
                written = self._write(self._waiting.popleft())
        except (tornado.iostream.StreamClosedError, tornado.websocket.WebSocketClosedError):
            self._finish("lost")
            return
        if written is not None and not written.done():  # type: ignore[attr-defined]
            self._in_flight = True
            written.add_done_callback(self._drained)  # type: ignore[attr-defined]

    def _drained(self, written: object) -> None:
        self._in_flight = False
        if written.exception() is None:  # type: ignore[attr-defined]
            self._send()
        else:
            self._finish("lost")

    def _finish(self, why: Ending) -> None:
        if not self.closed:
            self.closed = True
            self._waiting.clear()
            self._end(why)


class Tracks:
    """Every camera's track and its MSE viewers; the gateway wants a camera's track while it has viewers."""

    def __init__(self, demand: Demand, clock: Callable[[], float] = time.monotonic) -> None:
        self._demand, self._clock = demand, clock
        self._tracks: dict[str, tuple[bytes, fmp4.Track]] = {}  # camera -> (the SPS and PPS, its track)
        self._viewers: dict[str, set[MseViewer]] = {}
        self._asked_at: dict[str, float] = {}

    def join(self, viewer: MseViewer) -> None:
        viewers = self._viewers.setdefault(viewer.camera, set())
        viewers.add(viewer)
        if len(viewers) == 1:
            self._demand.want(viewer.camera)  # a new subscription starts with a key frame
            self._asked_at[viewer.camera] = self._clock()
        else:
            self._ask_key_frame(viewer.camera)

    def leave(self, viewer: MseViewer) -> None:
        viewers = self._viewers.get(viewer.camera)
        if viewers is None or viewer not in viewers:
            return
        viewers.discard(viewer)
        if not viewers:
            del self._viewers[viewer.camera]
            self._tracks.pop(viewer.camera, None)
            self._asked_at.pop(viewer.camera, None)
            self._demand.release(viewer.camera)

    def viewers_of(self, camera: str) -> int:
        return len(self._viewers.get(camera, ()))

    def publish(self, video: Video) -> None:
        """Make the fragment of one access unit once and offer it to the camera's viewers."""
        viewers = self._viewers.get(video.camera)
        if not viewers:
            return
        config, track = self._tracks.get(video.camera, (None, None))
        if video.key and video.config != config:  # the first key frame, or the stream changed size or profile
            config, track = self._tracks[video.camera] = (video.config, _track_of(video))
        if track is None:
            return  # joined between key frames: the one asked for is on its way
        fragment = track.fragment(video.ts, video.key, video.data)
        framed = websocket_header(WS_BINARY, len(fragment)) + fragment
        if any([viewer.offer(track, framed, video.key) for viewer in list(viewers)]):
            self._ask_key_frame(video.camera)

    def close(self) -> None:
        for viewers in list(self._viewers.values()):
            for viewer in list(viewers):
                viewer.close()

    def _ask_key_frame(self, camera: str) -> None:
        now = self._clock()
        if now - self._asked_at.get(camera, float("-inf")) >= KEY_REQUEST_EVERY_S:
            self._asked_at[camera] = now
            self._demand.key_frame(camera)


def _track_of(video: Video) -> fmp4.Track:
    units = split_annexb(video.config)
    sps = next(unit for unit in units if nal_type(unit) == NAL_SPS)
    pps = next(unit for unit in units if nal_type(unit) == NAL_PPS)
    return fmp4.Track(sps, pps, video.width, video.height)


def plays_h264(codecs: object) -> bool:
    """Whether a client's ``{"type": "mse", "value": CODECS}`` lists H.264 (go2rtc's clients list what they play)."""
    return isinstance(codecs, str) and any(codec.strip().startswith("avc1") for codec in codecs.split(",")[:64])


def parse_request(message: str | bytes) -> dict[str, object] | None:
    """A client's text message as go2rtc's clients send it, or None for anything else."""
    try:
        request = json.loads(message) if isinstance(message, str) else None
    except ValueError:
        return None
    return request if isinstance(request, dict) and isinstance(request.get("type"), str) else None
