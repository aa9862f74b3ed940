"""The H.264 live view through faults, with the real capture, encoder and gateway processes.

An encoder killed with SIGKILL comes back and its viewers resume within 3 s, without reconnecting;
a viewer that reads at a trickle is dropped to key frames and told so, while the pipeline goes on.
"""

from __future__ import annotations

import json
import signal
import struct
import time
from collections.abc import Callable

from tests.support.ports import Ports
from tests.support.stages import Stage
from tests.support.waiting import wait_for
from tests.support.web import RawReader, gateway_up, raw_connection, websocket_request

MSE_REQUEST = json.dumps({"type": "mse", "value": "avc1.640029,avc1.42E01E"}).encode()


def open_mse(port: int) -> RawReader:
    """A raw MSE client past the handshake, having asked for the default camera's H.264 track."""
    reader = RawReader(raw_connection(port, websocket_request(port, "/api/ws?src=cam0")))
    assert reader.until(b"\r\n\r\n").split(b" ", 2)[1] == b"101"
    mask = b"\x00\x00\x00\x00"  # a client must mask; a zero mask leaves the payload as it is
    reader.sock.sendall(bytes([0x81, 0x80 | len(MSE_REQUEST)]) + mask + MSE_REQUEST)
    return reader


def is_key_fragment(fragment: bytes) -> bool:
    """Whether a moof+mdat holds a key frame: the first sample's flags in its trun (0x02000000)."""
    at = fragment.index(b"trun") - 4
    flags = int.from_bytes(fragment[at + 9:at + 12], "big")
    offset = at + 16 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
    duration_size = (4 if flags & 0x100 else 0) + (4 if flags & 0x200 else 0)
    sample_flags = struct.unpack(">I", fragment[offset + duration_size:offset + duration_size + 4])[0]
    return sample_flags == 0x02000000


def start_pipeline(start_stage: Callable[..., Stage], ports: Ports) -> Stage:
    start_stage("capture", "--source", "demo", "--fps", "15")
    start_stage("gateway")
    encoder = start_stage("encoder")
    wait_for(gateway_up(ports.http), 20, "the gateway to serve frames")
    return encoder


def test_viewers_resume_within_3_s_after_the_encoder_is_killed(
        start_stage: Callable[..., Stage], ports: Ports) -> None:
    encoder = start_pipeline(start_stage, ports)
    viewer = open_mse(ports.http)
    opcode, answer = viewer.websocket_message()
    assert opcode == 0x1 and json.loads(answer)["type"] == "mse"
    assert viewer.websocket_message()[0] == 0x2, "the init segment"
    for _ in range(10):
        assert viewer.websocket_message()[0] == 0x2
    encoder.stop(signal.SIGKILL)
    viewer.sock.settimeout(1.0)
    try:  # what was on its way when the encoder died
        while True:
            viewer.websocket_message()
    except TimeoutError:
        pass
    restarted = time.monotonic()
    start_stage("encoder")
    viewer.sock.settimeout(10)
    assert viewer.websocket_message()[0] == 0x2
    resumed = time.monotonic() - restarted
    assert resumed < 3.0, f"the viewer's frames came back {resumed:.1f} s after the encoder was started again"
    viewer.sock.close()


def test_a_viewer_at_a_trickle_is_dropped_to_key_frames_and_told_how_many_it_missed(
        start_stage: Callable[..., Stage], ports: Ports) -> None:
    start_pipeline(start_stage, ports)
    slow = open_mse(ports.http)
    slow.websocket_message()  # the codec answer
    slow.websocket_message()  # the init segment
    time.sleep(8)  # reads nothing for 8 s: at 15 fps far more than the gateway keeps queued for it
    drop, after = None, None
    deadline = time.monotonic() + 20
    while after is None and time.monotonic() < deadline:
        opcode, payload = slow.websocket_message()
        if opcode == 0x1 and json.loads(payload)["type"] == "drop":
            drop = json.loads(payload)
        elif opcode == 0x2 and drop is not None:
            after = payload
    assert drop is not None and drop["frames"] > 0, "the slow viewer was told it missed frames"
    assert after is not None and is_key_fragment(after), "and went on from a key frame"
    slow.sock.close()
