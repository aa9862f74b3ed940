"""The H.264 live view against JPEG push: bytes a minute, picture quality, the encoder's CPU, one encode for many.

For each size it makes an MJPEG AVI of the demo scene (capture passes its JPEGs through byte for
byte), starts the real capture (looping the clip), encoder and gateway on free loopback ports, then:
  - idle: nobody holds the camera's ``video.`` topic for --idle seconds; the encoder's CPU then is
    what receiving the JPEGs costs (its heartbeats must show no frame encoded);
  - live: one JPEG viewer (WS /webcam) and one H.264 viewer (WS /api/ws?src=cam0, go2rtc's MSE
    protocol) read for --seconds in the same window, on the same frames: bytes on the wire (RFC 6455
    headers included) scaled to a minute, H.264/JPEG as the ratio (goal at most 1/5); the encoder's
    CPU per frame it encoded (frames counted from the track's seq numbers, read on the bus);
  - quality: the track's access units, read on the bus beside capture's JPEGs and paired by ``ts``,
    decoded with PyAV's h264 decoder; PSNR (BGR, as bench/recorder.py) of every 5th picture against
    its source JPEG (goal at least 36 dB). The H.264 viewer's own init segment and fragments are
    decoded as MP4 too, to check that what a browser gets plays.
Then one encode for many: --viewers H.264 viewers of one --fanout-size camera, encoder and gateway
CPU a second against 1 viewer in the same run, and every viewer's bytes. Time to first picture
(WebSocket opened -> init segment and first fragment received) is taken at every join: cold (the
camera's track not running) and warm (joining viewers already watching).

    python bench/h264.py                             # 640x480@10, 1280x720@30, 1920x1080@30; 15 s each
    python bench/h264.py --sizes 1280x720@30 --seconds 8 --viewers 20 --fanout-seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import zmq
import zmq.asyncio
from common import (
    CONNECT_TIMEOUT_S,
    Meter,
    Processes,
    connect,
    free_port,
    make_clip,
    mean_packet_bytes,
    percentile,
    pipeline_env,
    stop_cleanly_on_signals,
    ws_wire_bytes,
)

from pipeline.bus.sockets import subscriber
from pipeline.protocol import Frame, Heartbeat, Video, frame_topic, stage_topic, video_topic

CAMERA = "cam0"
CLIP_SECONDS = 12.0  # the clip loops; long enough that the walker moves through it
WARMUP_S = 2.0  # after the first picture, before a window opens
JOIN_EVERY_S = 0.35  # between viewers joining: more than the gateway's 0.3 s between key frames asked for
PSNR_EVERY = 5
BUS_HWM = 1000  # the bench's own subscribers queue what they cannot read at once rather than drop it
MSE_REQUEST = json.dumps({"type": "mse", "value": "avc1.640029,avc1.42E01E"})


@dataclass(frozen=True)
class Size:
    width: int
    height: int
    fps: float

    @classmethod
    def parse(cls, spec: str) -> Size:
        size, fps = spec.strip().split("@")
        width, height = size.split("x")
        return cls(int(width), int(height), float(fps))

    def __str__(self) -> str:
        return f"{self.width}x{self.height}@{self.fps:g}"


@dataclass
class Timeline:
    """Things received, each with the monotonic time it arrived: a window is a slice of it."""

    items: list[tuple[float, Any]] = field(default_factory=list)

    def add(self, item: Any) -> None:
        self.items.append((time.monotonic(), item))

    def between(self, start: float, end: float) -> list[Any]:
        return [item for at, item in self.items if start <= at < end]


class MseClient:
    """One H.264 viewer as go2rtc's player is: ask for MSE, then the answer, the init segment, a fragment a frame."""

    def __init__(self, url: str, keep: bool = False) -> None:
        self.url, self.keep = url, keep
        self.wire = Timeline()  # (wire bytes, is a fragment)
        self.init: bytes | None = None
        self.fragments: list[bytes] = []
        self.texts: list[str] = []
        self.first_picture = asyncio.Event()
        self.to_first_picture: float | None = None

    async def run(self, procs: Processes) -> None:
        opened = time.monotonic()
        conn = await connect(self.url, procs)
        await conn.write_message(MSE_REQUEST)
        try:
            while True:
                message = await conn.read_message()
                if message is None:
                    raise SystemExit(f"the gateway closed the H.264 view {self.url}: {self.texts[-1:]}")
                fragment = isinstance(message, bytes) and self.init is not None
                self.wire.add((ws_wire_bytes(len(message), masked=False), fragment))
                if isinstance(message, str):
                    self.texts.append(message)
                elif self.init is None:
                    self.init = message
                else:
                    if self.to_first_picture is None:
                        self.to_first_picture = time.monotonic() - opened
                        self.first_picture.set()
                    if self.keep:
                        self.fragments.append(message)
        finally:
            conn.close()

    def bytes_between(self, start: float, end: float) -> tuple[int, int]:
        """Wire bytes and fragments received in [start, end)."""
        got = self.wire.between(start, end)
        return sum(n for n, _ in got), sum(fragment for _, fragment in got)


async def jpeg_viewer(url: str, procs: Processes, wire: Timeline) -> None:
    """The page's JPEG live view: a JSON text message, then the JPEG, per frame."""
    conn = await connect(url, procs)
    try:
        while True:
            message = await conn.read_message()
            if message is None:
                raise SystemExit("the gateway closed the JPEG live view")
            wire.add((ws_wire_bytes(len(message), masked=False), isinstance(message, bytes)))
    finally:
        conn.close()


async def read_bus(sock: zmq.asyncio.Socket, into: Timeline, keep_jpegs: list[bool]) -> None:
    """Frames as (seq, ts, JPEG or None), video messages, heartbeats' counters, each as it arrives."""
    while True:
        parts = await sock.recv_multipart()
        topic = bytes(parts[0])
        if topic.startswith(b"frame."):
            frame = Frame.decode(parts)
            into.add((frame.seq, frame.ts, frame.jpeg if keep_jpegs[0] else None))
        elif topic.startswith(b"video."):
            into.add(Video.decode(parts))
        else:
            beat = Heartbeat.decode(parts)
            if beat.stage == "encoder":
                into.add(beat.counters)


async def until(done: Callable[[], bool], procs: Processes, tasks: list[asyncio.Task[Any]], what: str) -> None:
    """Wait until ``done()``; SystemExit if a process or a reader fails first, or after CONNECT_TIMEOUT_S."""
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while not done():
        procs.check()
        for task in tasks:
            if task.done():
                task.result()
                raise SystemExit(f"a reader stopped while waiting for {what}")
        if time.monotonic() > deadline:
            raise SystemExit(f"no {what} within {CONNECT_TIMEOUT_S:g} s")
        await asyncio.sleep(0.05)


async def window(procs: Processes, tasks: list[asyncio.Task[Any]],
                 seconds: float) -> tuple[float, float, dict[str, float]]:
    """Sleep ``seconds`` (checking the processes and readers); (start, end, CPU seconds of each process over it)."""
    meter = Meter(procs)
    before, start = meter.cpu(), time.monotonic()
    while time.monotonic() - start < seconds:
        await asyncio.sleep(min(0.25, seconds - (time.monotonic() - start)))
        for task in tasks:
            if task.done():
                task.result()
                raise SystemExit("a reader stopped during the window")
    after, end = meter.cpu(), time.monotonic()
    return start, end, {name: after[name] - before[name] for name in after}


def seq_span(seqs: list[int]) -> int:
    """How many messages a run of sequence numbers covers (read or missed)."""
    return max(seqs) - min(seqs) + 1 if seqs else 0


@dataclass
class SizeResult:
    size: Size
    jpeg_mean: float
    jpeg_per_min: float
    h264_per_min: float
    jpeg_frames: int
    h264_fragments: int
    source_frames: int
    encoded: int
    encoder_ms: float
    encoder_core: float
    idle_ms: float
    idle_core: float
    idle_encoded: int
    gateway_ms: float
    psnr: list[float]
    decoded: tuple[int, int]  # pictures decoded from the H.264 viewer's MP4, fragments it received
    bus_gaps: int
    to_first_picture: float


class Run:
    """capture (the clip, looping), encoder and gateway on free ports, with the bench's bus sockets."""

    def __init__(self, procs: Processes, folder: Path, clip: Path, viewers: int = 2) -> None:
        env, self.port = pipeline_env(folder)
        self.video = f"tcp://127.0.0.1:{free_port()}"
        self.frames = env["CAMSERVER_FRAMES"]
        env["CAMSERVER_VIDEO"] = self.video
        # Every viewer comes from this one address: the gateway's per-client caps would refuse the many.
        env["CAMSERVER_MAX_VIEWERS_PER_CLIENT"] = env["CAMSERVER_MAX_CONNECTIONS_PER_CLIENT"] = str(viewers + 10)
        procs.stage("gateway", env)
        procs.stage("encoder", env)
        procs.stage("capture", env, "--source", str(clip), "--loop")
        self.procs = procs
        self.ctx = zmq.asyncio.Context()
        self.sockets: list[zmq.asyncio.Socket] = []
        self.tasks: list[asyncio.Task[Any]] = []

    def mse_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/ws?src={CAMERA}"

    def listen(self, endpoint: str, topics: list[bytes], into: Timeline, keep_jpegs: list[bool]) -> None:
        sock = subscriber(self.ctx, [endpoint], topics, BUS_HWM)
        self.sockets.append(sock)
        self.spawn(read_bus(sock, into, keep_jpegs))

    def spawn(self, coroutine: Any) -> None:
        self.tasks.append(asyncio.ensure_future(coroutine))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for sock in self.sockets:
            sock.close()
        self.ctx.term()


async def measure_size(size: Size, clip: Path, seconds: float, idle: float, folder: Path) -> SizeResult:
    with Processes(folder / "logs") as procs:
        run = Run(procs, folder, clip)
        try:
            bus, keep = Timeline(), [False]
            run.listen(run.frames, [frame_topic(CAMERA)], bus, keep)
            run.listen(run.video, [stage_topic()], bus, keep)  # the encoder's heartbeats only: no track asked for
            kinds = lambda: {type(item) for _, item in bus.items}  # noqa: E731
            await until(lambda: {tuple, dict} <= kinds(), procs, run.tasks, "frame and encoder heartbeat")
            await asyncio.sleep(WARMUP_S)
            i_start, i_end, idle_cpu = await window(procs, run.tasks, idle)
            idle_frames = seq_span([i[0] for i in bus.between(i_start, i_end) if isinstance(i, tuple)])
            counters = [i for _, i in bus.items if isinstance(i, dict)]
            idle_encoded = counters[-1].get("frames_encoded", 0)

            mse = MseClient(run.mse_url(), keep=True)  # first, so that its first picture is a cold start's
            run.spawn(mse.run(procs))
            await until(mse.first_picture.is_set, procs, run.tasks, "H.264 picture")
            run.listen(run.video, [video_topic(CAMERA)], bus, keep)
            jpeg_wire = Timeline()
            run.spawn(jpeg_viewer(f"ws://127.0.0.1:{run.port}/webcam?camera={CAMERA}", procs, jpeg_wire))
            await asyncio.sleep(WARMUP_S)
            keep[0] = True
            start, end, cpu = await window(procs, run.tasks, seconds)
            keep[0] = False
            elapsed = end - start
            in_window = bus.between(start, end)
            frames = [i for i in in_window if isinstance(i, tuple)]
            videos = [i for i in in_window if isinstance(i, Video)]
            jpeg_got = jpeg_wire.between(start, end)
            h264_bytes, fragments = mse.bytes_between(start, end)
            encoded = seq_span([v.seq for v in videos])
            source = seq_span([f[0] for f in frames])
            all_videos = [i for _, i in bus.items if isinstance(i, Video)]
            jpegs = {f[1]: f[2] for f in frames if f[2] is not None}
        finally:
            await run.close()
    psnr, gaps = quality(all_videos, jpegs)
    return SizeResult(
        size=size, jpeg_mean=mean_packet_bytes(clip),
        jpeg_per_min=sum(n for n, _ in jpeg_got) / elapsed * 60, h264_per_min=h264_bytes / elapsed * 60,
        jpeg_frames=sum(binary for _, binary in jpeg_got), h264_fragments=fragments, source_frames=source,
        encoded=encoded, encoder_ms=1000 * cpu["encoder"] / max(1, encoded), encoder_core=cpu["encoder"] / elapsed,
        idle_ms=1000 * idle_cpu["encoder"] / max(1, idle_frames), idle_core=idle_cpu["encoder"] / (i_end - i_start),
        idle_encoded=idle_encoded, gateway_ms=1000 * cpu["gateway"] / max(1, source), psnr=psnr,
        decoded=(decoded_pictures(mse), len(mse.fragments)), bus_gaps=gaps,
        to_first_picture=mse.to_first_picture or float("nan"))


def quality(videos: list[Video], jpegs: dict[float, bytes]) -> tuple[list[float], int]:
    """PSNR of every PSNR_EVERY-th picture that has its source JPEG; and the gaps in the track read on the bus."""
    decoder = av.CodecContext.create("h264", "r")
    pending: list[float] = []  # the ts of each access unit given to the decoder, in order
    values, paired, gaps, previous, need_key = [], 0, 0, None, True

    def compare(pictures: list[av.VideoFrame]) -> None:
        nonlocal paired
        for picture in pictures:
            ts = pending.pop(0)
            jpeg = jpegs.get(ts)
            if jpeg is None:
                continue
            paired += 1
            if paired % PSNR_EVERY == 1:
                source = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                mse = np.mean((picture.to_ndarray(format="bgr24").astype(np.float32) - source) ** 2)
                values.append(float(10 * np.log10(255**2 / max(mse, 1e-9))))

    for video in videos:
        if previous is not None and video.seq != previous + 1:
            gaps += 1
            need_key = True
        previous = video.seq
        if need_key and not video.key:
            continue
        need_key = False
        pending.append(video.ts)
        compare(decoder.decode(av.Packet(video.data)))
    compare(decoder.decode(None))
    return values, gaps


def decoded_pictures(mse: MseClient) -> int:
    """How many pictures the H.264 viewer's init segment and fragments give as an MP4: all of them, if it plays."""
    if mse.init is None or not mse.fragments:
        return 0
    try:
        with av.open(io.BytesIO(mse.init + b"".join(mse.fragments)), format="mp4") as container:
            return sum(1 for _ in container.decode(video=0))
    except av.FFmpegError as exc:
        print(f"  the H.264 viewer's MP4 does not decode: {exc}")
        return 0


@dataclass
class FanoutResult:
    size: Size
    viewers: int
    encoder_one: float  # CPU seconds a second
    encoder_many: float
    gateway_one: float
    gateway_many: float
    fragments_one: int
    bytes_one: float  # a minute
    bytes_many: list[float]  # a minute, each viewer
    fragments_many: list[int]
    cold: float
    warm: list[float]


async def measure_fanout(size: Size, clip: Path, viewers: int, seconds: float, folder: Path) -> FanoutResult:
    with Processes(folder / "logs") as procs:
        run = Run(procs, folder, clip, viewers)
        try:
            first = MseClient(run.mse_url())
            run.spawn(first.run(procs))
            await until(first.first_picture.is_set, procs, run.tasks, "H.264 picture")
            await asyncio.sleep(WARMUP_S)
            start, end, one = await window(procs, run.tasks, seconds)
            bytes_one, fragments_one = first.bytes_between(start, end)
            elapsed_one = end - start
            others = []
            for _ in range(viewers - 1):
                viewer = MseClient(run.mse_url())
                run.spawn(viewer.run(procs))
                others.append(viewer)
                await asyncio.sleep(JOIN_EVERY_S)
            for viewer in others:
                await until(viewer.first_picture.is_set, procs, run.tasks, "H.264 picture for every viewer")
            await asyncio.sleep(WARMUP_S)
            start, end, many = await window(procs, run.tasks, seconds)
            got = [viewer.bytes_between(start, end) for viewer in [first, *others]]
            elapsed = end - start
        finally:
            await run.close()
    return FanoutResult(
        size=size, viewers=viewers, encoder_one=one["encoder"] / elapsed_one, encoder_many=many["encoder"] / elapsed,
        gateway_one=one["gateway"] / elapsed_one, gateway_many=many["gateway"] / elapsed, fragments_one=fragments_one,
        bytes_one=bytes_one / elapsed_one * 60, bytes_many=[n / elapsed * 60 for n, _ in got],
        fragments_many=[f for _, f in got], cold=first.to_first_picture or float("nan"),
        warm=[v.to_first_picture or float("nan") for v in others])


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def report_sizes(results: list[SizeResult], seconds: float) -> None:
    print(f"\nLive view bytes a minute, H.264 (WS /api/ws) against JPEG push (WS /webcam) as the baseline, same "
          f"{seconds:g} s window and frames; encoder CPU from /proc")
    print(f"{'size':>14} | {'JPEG/frame':>10} | {'JPEG a min':>10} | {'H.264 a min':>11} | {'H.264/JPEG':>10} | "
          f"{'PSNR mean/min':>13} | {'enc ms/frame':>12} | {'enc % core':>10} | {'idle ms/frame':>13} | "
          f"{'idle % core':>11}")
    for r in results:
        ratio = r.h264_per_min / r.jpeg_per_min
        psnr = f"{statistics.fmean(r.psnr):.1f} / {min(r.psnr):.1f}" if r.psnr else "-"
        print(f"{r.size!s:>14} | {r.jpeg_mean / 1024:7.1f} KB | {mb(r.jpeg_per_min):>10} | {mb(r.h264_per_min):>11} | "
              f"x{ratio:.3f} 1/{1 / ratio:<3.0f}| {psnr:>13} | {r.encoder_ms:12.2f} | "
              f"{100 * r.encoder_core:9.1f}% | {r.idle_ms:13.3f} | {100 * r.idle_core:10.1f}%")
    for r in results:
        print(f"  {r.size}: source {r.source_frames} frames in the window, JPEG viewer {r.jpeg_frames}, H.264 viewer "
              f"{r.h264_fragments} fragments, encoder {r.encoded} access units; PSNR over {len(r.psnr)} pictures "
              f"(every {PSNR_EVERY}th paired by ts, {r.bus_gaps} gaps on the bus); the viewer's MP4 decodes "
              f"{r.decoded[0]}/{r.decoded[1]} pictures; idle: {r.idle_encoded} frames encoded; gateway "
              f"{r.gateway_ms:.2f} ms/frame for both viewers; first picture {1000 * r.to_first_picture:.0f} ms (cold)")


def report_fanout(results: list[SizeResult], f: FanoutResult) -> None:
    print(f"\nOne encode for many: {f.viewers} H.264 viewers of one {f.size} camera against 1, same run")
    print(f"  encoder CPU : {100 * f.encoder_one:.1f}% of a core with 1 viewer, {100 * f.encoder_many:.1f}% with "
          f"{f.viewers} (x{f.encoder_many / f.encoder_one:.2f})")
    print(f"  gateway CPU : {100 * f.gateway_one:.1f}% with 1, {100 * f.gateway_many:.1f}% with {f.viewers} "
          f"(x{f.gateway_many / f.gateway_one:.2f})")
    print(f"  each viewer : {mb(f.bytes_one)} a minute alone ({f.fragments_one} fragments); with {f.viewers}: min "
          f"{mb(min(f.bytes_many))}, median {mb(statistics.median(f.bytes_many))}, max {mb(max(f.bytes_many))} a "
          f"minute; fragments min {min(f.fragments_many)}, max {max(f.fragments_many)}")
    colds = [r.to_first_picture for r in results] + [f.cold]
    print(f"Time to first picture (WebSocket opened -> init segment and first fragment): cold (track not running) "
          f"p50 {1000 * statistics.median(colds):.0f} ms over {len(colds)}; warm (joining {f.viewers - 1} viewers "
          f"already watching) p50 {1000 * percentile(f.warm, 0.5):.0f} ms, max {1000 * max(f.warm):.0f} ms")


async def main_async(args: argparse.Namespace, folder: Path) -> None:
    sizes = [Size.parse(spec) for spec in args.sizes.split(",") if spec.strip()]
    fanout_size = Size.parse(args.fanout_size) if args.viewers else None
    clips: dict[Size, Path] = {}
    for size in dict.fromkeys([*sizes, *([fanout_size] if fanout_size else [])]):
        clips[size] = make_clip(folder / f"{size}.avi", size.width, size.height, size.fps, CLIP_SECONDS)
    results = []
    for size in sizes:
        print(f"{size}: {args.seconds:g} s with both viewers, {args.idle:g} s with none", flush=True)
        results.append(await measure_size(size, clips[size], args.seconds, args.idle, folder / f"run-{size}"))
    report_sizes(results, args.seconds)
    if fanout_size is not None:
        print(f"{fanout_size}: 1 then {args.viewers} H.264 viewers, {args.fanout_seconds:g} s each", flush=True)
        fanout = await measure_fanout(fanout_size, clips[fanout_size], args.viewers, args.fanout_seconds,
                                      folder / "fanout")
        report_fanout(results, fanout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[-2:]))
    parser.add_argument("--sizes", default="640x480@10,1280x720@30,1920x1080@30", help="comma-separated WxH@FPS")
    parser.add_argument("--seconds", type=float, default=15.0, help="the window with both viewers, per size")
    parser.add_argument("--idle", type=float, default=4.0, help="the window with no H.264 viewer, per size")
    parser.add_argument("--viewers", type=int, default=20, help="H.264 viewers of one camera (0: skip that part)")
    parser.add_argument("--fanout-size", default="1280x720@30")
    parser.add_argument("--fanout-seconds", type=float, default=8.0, help="each window of the fan-out part")
    args = parser.parse_args()
    stop_cleanly_on_signals()
    with tempfile.TemporaryDirectory(prefix="camserver-h264-") as tmp:
        asyncio.run(main_async(args, Path(tmp)))


if __name__ == "__main__":
    main()
