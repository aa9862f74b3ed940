"""The hooks stage as a process: commands and signed webhooks on the demo's episode, a lost and found camera.

The first test runs the real pipeline (demo capture, detector, recorder); the others feed the hooks
process events from a publisher of the test's own over real ZeroMQ, to control exactly how many
arrive and when, and receive its webhooks on a real HTTP server of the test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import zmq

from pipeline.bus import sockets
from pipeline.protocol import Event
from tests.support.ports import Ports, free_port
from tests.support.stages import Stage
from tests.support.waiting import wait_for

log = logging.getLogger(__name__)
SECRET = "s3cret-for-the-test"
SMALL = ("--width", "320", "--height", "240")

HOOK_SCRIPT = """\
import json, os, sys
with open(sys.argv[1], "a") as out:
    out.write(json.dumps({"argv": sys.argv[2:], "env": {k: v for k, v in os.environ.items()
                                                        if k.startswith("CAMSERVER_")}}) + "\\n")
"""


class Receiver:
    """A webhook receiver on a free loopback port, answering each POST with the next of ``statuses`` (then 200)."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self._statuses = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver._statuses.pop(0) if receiver._statuses else 200
                receiver.requests.append((dict(self.headers), raw, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for _headers, raw, _status in self.requests]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def verified(headers: dict[str, str], raw: bytes) -> dict[str, Any]:
    """The body, once its signature is checked as a receiver must: HMAC of timestamp, '.', raw body."""
    stamp = headers["X-Camserver-Timestamp"]
    expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Camserver-Signature"], f"sha256={expected}")
    assert abs(time.time() - int(stamp)) < 60
    return json.loads(raw)


def runs(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def hook_command(tmp_path: Path, out: Path) -> str:
    script = tmp_path / "hook.py"
    script.write_text(HOOK_SCRIPT)
    return shlex.join([sys.executable, str(script), str(out)]) + " {event} {camera} {path} {name}"


@contextmanager
def publisher(ports: Ports) -> Iterator[zmq.Socket]:
    """The test standing in for the detector: a PUB bound where the hooks stage expects events."""
    with zmq.Context() as ctx, sockets.publisher(ctx, [ports.events], sockets.EVENT_HWM) as sock:
        yield sock


def test_hooks_and_signed_webhooks_follow_the_demo_episode_and_a_lost_camera(
        start_stage: Callable[..., Stage], ports: Ports, tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    command = hook_command(tmp_path, out)
    receiver = Receiver()
    try:
        hooks = start_stage("hooks", "--on-motion-start", command, "--on-motion-end", command,
                            "--on-recording-saved", command, "--on-camera-lost", command,
                            "--on-camera-found", command, "--camera-lost-after", "1.5",
                            "--webhook-url", receiver.url, CAMSERVER_WEBHOOK_SECRET=SECRET)
        start_stage("recorder", "--pre-seconds", "0", "--post-seconds", "0.5")
        start_stage("detector", "--stable-frames", "5")
        wait_for(lambda: "hooks for" in hooks.output(), 10, "the hooks stage to start")
        time.sleep(1.0)  # every subscriber connected before the visitor walks in
        capture = start_stage("capture", "--source", "demo", *SMALL)

        def ran(kind: str) -> list[dict[str, Any]]:
            return [run for run in runs(out) if run["argv"][0] == kind]

        saved = wait_for(lambda: ran("recording_saved"), 25, "the recording_saved hook")[0]
        start, end = ran("motion_start")[0], ran("motion_end")[0]
        assert start["argv"] == ["motion_start", "cam0", "", ""]
        assert end["env"]["CAMSERVER_EVENT"] == "motion_end" and end["env"]["CAMSERVER_EVENT_CAMERA"] == "cam0"
        assert json.loads(end["env"]["CAMSERVER_EVENT_JSON"])["data"]["keep"] is True
        kind, camera, path, name = saved["argv"]
        assert (kind, camera) == ("recording_saved", "cam0")
        assert Path(path).is_absolute() and Path(path).is_file() and path.endswith(f"/{name}.mp4")
        assert saved["env"]["CAMSERVER_EVENT_PATH"] == path
        assert Path(path).parent == ports.recordings.resolve()
        # The hook never sees the server's secrets.
        assert "CAMSERVER_WEBHOOK_SECRET" not in saved["env"]

        wait_for(lambda: len(receiver.requests) >= 3, 10, "three webhooks")
        bodies = [verified(headers, raw) for headers, raw, _status in receiver.requests]
        assert [b["event"] for b in bodies][:3] == ["motion_start", "motion_end", "recording_saved"]
        assert all(b["camera"] == "cam0" for b in bodies)
        assert bodies[2]["data"]["video"] == name + ".mp4"

        capture.stop(signal.SIGKILL)
        lost = wait_for(lambda: ran("camera_lost"), 10, "the camera_lost hook")[0]
        assert lost["argv"][:2] == ["camera_lost", "cam0"]
        assert not ran("camera_found")
        start_stage("capture", "--source", "demo", *SMALL)
        wait_for(lambda: ran("camera_found"), 10, "the camera_found hook")
        wait_for(lambda: {"camera_lost", "camera_found"} <= {e["event"] for e in receiver.events()}, 10,
                 "camera_lost and camera_found webhooks")
        assert hooks.stop() == 0
        assert SECRET not in hooks.output()
    finally:
        receiver.close()


def test_a_slow_hook_is_killed_and_runs_beyond_the_cap_are_dropped_and_counted(
        start_stage: Callable[..., Stage], ports: Ports, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    sleeper = tmp_path / "sleep.py"
    sleeper.write_text("import os, sys, time\n"
                       f"open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
                       "time.sleep(60)\n")
    with publisher(ports) as events:
        hooks = start_stage("hooks", "--on-motion-start", shlex.join([sys.executable, str(sleeper)]),
                            "--on-motion-end", "sh -c 'echo boom >&2; exit 3'",
                            "--hook-timeout", "2", "--hook-max-running", "2")
        # A failing motion_end hook, sent until its exit is logged, proves the subscription is up.
        seq = 0

        def failing_hook_logged() -> bool:
            nonlocal seq
            seq += 1
            events.send_multipart(Event("cam0", seq, time.time(), "motion_end", {"keep": True}).encode())
            return "exited with status 3: boom" in hooks.output()

        wait_for(failing_hook_logged, 10, "the motion_end hook's exit status in the log", interval=0.5)
        time.sleep(0.5)  # the motion_end runs are over
        for n in range(5):
            events.send_multipart(Event("cam0", 100 + n, time.time(), "motion_start", {}).encode())
        wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, 5, "two sleeping hooks")
        wait_for(lambda: "killed the motion_start hook of cam0" in hooks.output(), 5, "the timeout in the log")
        for pid in map(int, pids.read_text().split()):
            wait_for(lambda pid=pid: not _alive(pid), 2, f"hook {pid} killed")
        assert "dropped the motion_start hook of cam0: 2 hooks already running" in hooks.output()
        assert hooks.stop() == 0
    assert "3 hook run(s) dropped in all" in hooks.output()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_webhooks_retry_on_5xx_and_not_on_4xx(start_stage: Callable[..., Stage], ports: Ports) -> None:
    flaky, refusing = Receiver((503, 503)), Receiver((400,) * 100)
    try:
        with publisher(ports) as events:
            hooks = start_stage("hooks", "--webhook-url", f"{flaky.url},{refusing.url}")
            wait_for(lambda: "hooks for" in hooks.output(), 10, "the hooks stage to start")
            seq = 0

            def refused_once() -> bool:
                nonlocal seq
                seq += 1
                events.send_multipart(Event("cam0", seq, time.time(), "motion_start", {"n": seq}).encode())
                return bool(refusing.requests)

            wait_for(refused_once, 10, "the first webhook", interval=1.0)
            wait_for(lambda: any(status == 200 for _h, _r, status in flaky.requests), 10, "a 200 after two 503s")
            time.sleep(1.5)  # longer than the first retry delay: a retried 400 would have come again
        first = flaky.events()[0]
        assert [status for _h, _r, status in flaky.requests][:3] == [503, 503, 200]
        assert flaky.events()[:3] == [first] * 3 and first["event"] == "motion_start"
        sent = {e["data"]["n"] for e in refusing.events()}
        assert len(refusing.requests) == len(sent)  # each event once: a 400 is never retried
        assert "refused with 400" in hooks.output()
        assert hooks.stop() == 0
    finally:
        flaky.close()
        refusing.close()
