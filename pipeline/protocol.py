"""The wire protocol: every message a stage sends or receives over ZeroMQ, defined once.

Frames are published by capture, one message per frame, in three parts::

    +---------------------+------------------------------+-------------+
    | b"frame." + camera  | header: msgpack map          | JPEG bytes  |
    +---------------------+------------------------------+-------------+
    header = {"v": 1, "camera": str, "seq": int, "ts": float,
              "w": int, "h": int, "demo": bool}

Events are published by the detector (and later by other stages), in two parts::

    +---------------------+---------------------------------------------+
    | b"event." + camera  | body: msgpack map                           |
    +---------------------+---------------------------------------------+
    body = {"v": 1, "camera": str, "seq": int, "ts": float, "type": str, ...}

The topic comes first so that a SUB socket filters by prefix: ``b"frame."`` for every camera's
frames, ``b"frame.cam0"`` for one camera's. ZeroMQ matches prefixes, so ``b"frame.cam0"`` also
matches ``cam01``; decoding therefore checks that the header's camera equals the topic's.

``seq`` starts at 0 when capture starts and grows by one per frame, so a gap tells a subscriber
how many frames it missed and a drop back to a small number tells it capture restarted. ``ts`` is
Unix time at capture, the only clock every host shares; ages measured on one host should use that
host's monotonic clock instead. Headers may carry more keys than listed (later protocol versions
add, never change); a version this code does not know is refused rather than guessed at.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

PROTOCOL_VERSION = 1
FRAME_PREFIX = b"frame."
EVENT_PREFIX = b"event."
CAMERA_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
JPEG_SOI = b"\xff\xd8"

_EVENT_RESERVED = frozenset({"v", "camera", "seq", "ts", "type"})


class ProtocolError(ValueError):
    """A message that does not follow this protocol; receivers log it and skip it."""


def check_camera_id(camera: str) -> str:
    """Camera ids end up in topics, file names and URLs, so they are kept to a safe alphabet."""
    if not isinstance(camera, str) or not CAMERA_ID.fullmatch(camera):
        raise ProtocolError(f"bad camera id {camera!r}: use 1-64 letters, digits, '_' or '-'")
    return camera


def frame_topic(camera: str | None = None) -> bytes:
    """The subscription prefix for one camera's frames, or for every camera's when None."""
    return FRAME_PREFIX if camera is None else FRAME_PREFIX + camera.encode()


def event_topic(camera: str | None = None) -> bytes:
    """The subscription prefix for one camera's events, or for every camera's when None."""
    return EVENT_PREFIX if camera is None else EVENT_PREFIX + camera.encode()


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured picture and what a subscriber needs to know about it."""

    camera: str
    seq: int
    ts: float
    width: int
    height: int
    demo: bool
    jpeg: bytes

    def header(self) -> dict[str, Any]:
        return {
            "v": PROTOCOL_VERSION,
            "camera": self.camera,
            "seq": self.seq,
            "ts": self.ts,
            "w": self.width,
            "h": self.height,
            "demo": self.demo,
        }

    def encode(self) -> list[bytes]:
        return [frame_topic(self.camera), msgpack.packb(self.header()), self.jpeg]

    @classmethod
    def decode(cls, parts: Sequence[bytes]) -> Frame:
        if len(parts) != 3:
            raise ProtocolError(f"a frame has 3 parts, got {len(parts)}")
        topic, raw_header, jpeg = (bytes(p) for p in parts)
        header = _unpack_map(raw_header, "frame header")
        camera = _camera_for_topic(topic, FRAME_PREFIX, header)
        if not jpeg.startswith(JPEG_SOI):
            raise ProtocolError("frame payload is not a JPEG (no SOI marker)")
        return cls(
            camera=camera,
            seq=_get(header, "seq", int, minimum=0),
            ts=_get_ts(header),
            width=_get(header, "w", int, minimum=1),
            height=_get(header, "h", int, minimum=1),
            demo=_get(header, "demo", bool),
            jpeg=jpeg,
        )


@dataclass(frozen=True, slots=True)
class Event:
    """Something a stage noticed about one frame of one camera; ``data`` holds the type's own keys."""

    camera: str
    seq: int
    ts: float
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        clash = _EVENT_RESERVED.intersection(self.data)
        if clash:
            raise ProtocolError(f"event data may not use reserved keys {sorted(clash)}")
        return {
            "v": PROTOCOL_VERSION,
            "camera": self.camera,
            "seq": self.seq,
            "ts": self.ts,
            "type": self.type,
            **self.data,
        }

    def encode(self) -> list[bytes]:
        return [event_topic(self.camera), msgpack.packb(self.body())]

    @classmethod
    def decode(cls, parts: Sequence[bytes]) -> Event:
        if len(parts) != 2:
            raise ProtocolError(f"an event has 2 parts, got {len(parts)}")
        topic, raw_body = (bytes(p) for p in parts)
        body = _unpack_map(raw_body, "event body")
        camera = _camera_for_topic(topic, EVENT_PREFIX, body)
        event_type = _get(body, "type", str)
        if not event_type:
            raise ProtocolError("event type is empty")
        return cls(
            camera=camera,
            seq=_get(body, "seq", int, minimum=0),
            ts=_get_ts(body),
            type=event_type,
            data={k: v for k, v in body.items() if k not in _EVENT_RESERVED},
        )


def decode(parts: Sequence[bytes]) -> Frame | Event:
    """Decode any message by its topic, for sockets subscribed to both kinds."""
    topic = bytes(parts[0]) if parts else b""
    if topic.startswith(FRAME_PREFIX):
        return Frame.decode(parts)
    if topic.startswith(EVENT_PREFIX):
        return Event.decode(parts)
    raise ProtocolError(f"unknown topic {topic[:80]!r}")


def _unpack_map(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = msgpack.unpackb(raw, raw=False)
    except (msgpack.UnpackException, ValueError, TypeError) as exc:
        raise ProtocolError(f"{what} is not valid msgpack: {exc}") from None
    if not isinstance(value, Mapping):
        raise ProtocolError(f"{what} is a msgpack {type(value).__name__}, not a map")
    version = value.get("v")
    if type(version) is not int:
        raise ProtocolError(f"{what} has no integer protocol version 'v'")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"{what} has protocol version {version}, this code speaks {PROTOCOL_VERSION}")
    return dict(value)


def _camera_for_topic(topic: bytes, prefix: bytes, header: Mapping[str, Any]) -> str:
    camera = check_camera_id(_get(header, "camera", str))
    if topic != prefix + camera.encode():
        raise ProtocolError(f"topic {topic[:80]!r} does not match camera {camera!r}")
    return camera


def _get(mapping: Mapping[str, Any], key: str, kind: type, minimum: int | None = None) -> Any:
    if key not in mapping:
        raise ProtocolError(f"missing key {key!r}")
    value = mapping[key]
    # bool is a subclass of int: a seq of True is a bug on the sender's side, not a number.
    if type(value) is not kind:
        raise ProtocolError(f"key {key!r} should be {kind.__name__}, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ProtocolError(f"key {key!r} is {value}, below {minimum}")
    return value


def _get_ts(mapping: Mapping[str, Any]) -> float:
    if "ts" not in mapping:
        raise ProtocolError("missing key 'ts'")
    value = mapping["ts"]
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise ProtocolError(f"key 'ts' should be Unix seconds, got {value!r}")
    return float(value)
