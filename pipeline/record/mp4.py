"""H.264 in fragmented MP4, written so that a crash loses at most the last second.

Browsers play H.264 in MP4 and not the MPEG-4 part 2 that OpenCV's wheels can encode, so video
goes through PyAV, whose wheels bundle FFmpeg with libx264. The file is *fragmented* MP4: a
header without sample tables, then self-contained fragments, one per keyframe. A keyframe is
forced every KEYFRAME_EVERY_S of capture time and the file is flushed and fsynced as each
fragment is written, so a kill -9 or a power cut leaves every complete fragment playable, which a
classic MP4 (whose index is written last) would not.

Presentation times come from each frame's capture ``ts`` in milliseconds, so a recording lasts
as long as the scene did, whatever frames were dropped on the way.

A JPEG already holds Y'CbCr planes, mostly 4:2:0 or 4:2:2, which is nearly what H.264 takes, so
they are handed over as they are and made 4:2:0 in one pass (pipeline/video/yuv.py); going through
BGR as before cost a colour conversion each way and a copy, more than a quarter of a recorded frame
at 1080p. The matrix stays JPEG's BT.601 and the file says so, because a player that is not told
assumes BT.709 for HD and shifts the hues.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
from av.video.frame import PictureType
from av.video.reformatter import ColorRange

from pipeline.video.yuv import BT601, JpegPictures

KEYFRAME_EVERY_S = 1.0
TIME_BASE = Fraction(1, 1000)
# Chosen by bench/recorder.py's preset table. ultrafast is half the CPU of veryfast (the old default)
# at every size; CABAC and the deblocking filter, which ultrafast leaves out, cost it little CPU and
# take about a quarter off the file, and deblocking keeps block edges out of the picture. On the
# noisy demo scene the result is smaller than veryfast's files from 720p up (a tenth larger at
# 768x576) and no worse in PSNR: veryfast's adaptive quantisation spends its bits on sensor noise.
# zerolatency: no lookahead or B-frames, so a frame leaves the encoder as it goes in and a fragment
# on disk is never more than KEYFRAME_EVERY_S behind the camera.
ENCODER_OPTIONS = {"preset": "ultrafast", "x264-params": "cabac=1:deblock=0,0", "crf": "23", "tune": "zerolatency"}
FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}


class Mp4Writer:
    """Encodes JPEG frames into one fragmented H.264 MP4 file at ``path``."""

    def __init__(self, path: Path, width: int, height: int, nominal_fps: float = 10.0,
                 encoder_options: Mapping[str, str] = ENCODER_OPTIONS) -> None:
        self.path = path
        # H.264 in yuv420p needs even sizes; an odd one (from a third-party publisher) loses a line.
        width, height = width - width % 2, height - height % 2
        self.size = (width, height)
        self.frames = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self._last_pts = -1
        self._last_key_ts = float("-inf")
        self._file: BinaryIO = path.open("wb")
        self._container = av.open(self._file, "w", format="mp4", options=FRAGMENTED)
        self._stream = self._container.add_stream("libx264", rate=round(nominal_fps))
        self._stream.width, self._stream.height = width, height
        # Browsers play 4:2:0 only; limited range is what every player gets right.
        self._stream.pix_fmt = "yuv420p"
        encoder = self._stream.codec_context
        encoder.time_base = TIME_BASE
        encoder.color_range = ColorRange.MPEG
        encoder.colorspace = BT601
        # One core per stage: the other belongs to capture, detector and gateway.
        encoder.thread_count = 1
        self._stream.options = dict(encoder_options)
        self._pictures = JpegPictures()

    def write(self, jpeg: bytes, ts: float) -> None:
        """Add one frame captured at ``ts``; ValueError for bytes that are not a JPEG."""
        frame = self._pictures.to_420(self._pictures.decode(jpeg), self.size)
        if self.first_ts is None:
            self.first_ts = ts
        # Milliseconds since the first frame; never repeated, because a muxer refuses equal times.
        frame.pts = max(round((ts - self.first_ts) * 1000), self._last_pts + 1)
        frame.time_base = TIME_BASE
        self._last_pts = frame.pts
        # Every decoded JPEG says it is an I picture, and x264 obeys: only a due keyframe may say so.
        frame.pict_type = PictureType.NONE
        if ts - self._last_key_ts >= KEYFRAME_EVERY_S:
            frame.pict_type = PictureType.I
            self._last_key_ts = ts
        self._mux(self._stream.encode(frame))
        self.frames += 1
        self.last_ts = ts

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the end of the last, as a player will show it."""
        if self.first_ts is None or self.last_ts is None:
            return 0.0
        return self.last_ts - self.first_ts + self._frame_interval()

    def close(self) -> None:
        """Flush the encoder, finish the file and make it durable.

        A failed write, such as ENOSPC on a full disk, raises OSError: PyAV re-raises the one the
        file object raised. The file is closed all the same, because a deleted file whose handle is
        still open keeps its space taken.
        """
        try:
            self._mux(self._stream.encode(None))
            self._container.close()
            self._sync()
        except BaseException:
            self._release()
            raise
        self._file.close()

    def abort(self) -> None:
        """Stop writing and delete the file: nothing of it is worth keeping.

        Never raises: it is how a failed write is cleaned up, and on a full disk closing the
        container and flushing the file fail too. The file goes whatever failed, or it would keep
        the disk full.
        """
        self._release()
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)

    def _frame_interval(self) -> float:
        if self.frames < 2 or self.first_ts is None or self.last_ts is None:
            return 0.1
        return (self.last_ts - self.first_ts) / (self.frames - 1)

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self._container.mux(packet)
            if packet.is_keyframe:
                # A keyframe makes the muxer write out the fragment before it: make that durable.
                self._sync()

    def _release(self) -> None:
        """Close container and file, whatever state a failed write left them in; never raises.

        Each step on its own: a container that cannot write its end must not keep the file open.
        """
        with contextlib.suppress(Exception):
            self._container.close()
        with contextlib.suppress(Exception):
            self._file.close()  # closes the descriptor even when the flush before it fails

    def _sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())


def probe(path: Path) -> tuple[float, int, str] | None:
    """(duration in seconds, frames, codec) of what a player can decode in ``path``, or None."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            first = last = None
            frames = 0
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                seconds = float(packet.pts * packet.time_base)
                first = seconds if first is None else min(first, seconds)
                last = seconds if last is None else max(last, seconds)
                frames += 1
            codec = stream.codec_context.name
    except (av.FFmpegError, IndexError, OSError):
        return None
    if frames == 0 or first is None or last is None:
        return None
    interval = (last - first) / (frames - 1) if frames > 1 else 0.1
    return last - first + interval, frames, codec


def salvage(part: Path, target: Path) -> tuple[float, int] | None:
    """Copy the playable frames of a cut-short ``part`` file into ``target``.

    Returns (duration, frames) of what was saved, or None when nothing in it is playable. Packets
    are copied, not re-encoded, up to the first one that does not decode: a crash while a fragment
    was being written leaves its last packet cut off, and a player would stop there too.
    """
    frames = 0
    try:
        with av.open(str(part)) as source, target.open("wb") as out_file:
            video = source.streams.video[0]
            decoder = video.codec_context
            with av.open(out_file, "w", format="mp4", options=FRAGMENTED) as out:
                stream = out.add_stream_from_template(video)
                try:
                    for packet in source.demux(video):
                        if packet.dts is None:
                            continue
                        decoder.decode(packet)
                        packet.stream = stream
                        out.mux(packet)
                        frames += 1
                except av.FFmpegError:
                    pass  # the cut-off end of the file: keep what came before it
            out_file.flush()
            os.fsync(out_file.fileno())
    except (av.FFmpegError, IndexError, OSError):
        target.unlink(missing_ok=True)
        return None
    info = probe(target) if frames else None
    if info is None:
        target.unlink(missing_ok=True)
        return None
    return info[0], info[1]
