"""Recorder cost per frame: the JPEG-to-YUV path against the BGR path it replaced, and the x264 preset table.

Every writer gets the same JPEG frames of the demo scene (a visitor walking through, sensor noise),
encoded at quality 80 as capture does, and is timed in CPU time of this process (one thread: the
recorder has one core), the fastest of --repeats runs, so other load on the machine moves the
figures less than wall time would:
  - old path, the baseline measured in this run: cv2.imdecode to BGR, then PyAV converts BGR to
    yuv420p and libx264 veryfast encodes it (what pipeline.record.mp4 did before);
  - new path: pipeline.record.mp4.Mp4Writer, FFmpeg's mjpeg decoder hands over the JPEG's own Y'CbCr
    planes, one swscale pass makes them limited-range 4:2:0, libx264 with its default options
    (ultrafast with CABAC and deblocking); also fed 4:2:2 JPEGs, which most USB webcams send;
  - the seed's cv2 mp4v writer (MPEG-4 part 2, which no browser plays), for scale.
Both H.264 paths write fragmented MP4 fsynced per fragment. Then the recorder stage itself, as a
real process fed the largest size at 30 fps over ZeroMQ and told to record: its CPU per frame
(user + system: receiving, decoding messages and writing) and whether every frame sent is in the file,
which is what "records in real time on one core" means. Then the preset table: the new path at
each x264 preset (crf 23, zerolatency), CPU ms/frame, kB/s of video and PSNR against the source
JPEGs (every 5th frame), CPU and size each as a ratio to the writer's default options.

    python bench/recorder.py                       # 768x576, 1280x720, 1920x1080; 150 frames each
    python bench/recorder.py --sizes 1920x1080 --frames 300 --presets veryfast,ultrafast
    python bench/recorder.py --presets '' --stage-seconds 0   # old path against new path only
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import cv2
import numpy as np
import zmq
from common import Processes, clean_env, cpu_seconds, free_port, stop_cleanly_on_signals

from pipeline.bus.sockets import publisher
from pipeline.protocol import Event, Frame
from pipeline.record.mp4 import ENCODER_OPTIONS, FRAGMENTED, KEYFRAME_EVERY_S, Mp4Writer, probe
from pipeline.video.demo import DemoScene

FPS = 30
T0 = 1.7e9
PRESETS = "ultrafast,superfast,veryfast,faster"
DEFAULT = "default"  # the writer's own options, a row of the table


def demo_jpegs(width: int, height: int, count: int, sampling: int) -> list[bytes]:
    """``count`` frames of the demo scene at FPS, as capture encodes them (quality 80)."""
    scene = DemoScene(width, height, seed=0)
    params = [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling]
    return [cv2.imencode(".jpg", scene.render(3 + i / FPS, T0 + i / FPS), params)[1].tobytes() for i in range(count)]


def timed(write: Callable[[], int], frames: int, repeats: int) -> tuple[float, float]:
    """(CPU ms per frame, kB per second of video) of ``write``, which returns the file's size.

    The fastest of ``repeats`` runs: other work on the machine only ever adds time.
    """
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        size = write()
        best = min(best, time.process_time() - started)
    return 1000 * best / frames, size / 1000 / (frames / FPS)


def old_path(jpegs: list[bytes], width: int, height: int, path: Path) -> int:
    """What Mp4Writer did before: decode to BGR, let PyAV convert to yuv420p, x264 veryfast."""
    with path.open("wb") as file, av.open(file, "w", format="mp4", options=FRAGMENTED) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.codec_context.thread_count = 1
        stream.options = {"preset": "veryfast", "crf": "23", "tune": "zerolatency"}
        last_key = float("-inf")
        for i, jpeg in enumerate(jpegs):
            frame = av.VideoFrame.from_ndarray(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), "bgr24")
            frame.pts, frame.time_base = round(i * 1000 / FPS), Fraction(1, 1000)
            if i / FPS - last_key >= KEYFRAME_EVERY_S:
                frame.pict_type, last_key = av.video.frame.PictureType.I, i / FPS
            for packet in stream.encode(frame):
                container.mux(packet)
                if packet.is_keyframe:
                    file.flush()
                    os.fsync(file.fileno())
        for packet in stream.encode(None):
            container.mux(packet)
    return path.stat().st_size


def new_path(jpegs: list[bytes], width: int, height: int, path: Path,
             options: Mapping[str, str] = ENCODER_OPTIONS) -> int:
    writer = Mp4Writer(path, width, height, FPS, options)
    for i, jpeg in enumerate(jpegs):
        writer.write(jpeg, T0 + i / FPS)
    writer.close()
    info = probe(path)
    if info is None or info[1] != len(jpegs):
        raise SystemExit(f"{path.name} does not play back all {len(jpegs)} frames: {info}")
    return path.stat().st_size


def seed_mp4v(jpegs: list[bytes], width: int, height: int, path: Path) -> int:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (width, height))
    for jpeg in jpegs:
        writer.write(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
    writer.release()
    return path.stat().st_size


def compare_paths(width: int, height: int, frames: int, repeats: int, folder: Path) -> None:
    jpegs = demo_jpegs(width, height, frames, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420)
    jpegs_422 = demo_jpegs(width, height, frames, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422)
    runs = [("old path: cv2 BGR + x264 veryfast (baseline)", old_path, jpegs),
            ("new path: JPEG Y'CbCr + x264 default", new_path, jpegs),
            ("new path, 4:2:2 JPEGs (USB webcams)", new_path, jpegs_422),
            ("seed: cv2 mp4v, no browser plays it", seed_mp4v, jpegs)]
    print(f"{width}x{height}, {frames} frames at {FPS} fps, CPU ms per frame on one core")
    results = []
    for n, (label, write, source) in enumerate(runs):
        path = folder / f"path{n}.mp4"
        ms, kbs = timed(partial(write, source, width, height, path), frames, repeats)
        results.append((label, ms, kbs, psnr(path, source)))
    old_ms, old_kbs = results[0][1:3]
    for label, ms, kbs, quality in results:
        print(f"  {label:46s} {ms:6.2f} ms {kbs:5.0f} kB/s {quality:4.1f} dB  x{ms / old_ms:.2f} of old CPU  "
              f"one core sustains {1000 / ms:3.0f} fps")
    new_ms, new_kbs = results[1][1:3]
    keeps_up = "keeps up with" if 1000 / new_ms >= FPS else "is too slow for"
    print(f"  new/old: CPU x{new_ms / old_ms:.2f}, size x{new_kbs / old_kbs:.2f}; the new path on one core {keeps_up} "
          f"{width}x{height}@{FPS} (4:2:2: {'keeps up' if 1000 / results[2][1] >= FPS else 'too slow'})")


def paced(frames: zmq.Socket, jpegs: list[bytes], width: int, height: int, seqs: range, t0: float) -> None:
    """Publish frame ``seq`` of the camera at t0 + seq / FPS, as capture would, sleeping in between."""
    for seq in seqs:
        ts = t0 + seq / FPS
        time.sleep(max(0.0, ts - time.time()))
        frames.send_multipart(Frame("cam0", seq, ts, width, height, False, jpegs[seq % len(jpegs)]).encode())


def recorder_stage(width: int, height: int, seconds: float, folder: Path) -> None:
    """The real recorder process recording ``seconds`` of WxH@FPS: CPU per frame, and every frame kept?"""
    jpegs = demo_jpegs(width, height, FPS * 3, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420)
    frames_at, events_at = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    env = clean_env(CAMSERVER_FRAMES=frames_at, CAMSERVER_EVENTS=events_at, CAMSERVER_LOG_LEVEL="WARNING",
                    CAMSERVER_RECORDER_EVENTS=f"tcp://127.0.0.1:{free_port()}",
                    CAMSERVER_RECORDINGS=str(folder / "recordings"), CAMSERVER_PRE_SECONDS="0",
                    CAMSERVER_POST_SECONDS="0")
    count = round(seconds * FPS)
    with (zmq.Context() as ctx, publisher(ctx, [frames_at], count) as frames,
          publisher(ctx, [events_at], 100) as events, Processes(folder / "logs") as procs):
        procs.stage("recorder", env)
        t0 = time.time() + 2.0  # the recorder's start-up and subscription; its first frames are not recorded
        paced(frames, jpegs, width, height, range(FPS), t0)
        procs.check()
        events.send_multipart(Event("cam0", FPS, t0 + 1.0, "motion_start", {}).encode())
        started = cpu_seconds(procs.popen["recorder"].pid)
        paced(frames, jpegs, width, height, range(FPS, FPS + count), t0)
        cpu = cpu_seconds(procs.popen["recorder"].pid) - started
        last = FPS + count - 1
        events.send_multipart(Event("cam0", last, t0 + last / FPS, "motion_end", {"keep": True}).encode())
        paced(frames, jpegs, width, height, range(last + 1, last + 1 + FPS // 2), t0)
        procs.check()
    videos = list((folder / "recordings").glob("*.mp4"))
    info = probe(videos[0]) if len(videos) == 1 else None
    kept = info[1] if info else 0
    # The file may hold a frame more than were sent while recording: the one that crossed motion_end on the way.
    print(f"\nrecorder stage, a real process recording {width}x{height}@{FPS} for {seconds:g} s: "
          f"{1000 * cpu / count:.2f} CPU ms/frame, {100 * cpu / seconds:.0f}% of one core; {kept} frames in the "
          f"file of {count} sent while recording: {'keeps up' if kept >= count else 'does NOT keep up'}")


def psnr(path: Path, jpegs: list[bytes]) -> float:
    """PSNR in dB of every 5th decoded frame against its source JPEG decoded by cv2 (both BGR)."""
    errors = []
    with av.open(str(path)) as container:
        for i, (frame, jpeg) in enumerate(zip(container.decode(video=0), jpegs, strict=True)):
            if i % 5 == 0:
                source = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                errors.append(np.mean((frame.to_ndarray(format="bgr24").astype(np.float32) - source) ** 2))
    return float(10 * np.log10(255**2 / np.mean(errors)))


def preset_options(preset: str) -> Mapping[str, str]:
    if preset == DEFAULT:
        return ENCODER_OPTIONS
    return {"preset": preset, "crf": ENCODER_OPTIONS["crf"], "tune": ENCODER_OPTIONS["tune"]}


def preset_table(sizes: list[tuple[int, int]], presets: list[str], frames: int, repeats: int,
                 folder: Path) -> None:
    default = ", ".join(f"{key} {value}" for key, value in ENCODER_OPTIONS.items())
    print(f"\nx264 preset table, new path, 1 thread: CPU ms/frame, kB/s, PSNR, then CPU and size as a ratio "
          f"to the default ({default})")
    results: dict[tuple[str, int], tuple[float, float, float]] = {}
    for column, (width, height) in enumerate(sizes):
        jpegs = demo_jpegs(width, height, frames, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420)
        for preset in dict.fromkeys([DEFAULT, *presets]):
            path = folder / f"{preset}.mp4"
            ms, kbs = timed(partial(new_path, jpegs, width, height, path, preset_options(preset)), frames, repeats)
            results[preset, column] = ms, kbs, psnr(path, jpegs)
    print(f"  {'preset':10s}" + "".join(f"{f'{w}x{h}':>40s}" for w, h in sizes))
    for preset in dict.fromkeys([DEFAULT, *presets]):
        cells = []
        for column in range(len(sizes)):
            ms, kbs, quality = results[preset, column]
            base_ms, base_kbs, _ = results[DEFAULT, column]
            cells.append(f"{ms:6.2f} ms {kbs:5.0f} kB/s {quality:4.1f} dB x{ms / base_ms:.2f} x{kbs / base_kbs:.2f}")
        print(f"  {preset:10s}" + "".join(f"{cell:>40s}" for cell in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="768x576,1280x720,1920x1080")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each writer; the fastest counts")
    parser.add_argument("--presets", default=PRESETS, help="comma-separated x264 presets for the table; '' skips it")
    parser.add_argument("--stage-seconds", type=float, default=8.0,
                        help="seconds the recorder stage records at the largest size; 0 skips it")
    args = parser.parse_args()
    stop_cleanly_on_signals()
    cv2.setNumThreads(1)  # the recorder runs on one core
    sizes = [(int(w), int(h)) for w, h in (size.split("x") for size in args.sizes.split(","))]
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in sizes:
            compare_paths(width, height, args.frames, args.repeats, Path(tmp))
        if args.stage_seconds:
            recorder_stage(*max(sizes, key=lambda size: size[0] * size[1]), args.stage_seconds, Path(tmp))
        if args.presets:
            preset_table(sizes, args.presets.split(","), args.frames, args.repeats, Path(tmp))


if __name__ == "__main__":
    main()
