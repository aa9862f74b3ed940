"""What /metrics is made of, in the test process: the gateway's collector on frame latency and a clock
ahead, and the heartbeat's counters, checked at decode like every other field a peer sends.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import msgpack
import numpy as np
import pytest

from pipeline.bus.sockets import Decoder
from pipeline.protocol import MAX_COUNTERS, Frame, Heartbeat, ProtocolError
from pipeline.record.library import Library
from pipeline.web.hub import Hub
from pipeline.web.metrics import GatewayCollector


def test_a_frame_stamped_in_the_gateways_future_counts_as_no_latency_and_as_clock_ahead() -> None:
    hub = Hub(clock=lambda: 50.0, wall=lambda: 1_790_000_000.0)
    jpeg = cv2.imencode(".jpg", np.zeros((24, 32, 3), np.uint8))[1].tobytes()
    hub.publish_frame(Frame("cam0", 0, 1_790_000_003.0, 32, 24, True, jpeg))
    hub.publish_frame(Frame("cam0", 1, 1_789_999_999.7, 32, 24, True, jpeg))
    collector = GatewayCollector(hub, Library(Path("/nonexistent")), Decoder(logging.getLogger("test")))
    families = {family.name: family for family in collector.collect()}
    latency = {sample.name.rsplit("_", 1)[-1] + sample.labels.get("le", ""): sample.value
               for sample in families["camserver_frame_latency_seconds"].samples}
    assert latency["bucket0.005"] == 1 and latency["bucket0.25"] == 1 and latency["bucket0.5"] == 2
    assert latency["count"] == 2 and latency["sum"] == pytest.approx(0.3, abs=1e-3)
    assert families["camserver_frame_clock_ahead"].samples[0].value == 1


def test_heartbeat_counters_round_trip_and_old_heartbeats_have_none() -> None:
    beat = Heartbeat("detector", 1_790_000_000.0, {"frames_analysed": 12, "malformed": 0})
    assert Heartbeat.decode(beat.encode()) == beat
    old = [b"stage.detector", msgpack.packb({"v": 1, "stage": "detector", "ts": 1_790_000_000.0})]
    assert Heartbeat.decode(old).counters == {} and Heartbeat.decode(old).camera is None
    capture = Heartbeat("capture", 1_790_000_000.0, {"frames_published": 5}, "porch")
    assert Heartbeat.decode(capture.encode()) == capture
    bad = [b"stage.capture", msgpack.packb({"v": 1, "stage": "capture", "ts": 1_790_000_000.0, "camera": "../x"})]
    with pytest.raises(ProtocolError):
        Heartbeat.decode(bad)


@pytest.mark.parametrize("counters", [
    [1, 2],
    {"Frames": 1},
    {"frames analysed": 1},
    {"x" * 41: 1},
    {"frames": -1},
    {"frames": 2**63},
    {"frames": 1.5},
    {"frames": True},
    {"frames": "12"},
    {f"c{i}": i for i in range(MAX_COUNTERS + 1)},
])
def test_heartbeat_counters_that_metrics_cannot_show_are_refused(counters: object) -> None:
    parts = [b"stage.capture", msgpack.packb({"v": 1, "stage": "capture", "ts": 1_790_000_000.0,
                                              "counters": counters})]
    with pytest.raises(ProtocolError):
        Heartbeat.decode(parts)
