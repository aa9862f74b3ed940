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

A camera's H.264 track is published by the encoder stage (by capture too, later, for a camera that
sends H.264 itself), one access unit per message, in three parts::

    +---------------------+------------------------------+----------------------------+
    | b"video." + camera  | header: msgpack map          | access unit, Annex B       |
    +---------------------+------------------------------+----------------------------+
    header = {"v": 1, "camera": str, "seq": int, "ts": float, "key": bool,
              "w": int, "h": int, "codec": "avc1.PPCCLL", "config": bytes}

``ts`` is the capture time of the picture, ``key`` marks an IDR access unit, where decoding can
start, and ``config`` holds the SPS and PPS (Annex B) with every key frame and only then, so a
subscriber can start at any key frame. A subscription is a request: the encoder encodes a camera
only while some subscriber holds its ``video.`` topic, and subscribing again to a topic already
held asks for a key frame now (docs/protocol.md).

Every stage also says that it runs, camera or no camera, every HEARTBEAT_EVERY_S on the socket it
publishes on (capture on its frames socket, detector and recorder on their events sockets)::

    +---------------------+---------------------------------------------+
    | b"stage." + stage   | body: msgpack map {"v": 1, "stage": str,    |
    |                     |   "ts": float, "counters": {str: int}}      |
    +---------------------+---------------------------------------------+

so that stage health never depends on whether a camera is sending frames. ``counters`` (optional:
absent in older stages' heartbeats, read as none) are the stage's running totals since it started,
which the gateway reports on /metrics: at most MAX_COUNTERS, named like COUNTER_NAME, each a whole
number from 0 to 2**63 - 1.

The topic comes first so that a SUB socket filters by prefix: ``b"frame."`` for every camera's
frames, ``b"frame.cam0"`` for one camera's. ZeroMQ matches prefixes, so ``b"frame.cam0"`` also
matches ``cam01``; decoding therefore checks that the header's camera equals the topic's.

``seq`` starts at 0 when capture starts and grows by one per frame, so a gap tells a subscriber
how many frames it missed and a drop back to a small number tells it capture restarted. ``ts`` is
Unix time at capture, the only clock every host shares; ages measured on one host should use that
host's monotonic clock instead. Headers may carry more keys than listed (later protocol versions
add, never change); a version this code does not know is refused rather than guessed at.

Decoding is the one place where bytes from the network become values, so it checks everything a
consumer will rely on, and the stages past it stay short. A frame's ``ts`` is a plausible Unix time
(0 to the year 2100: every date library can format it and every pts fits); its ``w`` and ``h`` are
at most MAX_SIDE, at most MAX_PIXELS together, and equal to the size in the JPEG's own frame
header (SOF), read without decoding, so no consumer sizes an allocation from a number a peer made
up. An event's own keys hold only what JSON can say — no bytes, no NaN or infinity — nested at
most MAX_DATA_DEPTH deep and MAX_DATA_ITEMS values in all, so every consumer can print it, store
it in a sidecar and send it to a browser.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from pipeline.video.nal import NAL_IDR, NAL_PPS, NAL_SPS, BitstreamError, nal_type, parse_sps, split_annexb
from pipeline.video.nal import starts_with_start_code as _annexb

PROTOCOL_VERSION = 1
FRAME_PREFIX = b"frame."
EVENT_PREFIX = b"event."
STAGE_PREFIX = b"stage."
VIDEO_PREFIX = b"video."
# How often a stage sends its heartbeat; a listener counts a stage down after a few missed ones.
HEARTBEAT_EVERY_S = 2.0
CAMERA_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
JPEG_SOI = b"\xff\xd8"
MAX_TS = 4_102_444_800.0  # 2100-01-01 UTC
MAX_SIDE = 8192
MAX_PIXELS = 7680 * 4320  # 8K UHD
MAX_DATA_DEPTH = 8
MAX_DATA_ITEMS = 10_000
# An H.264 access unit at most: an IDR of 8K at a high bitrate stays well under it.
MAX_ACCESS_UNIT = 8 * 1024 * 1024
MAX_CONFIG = 4096
CODEC = re.compile(r"avc1\.[0-9a-f]{6}")
# A heartbeat's counters: few, named for a metric, and whole numbers a Prometheus counter can hold.
MAX_COUNTERS = 32
COUNTER_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_COUNTER = 2**63 - 1
# Start-of-frame markers of every JPEG coding process; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
# Markers that stand alone, without a length: TEM and the restart markers.
_BARE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})

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
        frame = cls(
            camera=camera,
            seq=_get(header, "seq", int, minimum=0),
            ts=_get_ts(header),
            width=_get(header, "w", int, minimum=1, maximum=MAX_SIDE),
            height=_get(header, "h", int, minimum=1, maximum=MAX_SIDE),
            demo=_get(header, "demo", bool),
            jpeg=jpeg,
        )
        if frame.width * frame.height > MAX_PIXELS:
            raise ProtocolError(f"frame of {frame.width}x{frame.height} is larger than {MAX_PIXELS} pixels")
        actual = jpeg_size(jpeg)
        if actual != (frame.width, frame.height):
            raise ProtocolError(f"frame header says {frame.width}x{frame.height}, its JPEG is {actual[0]}x{actual[1]}")
        return frame


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
            data=_check_data({k: v for k, v in body.items() if k not in _EVENT_RESERVED}),
        )


def video_topic(camera: str | None = None) -> bytes:
    """The subscription prefix for one camera's H.264 track, or for every camera's when None."""
    return VIDEO_PREFIX if camera is None else VIDEO_PREFIX + camera.encode()


@dataclass(frozen=True, slots=True)
class Video:
    """One H.264 access unit of a camera's track, with what a subscriber needs to start or go on decoding."""

    camera: str
    seq: int
    ts: float
    key: bool
    width: int
    height: int
    codec: str
    data: bytes
    config: bytes = b""

    def encode(self) -> list[bytes]:
        header = {"v": PROTOCOL_VERSION, "camera": self.camera, "seq": self.seq, "ts": self.ts, "key": self.key,
                  "w": self.width, "h": self.height, "codec": self.codec, "config": self.config}
        return [video_topic(self.camera), msgpack.packb(header), self.data]

    @classmethod
    def decode(cls, parts: Sequence[bytes]) -> Video:
        """A video message, its size and profile checked against its own SPS, its key flag against its NAL types."""
        if len(parts) != 3:
            raise ProtocolError(f"a video message has 3 parts, got {len(parts)}")
        topic, raw_header, data = (bytes(p) for p in parts)
        header = _unpack_map(raw_header, "video header")
        video = cls(
            camera=_camera_for_topic(topic, VIDEO_PREFIX, header),
            seq=_get(header, "seq", int, minimum=0),
            ts=_get_ts(header),
            key=_get(header, "key", bool),
            width=_get(header, "w", int, minimum=1, maximum=MAX_SIDE),
            height=_get(header, "h", int, minimum=1, maximum=MAX_SIDE),
            codec=_get(header, "codec", str),
            data=data,
            config=_get(header, "config", bytes),
        )
        if video.width * video.height > MAX_PIXELS:
            raise ProtocolError(f"video of {video.width}x{video.height} is larger than {MAX_PIXELS} pixels")
        if not CODEC.fullmatch(video.codec):
            raise ProtocolError(f"video codec {video.codec[:40]!r} is not avc1.PPCCLL")
        if not 0 < len(data) <= MAX_ACCESS_UNIT or not _annexb(data):
            raise ProtocolError(f"video access unit of {len(data)} bytes is not Annex B H.264 up to {MAX_ACCESS_UNIT}")
        try:
            types = {nal_type(unit) for unit in split_annexb(data)}
            if video.key != (NAL_IDR in types):
                has = "has no" if video.key else "has an"
                raise ProtocolError(f"video key flag is {video.key}, but its access unit {has} IDR slice")
            if video.key:
                video._check_config()
            elif video.config:
                raise ProtocolError("video config (SPS, PPS) comes with key frames only")
        except BitstreamError as exc:
            raise ProtocolError(f"video of {video.camera}: {exc}") from None
        return video

    def _check_config(self) -> None:
        if not 0 < len(self.config) <= MAX_CONFIG or not _annexb(self.config):
            raise ProtocolError(f"a key frame's config of {len(self.config)} bytes is not Annex B SPS and PPS")
        units = split_annexb(self.config)
        sps = [unit for unit in units if nal_type(unit) == NAL_SPS]
        if len(sps) != 1 or not any(nal_type(unit) == NAL_PPS for unit in units):
            raise ProtocolError("a key frame's config holds one SPS and a PPS")
        parsed = parse_sps(sps[0])
        if (parsed.width, parsed.height) != (self.width, self.height) or parsed.codec != self.codec:
            raise ProtocolError(f"video header says {self.width}x{self.height} {self.codec}, its SPS "
                                f"{parsed.width}x{parsed.height} {parsed.codec}")


def stage_topic() -> bytes:
    """The subscription prefix for every stage's heartbeat."""
    return STAGE_PREFIX


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A stage saying it runs: sent every HEARTBEAT_EVERY_S whether or not any camera is there."""

    stage: str
    ts: float
    counters: dict[str, int] = field(default_factory=dict)
    # The camera of a stage that runs once per camera (capture): its counters are that camera's.
    camera: str | None = None

    def encode(self) -> list[bytes]:
        body = {"v": PROTOCOL_VERSION, "stage": self.stage, "ts": self.ts}
        if self.counters:
            body["counters"] = _check_counters(self.counters)
        if self.camera is not None:
            body["camera"] = check_camera_id(self.camera)
        return [STAGE_PREFIX + self.stage.encode(), msgpack.packb(body)]

    @classmethod
    def decode(cls, parts: Sequence[bytes]) -> Heartbeat:
        if len(parts) != 2:
            raise ProtocolError(f"a heartbeat has 2 parts, got {len(parts)}")
        topic, raw_body = (bytes(p) for p in parts)
        body = _unpack_map(raw_body, "heartbeat")
        stage = _get(body, "stage", str)
        if not CAMERA_ID.fullmatch(stage) or topic != STAGE_PREFIX + stage.encode():
            raise ProtocolError(f"topic {topic[:80]!r} does not match stage {stage[:80]!r}")
        camera = body.get("camera")
        return cls(stage=stage, ts=_get_ts(body), counters=_check_counters(body.get("counters", {})),
                   camera=None if camera is None else check_camera_id(camera))


def decode(parts: Sequence[bytes]) -> Frame | Event | Heartbeat | Video:
    """Decode any message by its topic, for sockets subscribed to several kinds."""
    topic = bytes(parts[0]) if parts else b""
    if topic.startswith(FRAME_PREFIX):
        return Frame.decode(parts)
    if topic.startswith(VIDEO_PREFIX):
        return Video.decode(parts)
    if topic.startswith(EVENT_PREFIX):
        return Event.decode(parts)
    if topic.startswith(STAGE_PREFIX):
        return Heartbeat.decode(parts)
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


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's frame header, walking its segment headers without decoding.

    ProtocolError when the bytes are not a JPEG or hold no frame header before the image data.
    """
    if not jpeg.startswith(JPEG_SOI):
        raise ProtocolError("frame payload is not a JPEG (no SOI marker)")
    at, end = 2, len(jpeg)
    while at + 4 <= end:
        if jpeg[at] != 0xFF:
            raise ProtocolError(f"JPEG has no marker at byte {at}")
        marker = jpeg[at + 1]
        if marker == 0xFF:  # a fill byte before the marker
            at += 1
            continue
        if marker in _BARE_MARKERS:
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or the image data itself, before any frame header
            break
        if marker in _SOF_MARKERS:
            if at + 9 > end:
                break
            return int.from_bytes(jpeg[at + 7:at + 9], "big"), int.from_bytes(jpeg[at + 5:at + 7], "big")
        length = int.from_bytes(jpeg[at + 2:at + 4], "big")
        if length < 2:
            raise ProtocolError(f"JPEG segment at byte {at} has a bad length {length}")
        at += 2 + length
    raise ProtocolError("JPEG has no frame header (SOF) before its image data")


def _check_data(data: dict[str, Any]) -> dict[str, Any]:
    """Event data as JSON can say it: consumers print it, store it in sidecars and send it to browsers."""
    budget = [MAX_DATA_ITEMS]

    def check(value: Any, depth: int, where: str) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise ProtocolError(f"event data holds more than {MAX_DATA_ITEMS} values")
        if value is None or type(value) in (bool, int, str):
            return
        if type(value) is float:
            if not math.isfinite(value):
                raise ProtocolError(f"event data {where} is {value}, not a finite number")
            return
        if type(value) not in (list, dict):
            raise ProtocolError(f"event data {where} is a {type(value).__name__}, which JSON cannot hold")
        if depth >= MAX_DATA_DEPTH:
            raise ProtocolError(f"event data is nested deeper than {MAX_DATA_DEPTH}")
        items = value.items() if type(value) is dict else enumerate(value)
        for key, item in items:
            if not isinstance(key, int | str):
                raise ProtocolError(f"event data {where} has a {type(key).__name__} key")
            check(item, depth + 1, f"{where}.{key}" if where else str(key))

    check(data, 0, "")
    return data


def _check_counters(counters: Any) -> dict[str, int]:
    """A heartbeat's counters as /metrics can print them: few, with metric-safe names and whole numbers."""
    if type(counters) is not dict:
        raise ProtocolError(f"heartbeat counters are a {type(counters).__name__}, not a map")
    if len(counters) > MAX_COUNTERS:
        raise ProtocolError(f"heartbeat has {len(counters)} counters, more than {MAX_COUNTERS}")
    for name, value in counters.items():
        if type(name) is not str or not COUNTER_NAME.fullmatch(name):
            raise ProtocolError(f"bad heartbeat counter name {str(name)[:80]!r}: use [a-z][a-z0-9_]*, 40 at most")
        # bool is a subclass of int, and no sender means True as a count.
        if type(value) is not int or not 0 <= value <= MAX_COUNTER:
            raise ProtocolError(f"heartbeat counter {name!r} is {str(value)[:80]}, not a whole number from 0 to "
                                f"{MAX_COUNTER}")
    return dict(counters)


def _get(mapping: Mapping[str, Any], key: str, kind: type, minimum: int | None = None,
         maximum: int | None = None) -> Any:
    if key not in mapping:
        raise ProtocolError(f"missing key {key!r}")
    value = mapping[key]
    # bool is a subclass of int: a seq of True is a bug on the sender's side, not a number.
    if type(value) is not kind:
        raise ProtocolError(f"key {key!r} should be {kind.__name__}, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ProtocolError(f"key {key!r} is {value}, below {minimum}")
    if maximum is not None and value > maximum:
        raise ProtocolError(f"key {key!r} is {value}, above {maximum}")
    return value


def _get_ts(mapping: Mapping[str, Any]) -> float:
    if "ts" not in mapping:
        raise ProtocolError("missing key 'ts'")
    value = mapping["ts"]
    if type(value) not in (int, float) or not math.isfinite(value) or not 0 <= value <= MAX_TS:
        raise ProtocolError(f"key 'ts' should be Unix seconds before the year 2100, got {value!r}")
    return float(value)
