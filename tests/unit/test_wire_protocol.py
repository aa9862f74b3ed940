"""The wire protocol: what encodes decodes back, and every kind of bad message is refused."""

from __future__ import annotations

import cv2
import msgpack
import numpy as np
import pytest

from pipeline.protocol import (
    MAX_TS,
    PROTOCOL_VERSION,
    Event,
    Frame,
    Heartbeat,
    ProtocolError,
    decode,
    event_topic,
    frame_topic,
    jpeg_size,
)


def encode_jpeg(width: int, height: int, **params: int) -> bytes:
    flags: list[int] = []
    for name, value in params.items():
        flags += [getattr(cv2, name), value]
    return cv2.imencode(".jpg", np.zeros((height, width, 3), np.uint8), flags)[1].tobytes()


JPEG = encode_jpeg(640, 480)


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
        (frame_parts(ts=1e12), "before the year 2100"),
        (frame_parts(ts=1e300), "before the year 2100"),
        (frame_parts(ts=-1.0), "Unix seconds"),
        (frame_parts(w=2**21, h=2**21), "above 8192"),
        (frame_parts(w=8000, h=8000), "larger than"),
        (frame_parts(w=200000), "above 8192"),
        (frame_parts(w=320, h=240), "header says 320x240, its JPEG is 640x480"),
        ([b"frame.cam0", msgpack.packb(frame().header()), b"\xff\xd8 no segments"], "no marker"),
        ([b"frame.cam0", msgpack.packb(frame().header()), b"\xff\xd8\xff\xd9"], "no frame header"),
        ([b"frame.cam0", msgpack.packb(frame().header()), JPEG[:4]], "no frame header"),
        (frame_parts(h="480"), "should be int"),
        (frame_parts(demo=1), "should be bool"),
        (frame_parts(camera=5), "should be str"),
        (frame_parts(camera=REMOVE), "missing key 'camera'"),
        ([b"frame.a/b", msgpack.packb({**frame().header(), "camera": "a/b"}), JPEG], "bad camera id"),
        ([b"audio.cam0", b"", b""], "unknown topic"),
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


def test_jpeg_size_reads_the_frame_header_of_every_kind_of_jpeg() -> None:
    assert jpeg_size(encode_jpeg(640, 480)) == (640, 480)
    assert jpeg_size(encode_jpeg(17, 5, IMWRITE_JPEG_PROGRESSIVE=1)) == (17, 5)
    assert jpeg_size(encode_jpeg(1920, 1080, IMWRITE_JPEG_OPTIMIZE=1)) == (1920, 1080)
    exif = b"\xff\xe1" + (2 + 60000).to_bytes(2, "big") + bytes(60000)  # a big APP1 segment before the frame
    jpeg = encode_jpeg(320, 200)
    assert jpeg_size(jpeg[:2] + exif + jpeg[2:]) == (320, 200)
    declared = bytearray(jpeg)  # a JPEG whose own frame header lies: a 16000x16000 bomb in a small file
    sof = declared.index(b"\xff\xc0")
    declared[sof + 5:sof + 9] = (16000).to_bytes(2, "big") * 2
    assert jpeg_size(bytes(declared)) == (16000, 16000)
    with pytest.raises(ProtocolError, match=r"above 8192"):
        decode([b"frame.cam0", msgpack.packb({**frame().header(), "w": 16000, "h": 16000}), bytes(declared)])
    with pytest.raises(ProtocolError, match=r"its JPEG is 16000x16000"):
        decode([b"frame.cam0", msgpack.packb({**frame().header(), "w": 320, "h": 200}), bytes(declared)])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"blob": b"\x00\x01"}, "bytes, which JSON cannot hold"),
        ({"delta": float("nan")}, "not a finite number"),
        ({"boxes": [[1, 2, float("inf"), 4]]}, "not a finite number"),
        ({"deep": [[[[[[[[[[1]]]]]]]]]]}, "nested deeper"),
        ({"many": list(range(20_000))}, "more than"),
    ],
)
def test_event_data_must_be_bounded_json(data: dict, message: str) -> None:
    body = {**Event("cam0", 1, 2.0, "delta").body(), **data}
    with pytest.raises(ProtocolError, match=message):
        decode([b"event.cam0", msgpack.packb(body)])


def test_a_list_nested_1000_deep_is_refused_without_recursion_trouble() -> None:
    nested: list = []
    for _ in range(1000):
        nested = [nested]
    body = {**Event("cam0", 1, 2.0, "delta").body(), "x": nested}
    with pytest.raises(ProtocolError, match="nested deeper"):
        decode([b"event.cam0", msgpack.packb(body)])


def test_absurd_event_times_are_refused_and_the_edges_accepted() -> None:
    for ts in (1e12, 1e300, MAX_TS + 1):
        with pytest.raises(ProtocolError, match="before the year 2100"):
            decode([b"event.cam0", msgpack.packb({**Event("cam0", 1, 2.0, "motion_start").body(), "ts": ts})])
    for ts in (0.0, MAX_TS):
        assert decode(Event("cam0", 1, ts, "motion_end", {"keep": True}).encode()).ts == ts


def test_event_data_cannot_shadow_reserved_keys() -> None:
    with pytest.raises(ProtocolError, match="reserved"):
        Event("cam0", 1, 2.0, "delta", {"seq": 5}).encode()


def test_a_heartbeat_round_trips_and_a_forged_one_is_refused() -> None:
    beat = Heartbeat("detector", 1763950000.5)
    assert decode(beat.encode()) == beat
    for parts in ([b"stage.recorder", beat.encode()[1]],
                  [b"stage.detector", msgpack.packb({"v": 1, "stage": "detector", "ts": 1e300})],
                  [b"stage.x y", msgpack.packb({"v": 1, "stage": "x y", "ts": 1.0})],
                  [b"stage.detector"]):
        with pytest.raises(ProtocolError):
            decode(parts)
