"""Which cameras' H.264 tracks are wanted, from the subscriptions the encoder's XPUB socket hears.

A subscription is the request (docs/protocol.md): a camera is encoded while some subscriber holds a
topic its track matches, a repeated subscription asks for a key frame, and ZeroMQ unsubscribes a
subscriber that leaves or dies, so demand never outlives the viewers. Free of sockets and clocks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from pipeline.protocol import video_topic

# A viewer reloading its page comes back within this long and finds its camera's encoder still open.
KEEP_S = 10.0
# Viewers joining together share one forced key frame; a later one waits at most this long for its own.
KEY_EVERY_S = 0.3
SUBSCRIBE, UNSUBSCRIBE = 1, 0


class Demand:
    """Which cameras' tracks are wanted and when a key frame is due, from the XPUB's subscription messages.

    Topics are prefixes as ZeroMQ matches them: ``video.cam0`` wants cam0 (and cam01, whose track
    it matches too), ``video.`` and the empty topic want every camera, ``stage.`` none.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._asked: dict[bytes, float] = {}  # each held topic: when it was last subscribed to
        self._keyed: dict[str, float] = {}  # each camera: when its last key frame was asked of the encoder
        self._unwanted: dict[str, float] = {}  # each open encoder nobody wants: since when

    def note(self, message: bytes) -> None:
        """Take one message the XPUB received: a (repeated) subscription or the last unsubscription."""
        if message[:1] == bytes([SUBSCRIBE]):
            self._asked[message[1:]] = self._clock()
        elif message[:1] == bytes([UNSUBSCRIBE]):
            self._asked.pop(message[1:], None)

    def wants(self, camera: str) -> bool:
        track = video_topic(camera)
        return any(track.startswith(topic) for topic in self._asked)

    def key_due(self, camera: str) -> bool:
        """Whether a subscription came since the camera's last key frame was asked for, and it may have one now."""
        track, now = video_topic(camera), self._clock()
        asked = max((at for topic, at in self._asked.items() if track.startswith(topic)), default=None)
        keyed = self._keyed.get(camera, float("-inf"))
        if asked is None or asked <= keyed or now - keyed < KEY_EVERY_S:
            return False
        self._keyed[camera] = now
        return True

    def idle(self, active: Iterable[str]) -> list[str]:
        """The cameras among ``active`` (encoders open) that nobody has wanted for KEEP_S: free them."""
        now = self._clock()
        self._unwanted = {camera: self._unwanted.get(camera, now) for camera in active if not self.wants(camera)}
        return [camera for camera, since in self._unwanted.items() if now - since >= KEEP_S]

    def forget(self, camera: str) -> None:
        self._keyed.pop(camera, None)
