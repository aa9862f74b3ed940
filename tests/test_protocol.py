"""The wire protocol: what encodes decodes back, and every kind of bad message is refused."""

from __future__ import annotations

import msgpack
import pytest

from pipeline.protocol import (
    PROTOCOL_VERSION,
    Event,
    Frame,
    ProtocolError,
    decode,
    event_topic,
    frame_topic,
)

JPEG = b"\xff\xd8\xff\xe0fake-jpeg-body\xff\xd9"


def frame(**changes: object) -> Frame:
    fields = {"camera": "cam0", "seq": 7, "ts": 1763950000.25, "width": 640, "height": 480, "demo": True,
              "jpeg": JPEG}
    fields.update(changes)
    return Frame(**fields)  # type: ignore[arg-type]


def frame_parts(**header_changes: object) -> list[bytes]:
    topic, _, jpeg = frame().encode()
    header = frame().header()
    header.update(header_changes)
    header = {k: v for k, v in header.items() if v is not REMOVE}
    return [topic, msgpack.packb(header), jpeg]


REMOVE = object()


def test_frame_round_trip() -> None:
    original = frame()
    parts = original.encode()
    assert parts[0] == b"frame.cam0"
    assert msgpack.unpackb(parts[1]) == {"v": PROTOCOL_VERSION, "camera": "cam0", "seq": 7, "ts": 1763950000.25,
                                         "w": 640, "h": 480, "demo": True}
    assert parts[2] == JPEG
    assert Frame.decode(parts) == original
    assert decode(parts) == original


def test_event_round_trip_keeps_type_specific_keys() -> None:
    original = Event("cam0", 12, 1763950001.5, "motion_start", {"delta": 3.5, "boxes": [[1, 2, 3, 4]]})
    parts = original.encode()
    assert parts[0] == b"event.cam0"
    assert len(parts) == 2
    assert Event.decode(parts) == original
    assert decode(parts) == original


def test_extra_header_keys_are_tolerated() -> None:
    assert Frame.decode(frame_parts(exposure=12)) == frame()


def test_integer_timestamp_is_accepted_as_float() -> None:
    decoded = Frame.decode(frame_parts(ts=1763950000))
    assert decoded.ts == 1763950000.0 and isinstance(decoded.ts, float)


def test_topics() -> None:
    assert frame_topic() == b"frame."
    assert frame_topic("garden") == b"frame.garden"
    assert event_topic("garden") == b"event.garden"


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([b"frame.cam0", b"x"], "3 parts"),
        ([b"frame.cam0", b"", b"", b""], "3 parts"),
        ([b"frame.cam0", b"\xc1", JPEG], "not valid msgpack"),
        ([b"frame.cam0", msgpack.packb([1, 2]), JPEG], "not a map"),
        ([b"frame.cam0", msgpack.packb({"v": 1}) + b"\x00", JPEG], "not valid msgpack"),
        ([b"frame.cam0", frame_parts()[1], b"not a jpeg"], "not a JPEG"),
        ([b"frame.cam1", frame_parts()[1], JPEG], "does not match camera"),
        ([b"frame.cam01", frame_parts()[1], JPEG], "does not match camera"),
        (frame_parts(v=2), "protocol version 2"),
        (frame_parts(v="1"), "integer protocol version"),
        (frame_parts(v=REMOVE), "integer protocol version"),
        (frame_parts(seq=REMOVE), "missing key 'seq'"),
        (frame_parts(seq=-1), "below 0"),
        (frame_parts(seq=True), "should be int"),
        (frame_parts(seq=1.0), "should be int"),
        (frame_parts(ts="now"), "Unix seconds"),
        (frame_parts(ts=float("nan")), "Unix seconds"),
        (frame_parts(ts=REMOVE), "missing key 'ts'"),
        (frame_parts(w=0), "below 1"),
        (frame_parts(h="480"), "should be int"),
        (frame_parts(demo=1), "should be bool"),
        (frame_parts(camera=5), "should be str"),
        (frame_parts(camera=REMOVE), "missing key 'camera'"),
        ([b"frame.a/b", msgpack.packb({**frame().header(), "camera": "a/b"}), JPEG], "bad camera id"),
        ([b"video.cam0", b"", b""], "unknown topic"),
        ([], "unknown topic"),
    ],
)
def test_bad_frames_are_refused(parts: list[bytes], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode(parts)


def test_bad_events_are_refused() -> None:
    good = Event("cam0", 1, 2.0, "delta").body()
    cases = [
        ([b"event.cam0"], "2 parts"),
        ([b"event.cam0", msgpack.packb({**good, "type": ""})], "empty"),
        ([b"event.cam0", msgpack.packb({**good, "type": 3})], "should be str"),
        ([b"event.cam0", msgpack.packb({k: v for k, v in good.items() if k != "seq"})], "missing key 'seq'"),
        ([b"event.other", msgpack.packb(good)], "does not match camera"),
    ]
    for parts, message in cases:
        with pytest.raises(ProtocolError, match=message):
            decode(parts)


def test_event_data_cannot_shadow_reserved_keys() -> None:
    with pytest.raises(ProtocolError, match="reserved"):
        Event("cam0", 1, 2.0, "delta", {"seq": 5}).encode()
