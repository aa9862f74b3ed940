"""What the bench scripts share: loopback ports, stage processes with their CPU and memory, clips, live-view reading.

Every figure comes from real processes talking over real sockets on 127.0.0.1, as in use. These
helpers start them with a clean environment (a developer's CAMSERVER_* settings must not shape a
figure), always stop them, and read what a viewer of the live view receives. Imported by the bench
scripts (``python bench/X.py`` puts this folder on the path); not run on its own. CPU and memory
are read from /proc, so that bench/soak.py, which the test suite runs, needs nothing beyond the
pipeline's own dependencies.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import tornado.httpclient
import tornado.websocket

from pipeline.video.demo import DemoScene

REPO = Path(__file__).resolve().parent.parent
SAMPLE_EVERY_S = 0.25
CONNECT_TIMEOUT_S = 30.0
# No message for this long means a stage has hung or died: every live view sends at least once a second.
READ_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
FIRST_PORT = 10000  # below it lie the ports of well-known services


def stop_cleanly_on_signals() -> None:
    """SIGTERM and SIGINT end this script through its ``finally`` blocks, so that no process it started outlives it.

    SIGINT is set too, because a shell starts a background job with SIGINT ignored and the job's
    children inherit that: without this, ``kill -INT`` would stop nothing.
    """

    def handle(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)


def _port_range() -> range:
    """The ports free_port hands out: those below the kernel's ephemeral range.

    A port from bind(0) lies in the ephemeral range, which every outgoing connection (a viewer's, a
    stage's ZeroMQ connect) draws its own port from: between handing such a port out and a stage
    binding it, a client socket can take it ("Address already in use"). Below that range only
    explicit binds take ports.
    """
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768  # Linux's default; elsewhere the ports below it are as good a guess
    return range(FIRST_PORT, ephemeral)


_PORTS = _port_range()
# From a random place: another run's sockets may linger on the ports it used.
_port_turns = itertools.count(random.randrange(len(_PORTS)))


def free_port() -> int:
    """A loopback port nobody is bound to, not one this process handed out before (until all have been)."""
    for _ in _PORTS:
        port = _PORTS[next(_port_turns) % len(_PORTS)]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {_PORTS}")


def clean_env(**values: str) -> dict[str, str]:
    """This environment without CAMSERVER_* variables, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMSERVER_")}
    return {**env, "PYTHONUNBUFFERED": "1", **values}


def pipeline_env(folder: Path) -> tuple[dict[str, str], int]:
    """The camserver stages' environment, every endpoint on a free loopback port; and the gateway's port."""
    port = free_port()
    env = clean_env(CAMSERVER_FRAMES=f"tcp://127.0.0.1:{free_port()}",
                    CAMSERVER_EVENTS=f"tcp://127.0.0.1:{free_port()}",
                    CAMSERVER_RECORDER_EVENTS=f"tcp://127.0.0.1:{free_port()}",
                    CAMSERVER_PORT=str(port), CAMSERVER_RECORDINGS=str(folder / "recordings"),
                    CAMSERVER_LOG_LEVEL="WARNING")
    return env, port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    """A process's resident memory now (VmRSS of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) * 1024


class Processes:
    """Child processes started under names, each logging to its own file, and always stopped together (``with``)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.popen: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: Sequence[str], env: dict[str, str], cwd: Path = REPO) -> None:
        """Start ``python argv`` in ``cwd`` (another checkout's folder runs that checkout's pipeline)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("wb") as log:
            self.popen[name] = subprocess.Popen([sys.executable, *argv], cwd=cwd, env=env, stdout=log,
                                                stderr=subprocess.STDOUT)

    def stage(self, name: str, env: dict[str, str], *flags: str) -> None:
        """Start ``python -m pipeline.<name>`` with ``flags``."""
        self.start(name, ["-m", f"pipeline.{name}", *flags], env)

    def check(self) -> None:
        """SystemExit naming a process that has exited, with the end of its log: a figure without it is wrong."""
        for name, proc in self.popen.items():
            if proc.poll() is not None:
                raise self._ended(name, " during the run")

    def wait(self, name: str, timeout: float) -> None:
        """Wait for ``name``, a process that ends by itself; SystemExit with the end of its log if it failed."""
        if self.popen[name].wait(timeout):
            raise self._ended(name, "")

    def _ended(self, name: str, when: str) -> SystemExit:
        tail = (self.logs / f"{name}.log").read_text(errors="replace")[-1500:]
        return SystemExit(f"{name} exited with status {self.popen[name].returncode}{when}; its log ends:\n{tail}")

    def stop(self) -> None:
        """SIGTERM to all (each stage stops in order on it), then SIGKILL to any still there after a while."""
        for proc in self.popen.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.popen.values():
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Meter:
    """CPU seconds (user + system) and peak resident memory of named processes."""

    def __init__(self, procs: Processes) -> None:
        self._procs = procs
        self.peak_rss = dict.fromkeys(procs.popen, 0)

    def cpu(self) -> dict[str, float]:
        self._procs.check()
        return {name: cpu_seconds(proc.pid) for name, proc in self._procs.popen.items()}

    def sample(self) -> None:
        self._procs.check()
        for name, proc in self._procs.popen.items():
            self.peak_rss[name] = max(self.peak_rss[name], rss_bytes(proc.pid))


@dataclass
class Window:
    """The stretch of a run that counts: it opens after the warm-up and closes after the measured seconds."""

    first_frame: asyncio.Event = field(default_factory=asyncio.Event)
    open: bool = False
    closed: bool = False

    def counts(self) -> bool:
        return self.open and not self.closed


@dataclass
class Tally:
    """What a viewer received while the window was open."""

    frames: int = 0
    wire_bytes: int = 0
    jpeg_bytes: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    first_seq: int | None = None
    last_seq: int | None = None

    def frame(self, ts: float, jpeg_bytes: int, seq: int | None = None) -> None:
        self.frames += 1
        self.jpeg_bytes += jpeg_bytes
        self.latencies_ms.append(1000 * (time.time() - ts))
        if seq is not None:
            self.first_seq = seq if self.first_seq is None else self.first_seq
            self.last_seq = seq

    def published(self) -> int | None:
        """Frames capture published across the window, from the sequence numbers seen (camserver only)."""
        if self.first_seq is None or self.last_seq is None:
            return None
        return self.last_seq - self.first_seq + 1

    def latency(self, share: float) -> float:
        return percentile(self.latencies_ms, share)


@dataclass
class Measurement:
    """One run's figures: what the viewer got, and each process's CPU in the window and peak memory."""

    seconds: float
    tally: Tally
    cpu_s: dict[str, float]
    peak_rss: dict[str, int]
    wall: tuple[float, float]  # the window in this host's time.time(), the clock of frame timestamps

    @property
    def fps(self) -> float:
        return self.tally.frames / self.seconds

    def cpu_ms_per_frame(self, name: str) -> float:
        return 1000 * self.cpu_s[name] / max(1, self.tally.frames)

    def total_cpu_ms_per_frame(self) -> float:
        return sum(self.cpu_ms_per_frame(name) for name in self.cpu_s)

    def wire_per_frame(self) -> float:
        return self.tally.wire_bytes / max(1, self.tally.frames)

    def jpeg_per_frame(self) -> float:
        return self.tally.jpeg_bytes / max(1, self.tally.frames)

    def overlap(self, start: float, end: float) -> float:
        """Seconds of [start, end] (time.time()) inside the window."""
        return max(0.0, min(end, self.wall[1]) - max(start, self.wall[0]))


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` 0.5 for the median); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def ws_wire_bytes(payload: int, masked: bool) -> int:
    """Bytes one WebSocket message of ``payload`` bytes takes: the RFC 6455 header, with a mask key from clients."""
    header = 2 if payload < 126 else 4 if payload < 65536 else 10
    return payload + header + (4 if masked else 0)


async def connect(url: str, procs: Processes) -> tornado.websocket.WebSocketClientConnection:
    """A WebSocket to ``url`` once its server listens; SystemExit if a process dies or it never answers."""
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        procs.check()
        try:
            return await tornado.websocket.websocket_connect(url)
        except (OSError, tornado.httpclient.HTTPClientError) as exc:  # not listening yet, or closed while starting
            if time.monotonic() > deadline:
                raise SystemExit(f"no WebSocket at {url} within {CONNECT_TIMEOUT_S:g} s: {exc!r}") from None
            await asyncio.sleep(0.1)


class ViewerLost(Exception):
    """The live view closed or went silent: a stage died or hung."""


async def read(conn: tornado.websocket.WebSocketClientConnection) -> str | bytes:
    try:
        message = await asyncio.wait_for(conn.read_message(), READ_TIMEOUT_S)
    except TimeoutError:
        raise ViewerLost(f"no message for {READ_TIMEOUT_S:g} s") from None
    if message is None:
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # asyncio.run stopping on a signal closed it, not the server
            raise asyncio.CancelledError
        raise ViewerLost("the server closed the live view")
    return message


async def watch_live_view(conn: tornado.websocket.WebSocketClientConnection, window: Window) -> Tally:
    """Read camserver's /webcam as the page does (JSON text messages; each frame's header, then its JPEG)."""
    tally, header = Tally(), None
    while not window.closed:
        message = await read(conn)
        if window.counts():
            tally.wire_bytes += ws_wire_bytes(len(message), masked=False)
        if isinstance(message, str):
            body: dict[str, Any] = json.loads(message)
            header = body if body.get("type") == "frame" else header
        elif header is not None:
            window.first_frame.set()
            if window.counts():
                tally.frame(header["ts"], len(message), header["seq"])
            header = None
    conn.close()
    return tally


async def measure(procs: Processes, url: str, watch: Any, warmup: float, seconds: float) -> Measurement:
    """Connect to ``url`` and run ``watch(conn, window)``; meter every process over ``seconds`` after ``warmup``
    from the first frame."""
    meter, window = Meter(procs), Window()
    viewer = asyncio.ensure_future(watch(await connect(url, procs), window))
    await sample_until(meter, viewer, window.first_frame.wait(), CONNECT_TIMEOUT_S, "no frame arrived")
    await sample_until(meter, viewer, asyncio.sleep(warmup), warmup + 1, "warm-up")
    before, started, wall_start, window.open = meter.cpu(), time.monotonic(), time.time(), True
    await sample_until(meter, viewer, asyncio.sleep(seconds), seconds + 1, "measure")
    after, elapsed, window.closed = meter.cpu(), time.monotonic() - started, True
    tally = await viewer
    return Measurement(elapsed, tally, {name: after[name] - before[name] for name in after}, meter.peak_rss,
                       (wall_start, wall_start + elapsed))



async def sample_until(meter: Meter, viewer: asyncio.Future[Tally], awaitable: Any, timeout: float,
                       what: str) -> None:
    """Sample memory until ``awaitable`` is done; SystemExit if the viewer fails or it takes over ``timeout``."""
    waiting = asyncio.ensure_future(awaitable)
    deadline = time.monotonic() + timeout
    try:
        while not waiting.done():
            meter.sample()
            if viewer.done():
                raise SystemExit(f"the viewer stopped early: {viewer.exception() or 'no error'}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{what}: nothing after {timeout:g} s")
            await asyncio.wait({waiting}, timeout=SAMPLE_EVERY_S)
    finally:
        waiting.cancel()


def make_clip(path: Path, width: int, height: int, fps: float, seconds: float, fourcc: str = "MJPG") -> Path:
    """The demo scene written by cv2 to a video file; MJPG: each frame a JPEG, as an MJPEG webcam gives them."""
    scene = DemoScene(width, height, seed=0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    try:
        for n in range(round(seconds * fps)):
            writer.write(scene.render(n / fps, 1_700_000_000 + n / fps))
    finally:
        writer.release()
    return path


def mean_packet_bytes(path: Path) -> float:
    """The mean size of a video file's packets: for an MJPEG file, its JPEGs."""
    with av.open(str(path)) as container:
        sizes = [packet.size for packet in container.demux(container.streams.video[0]) if packet.size]
    return sum(sizes) / len(sizes)


def kb(n: float) -> str:
    return f"{n / 1024:.1f} KB"
