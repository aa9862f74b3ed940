"""The MP4 writer: browser-playable H.264 whose timing follows capture time, and that survives bad input."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from pipeline.record.mp4 import KEYFRAME_EVERY_S, Mp4Writer, probe, salvage
from pipeline.video.demo import DemoScene
from pipeline.video.yuv import BT601
from tests.support.media import without_huffman_tables
from tests.support.recordings import fill, small_tmpfs

W, H = 320, 240
T0 = 1_700_000_000.0
SCENE = DemoScene(W, H, seed=11)


def picture(t: float, size: tuple[int, int] = (W, H)) -> np.ndarray:
    image = SCENE.render(t, T0 + t)
    return image if size == (W, H) else cv2.resize(image, size)


def jpeg(image: np.ndarray, sampling: int = cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420) -> bytes:
    """As capture encodes (quality 80); a grey image gives a greyscale JPEG."""
    params = [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling]
    return cv2.imencode(".jpg", image, params)[1].tobytes()


def as_cv2_sees_it(data: bytes) -> np.ndarray:
    """The JPEG as cv2 decodes it to BGR: the reference a recorded frame is compared with."""
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def write(path: Path, times: list[float], fps: float = 10.0) -> Mp4Writer:
    """A closed writer that got one demo frame at each of ``times`` (seconds after T0)."""
    writer = Mp4Writer(path, W, H, nominal_fps=fps)
    for t in times:
        writer.write(jpeg(picture(t)), T0 + t)
    writer.close()
    return writer


def packets(path: Path) -> list[tuple[float, bool]]:
    """(presentation time in s, is keyframe) of every video packet, in file order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(float(p.pts * p.time_base), p.is_keyframe) for p in container.demux(stream) if p.pts is not None]


def test_the_file_is_h264_yuv420p_at_the_writer_size_and_decodes_every_frame(tmp_path: Path) -> None:
    """Browsers play H.264 4:2:0 in MP4; anything else would be a file nobody can watch."""
    path = tmp_path / "a.mp4"
    write(path, [i / 10 for i in range(20)])
    with av.open(str(path)) as container:
        assert "mp4" in container.format.name
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        # Video range and JPEG's BT.601 matrix, said in the file so that no player guesses BT.709 for HD.
        assert stream.codec_context.color_range == av.video.reformatter.ColorRange.MPEG
        assert stream.codec_context.colorspace == BT601
        assert (stream.codec_context.width, stream.codec_context.height) == (W, H)
        decoded = [frame.to_ndarray(format="bgr24") for frame in container.decode(stream)]
    assert len(decoded) == 20
    assert all(image.shape == (H, W, 3) for image in decoded)
    # The pictures are the ones written (lossy, but close), in order.
    for i in (0, 10, 19):
        error = np.abs(decoded[i].astype(int) - picture(i / 10).astype(int)).mean()
        assert error < 8, f"frame {i} differs by {error:.1f} on average"


# Flat patches, each 32x32 so that no 8x8 block or chroma sample straddles two: saturated primaries and
# secondaries, the ends of the range (where a range mix-up clips or lifts), greys, and skin tones.
PATCH = 32
PATCH_COLOURS = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255), (255, 0, 255), (255, 255, 0),
                 (0, 0, 0), (255, 255, 255), (16, 16, 16), (235, 235, 235), (128, 128, 128), (64, 64, 64),
                 (192, 192, 192), (90, 120, 200), (60, 90, 160), (30, 60, 120), (0, 0, 128), (0, 128, 0),
                 (128, 0, 0), (40, 200, 120), (200, 60, 20), (20, 140, 230), (150, 40, 170), (100, 180, 90)]


def colour_chart(columns: int = 6) -> np.ndarray:
    rows = -(-len(PATCH_COLOURS) // columns)
    chart = np.zeros((rows * PATCH, columns * PATCH, 3), np.uint8)
    for i, colour in enumerate(PATCH_COLOURS):
        y, x = divmod(i, columns)
        chart[y * PATCH:(y + 1) * PATCH, x * PATCH:(x + 1) * PATCH] = colour
    return chart


def patch_means(image: np.ndarray) -> np.ndarray:
    """Mean BGR of the middle of each patch, away from the edges that coding blurs."""
    inner = slice(PATCH // 4, PATCH - PATCH // 4)
    return np.array([image[y * PATCH:(y + 1) * PATCH, x * PATCH:(x + 1) * PATCH][inner, inner].reshape(-1, 3).mean(0)
                     for y in range(image.shape[0] // PATCH) for x in range(image.shape[1] // PATCH)])


def record(path: Path, sources: list[bytes]) -> list[np.ndarray]:
    """Record ``sources`` a tenth of a second apart; the file's frames as BGR."""
    writer = Mp4Writer(path, W, H)
    for i, source in enumerate(sources):
        writer.write(source, T0 + i / 10)
    writer.close()
    return decoded_bgr(path)


def decoded_bgr(path: Path) -> list[np.ndarray]:
    """Every frame as a player shows it: PyAV converts with the range and matrix the file states."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


SAMPLINGS = {"4:2:0": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, "4:2:2": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
             "4:4:4": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444}


@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_colours_come_out_as_the_jpeg_shows_them(tmp_path: Path, sampling: str) -> None:
    """Every patch of a colour chart keeps its colour within a few levels, whatever the JPEG's chroma sampling.

    A full-range picture stored as video range, or BT.601 read as BT.709, moves some of them by tens of levels.
    """
    chart = colour_chart()
    source = jpeg(chart, SAMPLINGS[sampling])
    height, width = chart.shape[:2]
    path = tmp_path / "chart.mp4"
    writer = Mp4Writer(path, width, height)
    for i in range(5):
        writer.write(source, T0 + i / 10)
    writer.close()
    assert probe(path) == pytest.approx((0.5, 5, "h264"))
    frames = decoded_bgr(path)
    assert len(frames) == 5 and frames[-1].shape == chart.shape
    error = np.abs(patch_means(frames[-1]) - patch_means(as_cv2_sees_it(source)))
    assert error.max() < 6, f"patch {error.max(1).argmax()} is off by {error.max():.1f} levels"


@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_a_camera_scene_is_recorded_as_the_jpegs_show_it(tmp_path: Path, sampling: str) -> None:
    """The demo scene with its noise, as 4:2:0, 4:2:2 (most USB webcams) or 4:4:4 JPEGs: plays, right size, close."""
    sources = [jpeg(picture(i / 10), SAMPLINGS[sampling]) for i in range(12)]
    path = tmp_path / "scene.mp4"
    frames = record(path, sources)
    assert probe(path) == pytest.approx((1.2, 12, "h264"))
    assert [frame.shape for frame in frames] == [(H, W, 3)] * 12
    for frame, source in zip(frames, sources, strict=True):
        error = np.abs(frame.astype(int) - as_cv2_sees_it(source).astype(int)).mean()
        assert error < 4, f"a frame differs from its JPEG by {error:.1f} levels on average"


def test_a_greyscale_jpeg_is_recorded_grey(tmp_path: Path) -> None:
    """A greyscale JPEG (a night-mode camera) has no chroma: the video gets neutral chroma, not green or pink."""
    grey = cv2.cvtColor(picture(0.0), cv2.COLOR_BGR2GRAY)
    ramp = np.tile(np.linspace(0, 255, W).astype(np.uint8), (H, 1))
    sources = [jpeg(grey), jpeg(ramp), jpeg(grey)]
    path = tmp_path / "grey.mp4"
    frames = record(path, sources)
    assert probe(path) == pytest.approx((0.3, 3, "h264"))
    for frame, source in zip(frames, sources, strict=True):
        expected = as_cv2_sees_it(source).astype(int)
        assert np.abs(frame.astype(int) - expected).mean() < 2.5
        blue, green, red = (frame[..., c].astype(int) for c in range(3))
        assert np.abs(blue - green).mean() < 1.5 and np.abs(red - green).mean() < 1.5
    # The ramp keeps its ends: black stays black and white white, not lifted or clipped by a range mix-up.
    assert frames[1][:, :8].mean() < 6 and frames[1][:, -8:].mean() > 249


WEBCAM_QUIRKS = {
    "no Huffman tables": lambda image: without_huffman_tables(jpeg(image)),
    "zero padding after the end": lambda image: jpeg(image) + bytes(300),
    "restart markers": lambda image: cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_RST_INTERVAL, 4])[1].tobytes(),
    "progressive": lambda image: cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes(),
}


@pytest.mark.parametrize("quirk", WEBCAM_QUIRKS)
def test_jpegs_as_cameras_make_them_are_recorded(tmp_path: Path, quirk: str) -> None:
    sources = [WEBCAM_QUIRKS[quirk](picture(i / 10)) for i in range(3)]
    frames = record(tmp_path / "quirk.mp4", sources)
    assert len(frames) == 3
    for frame, i in zip(frames, range(3), strict=True):
        assert np.abs(frame.astype(int) - picture(i / 10).astype(int)).mean() < 4


def test_an_odd_size_loses_a_line_and_a_column(tmp_path: Path) -> None:
    """H.264 4:2:0 needs even sizes: a 161x121 camera is recorded at 160x120."""
    path = tmp_path / "odd.mp4"
    writer = Mp4Writer(path, 161, 121)
    for i in range(3):
        writer.write(jpeg(picture(i / 10, (161, 121))), T0 + i / 10)
    writer.close()
    assert [frame.shape for frame in decoded_bgr(path)] == [(120, 160, 3)] * 3


def test_duration_follows_capture_time_not_the_frame_count(tmp_path: Path) -> None:
    """30 frames at 10 fps, 2 s with no frame at all, 10 more frames: 6 s, not the 4 s of 40 frames."""
    path = tmp_path / "gap.mp4"
    times = [i / 10 for i in range(30)] + [5.0 + i / 10 for i in range(10)]
    writer = write(path, times)

    info = probe(path)
    assert info is not None
    duration, frames, codec = info
    assert (frames, codec) == (40, "h264")
    assert duration == pytest.approx(3.0 + 2.0 + 1.0, rel=0.05)
    assert writer.duration == pytest.approx(3.0 + 2.0 + 1.0, rel=0.05)
    assert writer.frames == 40 and writer.first_ts == T0 and writer.last_ts == T0 + 5.9
    # Each frame is shown at its own capture time: the first after the gap at 5.0 s.
    shown = sorted(t for t, _ in packets(path))
    assert shown[29] == pytest.approx(2.9, abs=0.002)
    assert shown[30] == pytest.approx(5.0, abs=0.002)


def test_uneven_frame_spacing_keeps_each_frame_at_its_capture_time(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    times = np.cumsum(rng.uniform(0.03, 0.3, 25))
    times = [float(t - times[0]) for t in times]
    path = tmp_path / "jitter.mp4"
    write(path, times)
    shown = sorted(t for t, _ in packets(path))
    assert shown == pytest.approx(times, abs=0.002)


def test_a_keyframe_about_every_second_of_capture_time(tmp_path: Path) -> None:
    """Keyframes bound what a crash loses; too many would waste disk, too few lose more."""
    path = tmp_path / "keys.mp4"
    write(path, [i / 25 for i in range(100)], fps=25)  # 4 s at 25 fps
    found = packets(path)
    keys = [t for t, key in found if key]
    assert found[0][1], "the file must start with a keyframe"
    assert len(keys) == 4
    assert np.diff(keys) == pytest.approx([KEYFRAME_EVERY_S] * 3, abs=0.05)


def test_keyframes_follow_capture_time_across_a_gap_and_a_low_frame_rate(tmp_path: Path) -> None:
    """At 2 fps a keyframe count per frame would be far too sparse in time; after a gap a new one is due at once."""
    path = tmp_path / "slow.mp4"
    times = [i / 2 for i in range(8)] + [10.0, 10.5, 11.0]  # 0 .. 3.5 s, then a 6.5 s gap
    write(path, times, fps=2)
    keys = [t for t, key in packets(path) if key]
    assert keys == pytest.approx([0.0, 1.0, 2.0, 3.0, 10.0, 11.0], abs=0.002)


def test_a_frame_of_another_size_is_scaled_to_the_writer_size(tmp_path: Path) -> None:
    path = tmp_path / "sizes.mp4"
    writer = Mp4Writer(path, W, H)
    writer.write(jpeg(picture(0.0)), T0)
    writer.write(jpeg(picture(0.1, (640, 480))), T0 + 0.1)
    writer.write(jpeg(picture(0.2, (160, 90))), T0 + 0.2)
    writer.write(jpeg(picture(0.3)), T0 + 0.3)
    writer.close()
    assert writer.frames == 4
    with av.open(str(path)) as container:
        sizes = [(frame.width, frame.height) for frame in container.decode(video=0)]
    assert sizes == [(W, H)] * 4


@pytest.mark.parametrize("payload", [b"not a jpeg", b"\xff\xd8\xff\xe0 truncated", bytes(1000)])
def test_bytes_that_are_not_a_jpeg_raise_value_error_and_the_writer_goes_on(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "bad.mp4"
    writer = Mp4Writer(path, W, H)
    writer.write(jpeg(picture(0.0)), T0)
    with pytest.raises(ValueError):
        writer.write(payload, T0 + 0.1)
    for i in range(2, 6):
        writer.write(jpeg(picture(i / 10)), T0 + i / 10)
    writer.close()
    assert writer.frames == 5
    info = probe(path)
    assert info is not None
    assert info[1] == 5
    assert info[0] == pytest.approx(0.6, abs=0.05)  # 0.0, then 0.2 .. 0.5 and one frame interval


@pytest.mark.parametrize("cut", ["before the picture data", "in the middle"])
def test_a_jpeg_cut_short_raises_value_error_and_the_next_one_is_recorded(tmp_path: Path, cut: str) -> None:
    """A dropped connection cuts a JPEG short: its header is intact, the picture is not, and it is not recorded."""
    whole = jpeg(picture(0.1))
    end = whole.index(b"\xff\xda") if cut == "before the picture data" else len(whole) // 2
    path = tmp_path / "cut.mp4"
    writer = Mp4Writer(path, W, H)
    writer.write(jpeg(picture(0.0)), T0)
    with pytest.raises(ValueError):
        writer.write(whole[:end], T0 + 0.1)
    writer.write(whole, T0 + 0.2)
    writer.close()
    assert writer.frames == 2
    assert sorted(t for t, _ in packets(path)) == pytest.approx([0.0, 0.2], abs=0.002)


def test_a_bad_first_frame_does_not_set_the_start_time(tmp_path: Path) -> None:
    """The first good frame is time zero: a rejected one before it must not leave a blank lead-in."""
    path = tmp_path / "late.mp4"
    writer = Mp4Writer(path, W, H)
    with pytest.raises(ValueError):
        writer.write(b"garbage", T0)
    for i in range(5, 10):
        writer.write(jpeg(picture(i / 10)), T0 + i / 10)
    writer.close()
    assert writer.first_ts == T0 + 0.5
    shown = sorted(t for t, _ in packets(path))
    assert shown[0] == pytest.approx(0.0, abs=0.002)


def test_empty_bytes_raise_value_error(tmp_path: Path) -> None:
    writer = Mp4Writer(tmp_path / "empty.mp4", W, H)
    try:
        with pytest.raises(ValueError):
            writer.write(b"", T0)
    finally:
        writer.abort()


def test_equal_timestamps_do_not_break_the_file(tmp_path: Path) -> None:
    """Two frames with the same ts (a coarse camera clock): the muxer refuses equal times, the writer must not."""
    path = tmp_path / "same.mp4"
    write(path, [0.0, 0.1, 0.1, 0.2, 0.3])
    found = sorted(t for t, _ in packets(path))
    assert len(found) == 5
    assert len(set(found)) == 5


def test_abort_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / ".x.mp4.part"
    writer = Mp4Writer(path, W, H)
    for i in range(15):
        writer.write(jpeg(picture(i / 10)), T0 + i / 10)
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_abort_before_any_frame_leaves_no_file(tmp_path: Path) -> None:
    Mp4Writer(tmp_path / "nothing.mp4", W, H).abort()
    assert list(tmp_path.iterdir()) == []


# --- a full disk ---------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk") as disk:
        yield disk


def used_bytes(disk: Path) -> int:
    st = os.statvfs(disk)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def test_on_a_full_disk_write_raises_oserror_and_abort_still_deletes_the_file(small_disk: Path) -> None:
    """Small frames, so the failing write is the flush of a fragment that stays buffered: abort flushes it again."""
    size = (64, 48)
    filler = fill(small_disk, leave=32 * 1024)
    writer = Mp4Writer(small_disk / ".x.mp4.part", *size)
    with pytest.raises(OSError) as failed:  # on whichever frame fills the disk
        for i in range(100_000):
            writer.write(jpeg(picture(i / 10, size)), T0 + i / 10)
    assert failed.value.errno == errno.ENOSPC and writer.frames > 10

    writer.abort()

    assert [p.name for p in small_disk.iterdir()] == ["filler"]
    assert used_bytes(small_disk) <= filler + 4096  # the space is free again, not held by an open handle
    (small_disk / "filler").unlink()
    assert used_bytes(small_disk) == 0


def test_close_on_a_full_disk_raises_oserror_and_lets_go_of_the_file(small_disk: Path) -> None:
    """Frames that fit, then the disk fills: finishing the file fails, and once deleted it takes no space."""
    path = small_disk / ".x.mp4.part"
    writer = Mp4Writer(path, W, H)
    for i in range(15):
        writer.write(jpeg(picture(i / 10)), T0 + i / 10)
    filler = fill(small_disk)

    with pytest.raises(OSError) as failed:
        writer.close()
    assert failed.value.errno == errno.ENOSPC

    path.unlink()  # what the recorder does with a recording it could not finish
    assert used_bytes(small_disk) <= filler + 4096
    writer.abort()  # and a writer already closed can still be aborted
    assert [p.name for p in small_disk.iterdir()] == ["filler"]


def test_probe_says_none_for_what_is_not_a_video(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\0\0\0\x18ftypisom" + bytes(range(256)) * 10)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert probe(garbage) is None
    assert probe(empty) is None
    assert probe(tmp_path / "missing.mp4") is None


def test_salvage_copies_a_whole_file_and_refuses_garbage(tmp_path: Path) -> None:
    source = tmp_path / "source.mp4"
    write(source, [i / 10 for i in range(20)])
    target = tmp_path / "copy.mp4"
    saved = salvage(source, target)
    assert saved is not None
    assert saved == pytest.approx((2.0, 20), abs=0.01)
    assert probe(target) == probe(source)

    garbage = tmp_path / "garbage.part"
    garbage.write_bytes(bytes(5000))
    lost = tmp_path / "lost.mp4"
    assert salvage(garbage, lost) is None
    assert not lost.exists()


def cut_short_copy(tmp_path: Path, fraction: float) -> Path:
    """A 4 s recording truncated at ``fraction`` of its bytes: a crash while a fragment was being written."""
    source = tmp_path / "source.mp4"
    write(source, [i / 10 for i in range(40)])
    data = source.read_bytes()
    cut = tmp_path / "cut.part"
    cut.write_bytes(data[: int(len(data) * fraction)])
    return cut


def test_salvage_of_a_file_cut_mid_fragment_keeps_its_earlier_seconds(tmp_path: Path) -> None:
    target = tmp_path / "saved.mp4"
    saved = salvage(cut_short_copy(tmp_path, 0.6), target)
    assert saved is not None
    duration, frames = saved
    assert 1.0 <= duration <= 2.6
    assert 10 <= frames <= 26
    assert probe(target) == (duration, frames, "h264")


def test_salvage_of_a_file_cut_mid_fragment_gives_a_file_that_decodes_to_the_end(tmp_path: Path) -> None:
    target = tmp_path / "saved.mp4"
    saved = salvage(cut_short_copy(tmp_path, 0.6), target)
    assert saved is not None
    with av.open(str(target)) as container:
        decoded = list(container.decode(video=0))
    assert len(decoded) == saved[1]
