"""A rogue publisher on the bus, against the whole real pipeline: nothing it sends takes a stage down.

Every stage that subscribes also connects to the rogue's endpoints, as it would to a second camera's
capture or detector. While the demo's visitor walks through, the rogue sends each hostile message
the issue found (absurd times, bytes and deep nesting in event data, NaN, frame sizes that would
allocate gigabytes, a JPEG that lies about its size) and then a flood of malformed messages. What
a user sees must not change: the live view keeps its frame rate, the visit is recorded and listed,
the logger prints the episode, every stage is still running, and the logs stay short.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable

import cv2
import msgpack
import numpy as np
import zmq

from pipeline.bus.sockets import publisher
from pipeline.protocol import Event
from tests.support.ports import Ports, free_port
from tests.support.processes import rss_mb
from tests.support.stages import Stage
from tests.support.waiting import wait_for
from tests.support.web import LiveClient, gateway_listening, gateway_up, http_get

FLOOD = 20_000
WATCH_S = 16.0


def hostile_messages() -> list[list[bytes]]:
    """Every message the issue reproduced a crash with, addressed to the real camera."""
    jpeg = cv2.imencode(".jpg", np.zeros((480, 640, 3), np.uint8))[1].tobytes()
    bomb = bytearray(jpeg)  # a small JPEG whose own frame header claims 16000x16000
    sof = bomb.index(b"\xff\xc0")
    bomb[sof + 5:sof + 9] = (16000).to_bytes(2, "big") * 2
    header = {"v": 1, "camera": "cam0", "seq": 10**6, "ts": time.time(), "w": 640, "h": 480, "demo": False}
    nested: list = []
    for _ in range(1000):
        nested = [nested]

    def event(kind: str, **body: object) -> list[bytes]:
        return [b"event.cam0", msgpack.packb({**Event("cam0", 10**6, time.time(), kind).body(), **body})]

    def frame(**changes: object) -> list[bytes]:
        return [b"frame.cam0", msgpack.packb({**header, **changes}), jpeg]

    return [
        event("motion_start", ts=1e12), event("motion_end", ts=1e12, keep=True),
        event("motion_start", blob=b"\x00\x01"), event("delta", boxes=nested), event("delta", delta=float("nan")),
        frame(ts=1e300), frame(w=2**21, h=2**21), frame(w=200000, h=200000),
        [b"frame.cam0", msgpack.packb(header), bytes(bomb)],
        [b"frame.cam0", msgpack.packb({**header, "w": 16000, "h": 16000}), bytes(bomb)],
    ]


def test_a_rogue_publisher_changes_nothing_a_user_sees(start_stage: Callable[..., Stage], ports: Ports) -> None:
    rogue_frames, rogue_events = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    ctx = zmq.Context()
    frames_pub = publisher(ctx, [rogue_frames], 100_000)
    events_pub = publisher(ctx, [rogue_events], 100_000)
    frames = {"CAMSERVER_FRAMES": f"{ports.frames},{rogue_frames}"}
    events = {"CAMSERVER_EVENTS": f"{ports.events},{rogue_events}"}
    stages = [start_stage("detector", **frames), start_stage("recorder", **frames, **events),
              start_stage("gateway", **frames, **events), start_stage("logger", **events)]
    try:
        wait_for(gateway_listening(ports.http), 15, "the gateway")
        time.sleep(1.0)  # every subscriber has connected to the rogue (ZeroMQ's slow joiner)
        stages.append(start_stage("capture", "--source", "demo"))
        wait_for(gateway_up(ports.http), 15, "frames at the gateway")

        def attack() -> None:
            """Each hostile message, then the flood; from a thread, so the viewer below keeps reading."""
            for message in hostile_messages():
                (frames_pub if message[0].startswith(b"frame") else events_pub).send_multipart(message)
                time.sleep(0.1)
            for n in range(FLOOD):
                target, topic = (frames_pub, b"frame.cam0") if n % 2 else (events_pub, b"event.cam0")
                target.send_multipart([topic, b"\xc1 not msgpack", b"x"])
                if n % 500 == 0:
                    time.sleep(0.01)

        async def watch_while_attacked() -> list[float]:
            client = await LiveClient.connect(ports.http)
            await client.next_frame()
            attacker = threading.Thread(target=attack)
            attacker.start()
            arrivals: list[float] = []
            started = time.monotonic()
            while time.monotonic() - started < WATCH_S:
                await client.next_frame()
                arrivals.append(time.monotonic())
            client.conn.close()
            await asyncio.to_thread(attacker.join, 30)
            return arrivals

        arrivals = asyncio.run(watch_while_attacked())
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        assert max(gaps) < 1.0, f"the live view stalled for {max(gaps):.1f} s"
        assert len(arrivals) >= 0.8 * 10 * WATCH_S, f"{len(arrivals)} frames in {WATCH_S} s at 10 fps"

        def listed() -> list[dict]:
            status, _, body = http_get(ports.http, "/api/recordings")
            assert status == 200
            return json.loads(body)["recordings"]

        wait_for(listed, 20, "the visitor's recording, listed")
        status = json.loads(http_get(ports.http, "/api/status")[2])
        assert status["malformed_messages"] >= FLOOD / 2, status["malformed_messages"]
        for stage in stages:
            assert stage.proc.poll() is None, f"{stage.name} died:\n{stage.output()[-3000:]}"
        for stage in stages[:4]:
            warnings = [line for line in stage.output().splitlines() if "malformed" in line]
            assert len(warnings) <= 10, f"{stage.name} wrote {len(warnings)} lines about malformed messages"
            assert "Traceback" not in stage.output(), f"{stage.name}:\n{stage.output()[-3000:]}"
            assert rss_mb(stage) < 400, f"{stage.name} uses {rss_mb(stage):.0f} MB"
        logged = stages[3].output()
        assert "cam0 motion_start" in logged and "cam0 motion_end" in logged, logged[-2000:]
    finally:
        frames_pub.close()
        events_pub.close()
        ctx.term()
