"""Fuzzing the one door of every stage: whatever bytes arrive, decoding gives a message or a ProtocolError.

And whatever decodes is safe for every consumer: the logger prints it, the WebSocket sends it as
JSON, the hub takes it, dates format. Those are the crashes the issue found one by one; here
hypothesis looks for the next one.
"""

from __future__ import annotations

import json
import math
from datetime import datetime

import cv2
import msgpack
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.logger import format_event
from pipeline.protocol import MAX_PIXELS, MAX_SIDE, Event, Frame, ProtocolError, decode, jpeg_size
from pipeline.web.hub import Hub
from pipeline.web.viewers import StreamViewer
from pipeline.web.wire import websocket_event, websocket_frame

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JPEG = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))[1].tobytes()

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=True)
           | st.text(max_size=20) | st.binary(max_size=20))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30)
timestamps = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**63), 2**64 - 1),
                       st.sampled_from([0.0, 1.79e9, 4_102_444_800.0, 1e12, 1e300]))
event_types = st.sampled_from(["delta", "motion_start", "motion_end", "lightswitch", "recording_started",
                               "recording_saved", "recording_discarded", "recorder_status"]) | st.text(max_size=10)


def decoded(parts: list[bytes]) -> Frame | Event | None:
    """Decode as a stage does: a ProtocolError is a refusal; any other exception fails the test."""
    try:
        return decode(parts)
    except ProtocolError:
        return None


def safe_for_consumers(message: Frame | Event) -> None:
    assert message.ts >= 0 and math.isfinite(message.ts)
    datetime.fromtimestamp(message.ts)  # the logger's and the recorder's names and times
    hub = Hub(clock=lambda: 100.0)
    if isinstance(message, Frame):
        assert 1 <= message.width <= MAX_SIDE and 1 <= message.height <= MAX_SIDE
        assert message.width * message.height <= MAX_PIXELS
        assert jpeg_size(message.jpeg) == (message.width, message.height)
        hub.publish_frame(message)
        return
    json.dumps({"type": "event", "event": message.body()}, allow_nan=False)  # what the WebSocket sends
    format_event(message, as_json=True)
    format_event(message, as_json=False)
    sent: list[bytes] = []  # a viewer's socket, which takes every write at once
    hub.add(StreamViewer(message.camera, sent.append, websocket_frame, websocket_event, lambda why: None))
    hub.publish_event(message)
    assert sent == [websocket_event(message)]


@FUZZ
@given(data=st.dictionaries(st.text(max_size=12), values, max_size=6), ts=timestamps, kind=event_types,
       seq=st.integers(-5, 2**64 - 1) | st.floats())
def test_any_event_body_decodes_to_a_safe_event_or_is_refused(data: dict, ts: object, kind: str, seq: object) -> None:
    body = {**data, "v": 1, "camera": "cam0", "seq": seq, "ts": ts, "type": kind}
    message = decoded([b"event.cam0", msgpack.packb(body)])
    if message is not None:
        safe_for_consumers(message)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_any_bytes_as_an_event_or_frame_are_refused_cleanly(raw: bytes) -> None:
    for parts in ([b"event.cam0", raw], [b"frame.cam0", raw, JPEG], [b"frame.cam0", msgpack.packb(
            {"v": 1, "camera": "cam0", "seq": 1, "ts": 1.0, "w": 64, "h": 48, "demo": False}), raw]):
        message = decoded(parts)
        if message is not None:
            safe_for_consumers(message)


@FUZZ
@given(w=st.integers(-1, 2**22) | values, h=st.integers(-1, 2**22) | values, ts=timestamps,
       flips=st.lists(st.tuples(st.integers(0, len(JPEG) - 1), st.integers(0, 255)), max_size=6))
def test_any_frame_header_and_damaged_jpeg_is_refused_or_consistent(w: object, h: object, ts: object,
                                                                     flips: list[tuple[int, int]]) -> None:
    jpeg = bytearray(JPEG)
    for at, byte in flips:
        jpeg[at] = byte
    header = {"v": 1, "camera": "cam0", "seq": 3, "ts": ts, "w": w, "h": h, "demo": False}
    message = decoded([b"frame.cam0", msgpack.packb(header), bytes(jpeg)])
    if message is not None:
        safe_for_consumers(message)
