"""A camera's JPEG frames to its H.264 track (pipeline.video.h264), encoded for real and decoded back.

What a viewer relies on: every message passes the bus's own decoder, the track starts with a key
frame that carries SPS and PPS, a key frame comes on request at the next frame and at least every
2 s whatever the rate, the pictures decode at the source's size and look like it, and a source that
changes size starts over with a key frame at the new size.
"""

from __future__ import annotations

import time

import av
import numpy as np
import pytest

from pipeline.protocol import Frame, Video
from pipeline.video.demo import DemoScene
from pipeline.video.h264 import CameraEncoder
from tests.support.detection import jpeg
from tests.support.media import decode_jpeg

T0 = 1_700_000_000.0


def demo_frames(count: int, fps: float, size: tuple[int, int] = (640, 480), first_seq: int = 0) -> list[Frame]:
    """Demo-scene JPEG frames at ``fps`` of capture time, the visitor in the picture."""
    scene = DemoScene(*size, seed=0)
    frames = []
    for n in range(first_seq, first_seq + count):
        t = 3.0 + n / fps  # the visitor walks through from 2 s on: the picture changes
        frames.append(Frame("cam0", n, T0 + t, *size, True, jpeg(scene.render(t, T0 + t))))
    return frames


def encode_all(encoder: CameraEncoder, frames: list[Frame]) -> list[Video]:
    return [video for frame in frames for video in encoder.encode(frame)]


def h264_pictures(videos: list[Video]) -> list[np.ndarray]:
    """The track's concatenated access units through FFmpeg's h264 decoder, as BGR pictures."""
    decoder = av.CodecContext.create("h264", "r")
    pictures = [picture for video in videos for picture in decoder.decode(av.Packet(video.data))]
    pictures += decoder.decode(None)
    return [picture.to_ndarray(format="bgr24") for picture in pictures]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / mse)


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    return demo_frames(40, fps=10)


def test_every_message_passes_the_bus_decoder_and_the_first_is_a_key_frame_with_config(frames):
    videos = encode_all(CameraEncoder("cam0"), frames)

    assert [Video.decode(video.encode()) for video in videos] == videos
    assert [video.seq for video in videos] == list(range(len(frames)))
    assert [video.ts for video in videos] == [frame.ts for frame in frames]
    first = videos[0]
    assert first.key and first.config and (first.width, first.height) == (640, 480)
    assert first.codec.startswith("avc1.42")  # Constrained Baseline: every browser decodes it
    assert all(not video.config for video in videos if not video.key)


def test_the_track_decodes_to_the_source_pictures(frames):
    started = time.perf_counter()
    videos = encode_all(CameraEncoder("cam0"), frames)
    per_frame_ms = (time.perf_counter() - started) / len(frames) * 1000

    pictures = h264_pictures(videos)

    assert len(pictures) == len(frames)
    assert all(picture.shape == (480, 640, 3) for picture in pictures)
    quality = [psnr(picture, decode_jpeg(frame.jpeg)) for picture, frame in zip(pictures, frames, strict=True)]
    bits = sum(len(video.data) for video in videos) * 8 / len(videos) * 10 / 1000
    print(f"\n640x480 demo at 10 fps: {per_frame_ms:.2f} ms a frame (JPEG decoding included), "
          f"PSNR min {min(quality):.1f} dB mean {np.mean(quality):.1f} dB, {bits:.0f} kbit/s")
    assert min(quality) >= 36


def test_a_requested_key_frame_is_the_next_frame(frames):
    encoder = CameraEncoder("cam0")
    encode_all(encoder, frames[:5])

    encoder.request_key()
    (asked,) = encoder.encode(frames[5])
    (after,) = encoder.encode(frames[6])

    assert asked.key and asked.config
    assert not after.key


@pytest.mark.parametrize("fps", [10, 30])
def test_a_key_frame_comes_at_least_every_two_seconds(fps):
    videos = encode_all(CameraEncoder("cam0"), demo_frames(round(7 * fps), fps=fps))

    keys = [video.ts for video in videos if video.key]
    gaps = np.diff([videos[0].ts, *keys, videos[-1].ts])
    assert keys[0] == videos[0].ts
    assert max(gaps) <= 2.0 + 1e-6
    assert len(keys) <= 5  # and not much more often than that: key frames cost


def test_a_size_change_starts_over_with_a_key_frame_at_the_new_size(frames):
    encoder = CameraEncoder("cam0")
    encode_all(encoder, frames[:5])

    smaller = encode_all(encoder, demo_frames(5, fps=10, size=(320, 240), first_seq=5))

    assert smaller[0].key and (smaller[0].width, smaller[0].height) == (320, 240)
    assert [video.seq for video in smaller] == list(range(5, 10))
    assert [Video.decode(video.encode()) for video in smaller] == smaller
    assert all(picture.shape == (240, 320, 3) for picture in h264_pictures(smaller))


def test_a_released_encoder_starts_again_with_a_key_frame(frames):
    encoder = CameraEncoder("cam0")
    encode_all(encoder, frames[:5])

    encoder.release()
    assert not encoder.active
    again = encode_all(encoder, frames[5:8])

    assert encoder.active
    assert again[0].key and again[0].seq == 5


def test_a_frame_that_does_not_decode_costs_that_frame_only(frames, caplog):
    encoder = CameraEncoder("cam0")
    encode_all(encoder, frames[:3])
    broken = Frame("cam0", 3, frames[3].ts, 640, 480, True, frames[3].jpeg[: len(frames[3].jpeg) // 2])

    assert encoder.encode(broken) == []
    assert "skipping frame 3" in caplog.text
    (next_one,) = encoder.encode(frames[4])
    assert next_one.seq == 3
