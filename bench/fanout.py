"""Gateway fan-out: many live viewers of one camera, a quarter of them slow.

Starts the real capture (demo scene) and gateway processes on free loopback ports, then for each
viewer count runs that many WebSocket (/webcam) or MJPEG (/stream.mjpg) viewers in separate client
processes, so that the clients never share the gateway's core. A quarter of the viewers are slow:
a small receive buffer, and after each frame they stop reading for a while (--slow-pause).
For the same stretch of time it prints, per viewer count:
  - frames per second of the fast viewers and of the slow ones (median and min);
  - capture-to-client latency p50/p99 of the fast viewers, from the frame's capture ``ts``
    (the JSON header on the WebSocket, the part's X-Camserver-Ts on MJPEG when the gateway sends it);
  - the gateway's CPU and the client processes' CPU, in % of one core (user + system from /proc);
  - the baseline of the same run: the capture's own rate and latency as a plain ZeroMQ SUB on the
    frames endpoint receives them, and the fast viewers' fps as a ratio of it.
Then the latency run: one WebSocket viewer at --latency-size, next to the ZeroMQ SUB.

With --baseline-root DIR the gateway of another checkout (e.g. the commit before a change, from
``git archive REV | tar -x -C DIR``) is measured too, right before this one at every step, and the
ratios this/baseline are printed.

    python bench/fanout.py                                   # 1,10,50,100 viewers at 1280x720@15, 8 s each
    python bench/fanout.py --viewers 100 --kinds ws --seconds 15
    python bench/fanout.py --baseline-root /tmp/camserver-before
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from common import REPO, Processes, clean_env, cpu_seconds, free_port, percentile, stop_cleanly_on_signals

from pipeline.bus.sockets import FRAME_HWM, subscriber
from pipeline.protocol import Frame, frame_topic

WARMUP_S = 2.0  # connections open and settle before the window opens
SLOW_RCVBUF = 16 * 1024
WS_TEXT, WS_BINARY, WS_CLOSE, WS_PING, WS_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


# ---------------------------------------------------------------- client side (its own process)


class Viewer(asyncio.Protocol):
    """One viewer on a raw socket: parses only what it must and never copies a JPEG.

    ``window`` is the stretch of wall time (time.time()) whose frames count.
    """

    def __init__(self, window: tuple[float, float], pause: float, request: bytes) -> None:
        self.window, self.pause, self.request = window, pause, request
        self.frames = 0
        self.latencies: list[float] = []
        self.transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self._upgraded:
            self.feed(memoryview(data))
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            return
        head, rest = bytes(self._head[:end]).decode("latin-1"), bytes(self._head[end + 4:])
        self.started(head)
        self._upgraded = True
        self.feed(memoryview(rest))

    def started(self, head: str) -> None:
        """The response's status line and headers have arrived."""

    def feed(self, data: memoryview) -> None:
        raise NotImplementedError

    def got_frame(self, ts: float | None) -> None:
        now = time.time()
        if self.window[0] <= now < self.window[1]:
            self.frames += 1
            if ts is not None:
                self.latencies.append(1000 * (now - ts))
        if self.pause and self.transport is not None:
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(self.pause, self._resume)

    def _resume(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()


class WebSocketViewer(Viewer):
    """/webcam: a JSON text message describes each frame, the binary message after it is the JPEG."""

    def __init__(self, port: int, window: tuple[float, float], pause: float) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        super().__init__(window, pause, (f"GET /webcam HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                                         "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self._frame_head = bytearray()
        self._left = 0
        self._opcode = 0
        self._text = bytearray()
        self._ts: float | None = None

    def started(self, head: str) -> None:
        if not head.startswith("HTTP/1.1 101"):
            raise SystemExit(f"WebSocket refused: {head.splitlines()[0]}")

    def feed(self, data: memoryview) -> None:
        at, end = 0, len(data)
        while at < end:
            if self._left:
                take = min(self._left, end - at)
                if self._opcode != WS_BINARY:
                    self._text += data[at:at + take]
                at += take
                self._left -= take
                if not self._left:
                    self._message_done()
                continue
            need = _ws_header_size(self._frame_head) - len(self._frame_head)
            self._frame_head += data[at:at + need]
            at += min(need, end - at)
            if len(self._frame_head) == _ws_header_size(self._frame_head):
                self._start_message()

    def _start_message(self) -> None:
        head = self._frame_head
        self._opcode = head[0] & 0x0F
        short = head[1] & 0x7F
        self._left = short if short < 126 else int.from_bytes(head[2:], "big")
        self._frame_head = bytearray()
        if not self._left:
            self._message_done()

    def _message_done(self) -> None:
        if self._opcode == WS_TEXT:
            message = json.loads(self._text)
            if message.get("type") == "frame":
                self._ts = message["ts"]
        elif self._opcode == WS_BINARY:
            self.got_frame(self._ts)
        elif self._opcode == WS_PING and self.transport is not None:
            payload = bytes(self._text)
            self.transport.write(bytes([0x80 | WS_PONG, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
        elif self._opcode == WS_CLOSE and self.transport is not None:
            self.transport.close()
        self._text = bytearray()


def _ws_header_size(head: bytearray) -> int:
    """How long a server's WebSocket frame header is, as far as its first bytes tell."""
    if len(head) < 2:
        return 2
    short = head[1] & 0x7F
    return 2 + (2 if short == 126 else 8 if short == 127 else 0)


class MjpegViewer(Viewer):
    """/stream.mjpg: multipart parts, inside HTTP/1.1 chunked encoding when the gateway uses it."""

    def __init__(self, port: int, window: tuple[float, float], pause: float) -> None:
        super().__init__(window, pause, f"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        self._chunked = False
        self._chunk_line = bytearray()
        self._chunk_left = 0  # data bytes left in this chunk; -1 while its CRLF is read
        self._part_head = bytearray()
        self._jpeg_left = 0
        self._ts: float | None = None

    def started(self, head: str) -> None:
        if not head.startswith("HTTP/1.1 200"):
            raise SystemExit(f"MJPEG refused: {head.splitlines()[0]}")
        self._chunked = "transfer-encoding: chunked" in head.lower()

    def feed(self, data: memoryview) -> None:
        if not self._chunked:
            self._parts(data)
            return
        at, end = 0, len(data)
        while at < end:
            if self._chunk_left > 0:
                take = min(self._chunk_left, end - at)
                self._parts(data[at:at + take])
                at += take
                self._chunk_left -= take
                if not self._chunk_left:
                    self._chunk_left = -2
                continue
            if self._chunk_left < 0:  # the CRLF after a chunk's data
                skip = min(-self._chunk_left, end - at)
                at += skip
                self._chunk_left += skip
                continue
            newline = bytes(data[at:]).find(b"\n")
            if newline < 0:
                self._chunk_line += data[at:]
                return
            self._chunk_line += data[at:at + newline + 1]
            at += newline + 1
            self._chunk_left = int(self._chunk_line.strip() or b"0", 16)
            self._chunk_line = bytearray()

    def _parts(self, data: memoryview) -> None:
        at, end = 0, len(data)
        while at < end:
            if self._jpeg_left:
                take = min(self._jpeg_left, end - at)
                at += take
                self._jpeg_left -= take
                if not self._jpeg_left:
                    self.got_frame(self._ts)
                continue
            self._part_head += data[at:end]
            stop = self._part_head.find(b"\r\n\r\n")
            if stop < 0:
                return
            at = end - (len(self._part_head) - stop - 4)
            self._part_started(bytes(self._part_head[:stop]).decode("latin-1"))
            self._part_head = bytearray()

    def _part_started(self, head: str) -> None:
        headers = dict(line.split(":", 1) for line in head.splitlines() if ":" in line)
        headers = {key.strip().lower(): value.strip() for key, value in headers.items()}
        self._jpeg_left = int(headers["content-length"])
        self._ts = float(headers["x-camserver-ts"]) if "x-camserver-ts" in headers else None


async def run_viewers(kind: str, port: int, fast: int, slow: int, window: tuple[float, float],
                      pause: float) -> list[dict[str, object]]:
    loop = asyncio.get_running_loop()
    make: Callable[..., Viewer] = WebSocketViewer if kind == "ws" else MjpegViewer
    viewers: list[tuple[bool, Viewer]] = []
    for index in range(fast + slow):
        is_slow = index >= fast
        sock = socket.socket()
        if is_slow:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        viewer = make(port, window, pause if is_slow else 0.0)
        await loop.create_connection(lambda v=viewer: v, sock=sock)
        viewers.append((is_slow, viewer))
    await asyncio.sleep(max(0.0, window[1] - time.time()))
    for _, viewer in viewers:
        if viewer.transport is not None:
            viewer.transport.abort()
    return [{"slow": is_slow, "frames": v.frames, "lat": v.latencies} for is_slow, v in viewers]


def client_main(argv: list[str]) -> None:
    """Run the viewers and write their figures as JSON to the file ``out`` (its output goes to a log)."""
    parser = argparse.ArgumentParser()
    for name in ("kind", "port", "fast", "slow", "start", "end", "pause", "out"):
        parser.add_argument(name)
    args = parser.parse_args(argv)
    results = asyncio.run(run_viewers(args.kind, int(args.port), int(args.fast), int(args.slow),
                                      (float(args.start), float(args.end)), float(args.pause)))
    Path(args.out).write_text(json.dumps(results))


# ---------------------------------------------------------------- the bench


@dataclass
class Sub:
    """The in-run baseline: what a plain ZeroMQ SUB on capture's endpoint gets in the window."""

    frames: int = 0
    latencies: list[float] = field(default_factory=list)


def zmq_baseline(endpoint: str, window: tuple[float, float]) -> Sub:
    result = Sub()
    ctx = zmq.Context()
    sock = subscriber(ctx, [endpoint], [frame_topic()], FRAME_HWM)
    try:
        while time.time() < window[1]:
            if sock.poll(50):
                frame = Frame.decode(sock.recv_multipart())
                now = time.time()
                if now >= window[0]:
                    result.frames += 1
                    result.latencies.append(1000 * (now - frame.ts))
    finally:
        sock.close()
        ctx.term()
    return result


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Step:
    """The figures of one viewer count with one gateway."""

    viewers: int
    fast: list[float]
    slow: list[float]
    latencies: list[float]
    slow_latencies: list[float]
    gateway_cpu: float
    client_cpu: float
    sub: Sub
    seconds: float

    @property
    def capture_fps(self) -> float:
        return self.sub.frames / self.seconds

    def row(self, label: str) -> str:
        p50, p99 = percentile(self.latencies, 0.5), percentile(self.latencies, 0.99)
        low = lambda v: min(v) if v else float("nan")  # noqa: E731
        fast, slow = self.fast, self.slow
        return (f"  {label:<9} {self.viewers:4d}  {self.capture_fps:6.2f}  {median(fast):6.2f} {low(fast):6.2f}"
                f"  {median(slow):6.2f} {low(slow):6.2f}  {p50:7.2f} {p99:7.2f}"
                f"  {percentile(self.slow_latencies, 0.5):7.1f}  {self.gateway_cpu:6.1f}  {self.client_cpu:6.1f}"
                f"  x{median(self.fast) / self.capture_fps:.3f}")


HEADER = ("  gateway   view  captur  fast fps med/min  slow fps med/min  fast lat p50/p99  slow lat  gw CPU  client"
          "  fast/\n"
          "            ers     fps                                                   ms    p50 ms   %core   %core"
          "  capture")


def measure(kind: str, port: int, gateway_pid: int, frames: str, viewers: int, args: argparse.Namespace,
            slow_fraction: float, folder: Path) -> Step:
    """Run ``viewers`` viewers of one kind for one window and gather the figures."""
    seconds = args.seconds
    slow = int(viewers * slow_fraction)
    fast = viewers - slow
    start = time.time() + WARMUP_S
    window = (start, start + seconds)
    shares = min(args.client_procs, viewers)
    sub: list[Sub] = []
    with Processes(folder) as clients:
        for index in range(shares):
            mine = (fast // shares + (index < fast % shares), slow // shares + (index < slow % shares))
            clients.start(f"client{index}", [__file__, "client", kind, str(port), str(mine[0]), str(mine[1]),
                                             str(window[0]), str(window[1]), str(args.slow_pause),
                                             str(folder / f"client{index}.json")], clean_env())
        thread = threading.Thread(target=lambda: sub.append(zmq_baseline(frames, window)), daemon=True)
        thread.start()
        time.sleep(max(0.0, window[0] - time.time()))
        gw0, cl0 = cpu_seconds(gateway_pid), [cpu_seconds(p.pid) for p in clients.popen.values()]
        time.sleep(max(0.0, window[1] - time.time()))
        gw1, cl1 = cpu_seconds(gateway_pid), [cpu_seconds(p.pid) for p in clients.popen.values()]
        results: list[dict] = []
        for name in clients.popen:
            clients.wait(name, 30)
            results.extend(json.loads((folder / f"{name}.json").read_text()))
        thread.join()
    return Step(viewers, [r["frames"] / seconds for r in results if not r["slow"]],
                [r["frames"] / seconds for r in results if r["slow"]],
                [ms for r in results if not r["slow"] for ms in r["lat"]],
                [ms for r in results if r["slow"] for ms in r["lat"]],
                100 * (gw1 - gw0) / seconds, 100 * (sum(cl1) - sum(cl0)) / seconds, sub[0], seconds)


@dataclass
class Gateway:
    label: str
    pid: int
    port: int


def start_pipeline(children: Processes, size: str, roots: list[tuple[str, Path]], frames: str,
                   detector: bool) -> list[Gateway]:
    """Capture (and the detector, whose events every WebSocket viewer gets too) and one gateway per root."""
    dims, fps = size.split("@")
    width, height = dims.split("x")
    env = clean_env(CAMSERVER_FRAMES=frames, CAMSERVER_EVENTS=f"tcp://127.0.0.1:{free_port()}",
                    CAMSERVER_RECORDER_EVENTS=f"tcp://127.0.0.1:{free_port()}", CAMSERVER_LOG_LEVEL="WARNING",
                    CAMSERVER_MAX_CONNECTIONS="2000", CAMSERVER_MAX_CONNECTIONS_PER_CLIENT="2000",
                    CAMSERVER_MAX_VIEWERS_PER_CLIENT="2000")
    children.stage("capture", env, "--source", "demo", "--width", width, "--height", height, "--fps", fps)
    if detector:
        children.stage("detector", env)
    gateways = []
    for label, root in roots:
        port, name = free_port(), f"gateway-{label}"
        children.start(name, ["-m", "pipeline.gateway"], {**env, "CAMSERVER_PORT": str(port)}, cwd=root)
        gateways.append(Gateway(label, children.popen[name].pid, port))
    time.sleep(3.0)  # start-up and ZeroMQ's slow joiner
    children.check()
    return gateways


def run_size(size: str, kinds: list[str], counts: list[int], args: argparse.Namespace,
             roots: list[tuple[str, Path]], slow_fraction: float, folder: Path) -> None:
    frames = f"tcp://127.0.0.1:{free_port()}"
    with Processes(folder / "logs") as children:
        gateways = start_pipeline(children, size, roots, frames, args.detector)
        for kind in kinds:
            print(f"\n{kind.upper()} viewers of {size}, {args.seconds:g} s each, {round(100 * slow_fraction)}% slow "
                  f"(receive buffer {SLOW_RCVBUF // 1024} KB, {args.slow_pause:g} s pause after each frame)")
            print(HEADER)
            for count in counts:
                steps = [measure(kind, gw.port, gw.pid, frames, count, args, slow_fraction, folder / "clients")
                         for gw in gateways]
                for gateway, step in zip(gateways, steps, strict=True):
                    print(step.row(gateway.label))
                if len(steps) == 2:
                    print(ratio_row(*steps))
                sub = steps[-1].sub
                print(f"  {'ZeroMQ SUB':<9}       {sub.frames / args.seconds:6.2f}  latency p50 "
                      f"{percentile(sub.latencies, 0.5):.2f} ms p99 {percentile(sub.latencies, 0.99):.2f} ms "
                      "(the capture's own, in-run baseline)", flush=True)


def ratio_row(before: Step, after: Step) -> str:
    ratio = lambda a, b: a / b if b else float("nan")  # noqa: E731
    return (f"  this/base      fast fps x{ratio(median(after.fast), median(before.fast)):.3f}  slow fps "
            f"x{ratio(median(after.slow), median(before.slow)):.3f}  fast lat p99 "
            f"x{ratio(percentile(after.latencies, 0.99), percentile(before.latencies, 0.99)):.2f}  slow lat p50 "
            f"x{ratio(percentile(after.slow_latencies, 0.5), percentile(before.slow_latencies, 0.5)):.2f}  "
            f"gateway CPU x{ratio(after.gateway_cpu, before.gateway_cpu):.2f}")


def main() -> None:
    if sys.argv[1:2] == ["client"]:
        client_main(sys.argv[2:])
        return
    stop_cleanly_on_signals()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x720@15", help="WIDTHxHEIGHT@FPS of the fan-out runs")
    parser.add_argument("--viewers", default="1,10,50,100", help="comma-separated viewer counts")
    parser.add_argument("--kinds", default="ws,mjpeg", help="ws, mjpeg or both")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured window per step")
    parser.add_argument("--slow-fraction", type=float, default=0.25)
    parser.add_argument("--slow-pause", type=float, default=0.25, help="seconds a slow viewer stops reading after "
                        "each frame")
    parser.add_argument("--client-procs", type=int, default=2, help="client processes the viewers are spread over")
    parser.add_argument("--latency-size", default="1280x720@30", help="WIDTHxHEIGHT@FPS of the latency run ('none' "
                        "to skip)")
    parser.add_argument("--latency-viewers", default="1,100", help="viewer counts of the latency run (none slow)")
    parser.add_argument("--no-detector", dest="detector", action="store_false", help="without the detector (whose "
                        "events go to every WebSocket viewer)")
    parser.add_argument("--baseline-root", type=Path, help="also measure the gateway of this checkout, as baseline")
    args = parser.parse_args()
    roots = [("this", REPO)]
    if args.baseline_root is not None:
        roots.insert(0, ("baseline", args.baseline_root.resolve()))
    print(f"gateway fan-out; CPU in % of one core ({os.cpu_count()} cores); latency from capture's ts to the client; "
          f"detector {'on' if args.detector else 'off'}")
    with tempfile.TemporaryDirectory(prefix="camserver-fanout-") as tmp:
        run_size(args.size, args.kinds.split(","), [int(n) for n in args.viewers.split(",")], args, roots,
                 args.slow_fraction, Path(tmp) / "fanout")
        if args.latency_size != "none":
            run_size(args.latency_size, ["ws"], [int(n) for n in args.latency_viewers.split(",")], args, roots, 0.0,
                     Path(tmp) / "latency")


if __name__ == "__main__":
    main()
