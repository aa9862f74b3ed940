"""End to end, as processes: the demo's visitor is detected as one kept motion episode."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

import zmq

from pipeline.bus.sockets import EVENT_HWM, Decoder, receive, subscriber
from pipeline.protocol import Event, event_topic
from tests.support.ports import Ports
from tests.support.stages import Stage
from tests.support.waiting import wait_for
from tests.support.web import LiveClient, gateway_up, http_get

log = logging.getLogger(__name__)


def collect_events(endpoint: str, until_type: str, timeout: float) -> list[Event]:
    ctx = zmq.Context()
    sock = subscriber(ctx, [endpoint], [event_topic()], EVENT_HWM)
    events: list[Event] = []
    decoder = Decoder(log)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not (events and events[-1].type == until_type):
            events += [m for m in receive(sock, 100, decoder) if isinstance(m, Event)]
    finally:
        sock.close()
        ctx.term()
    return events


def test_demo_visitor_is_one_kept_episode(start_stage: Callable[..., Stage], ports: Ports) -> None:
    detector = start_stage("detector")
    logger = start_stage("logger", "--json", "--frame-stats")
    gateway = start_stage("gateway")
    start_stage("capture", "--source", "demo")
    wait_for(gateway_up(ports.http), 15, "the gateway to serve frames")

    async def watch_live_view() -> list[dict]:
        client = await LiveClient.connect(ports.http)
        seen: list[dict] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(e.get("motion") for e in seen):
            message = await asyncio.wait_for(client.conn.read_message(), 10)
            if isinstance(message, str) and json.loads(message)["type"] == "event":
                seen.append(json.loads(message)["event"])
        client.conn.close()
        return seen

    live_events = asyncio.run(watch_live_view())
    motion = [e for e in live_events if e.get("motion")]
    assert motion, f"no delta event with motion reached the live view: {live_events[-3:]}"
    assert motion[0]["type"] == "delta" and motion[0]["boxes"] and motion[0]["camera"] == "cam0"

    events = collect_events(ports.events, "motion_end", 25)
    episode = [e for e in events if e.type in ("motion_start", "motion_end")]
    assert [e.type for e in episode][-1:] == ["motion_end"], [e.type for e in events[-5:]]
    end = episode[-1]
    assert end.data["keep"] is True and end.data["significant_frames"] >= 20
    assert 4.0 < end.data["end_ts"] - end.data["start_ts"] < 7.0, "the visitor takes about 5.3 s to cross"
    assert all(e.type != "lightswitch" for e in events)

    _, _, body = http_get(ports.http, "/healthz")
    assert json.loads(body)["cameras"]["cam0"]["event_age"] < 1.0
    for stage in (detector, logger, gateway):
        assert stage.stop() == 0, stage.output()
    lines = [json.loads(line) for line in logger.output().splitlines() if line.startswith("{")]
    types = [line["type"] for line in lines]
    assert "motion_start" in types and "motion_end" in types and "delta" not in types
    stats = [line for line in lines if line["type"] == "frame_stats"]
    assert stats and 8 <= stats[-1]["fps"] <= 12 and stats[-1]["camera"] == "cam0"
