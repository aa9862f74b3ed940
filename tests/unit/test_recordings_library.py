"""The recordings folder: names, atomic writes, publication, listing, retention and crash recovery."""

from __future__ import annotations

import json
import math
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.record.library import Library, parse_name, recording_name, write_atomically
from pipeline.record.mp4 import Mp4Writer
from pipeline.video.demo import DemoScene
from tests.support.recordings import files, temporary_files

W, H = 320, 240
FPS = 10
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
SCENE = DemoScene(W, H, seed=5)


def jpeg(t: float) -> bytes:
    return cv2.imencode(".jpg", SCENE.render(t, T0 + t), [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()


def write_video(path: Path, seconds: float, start_ts: float = T0) -> None:
    """A complete (closed) recording of ``seconds`` of demo scene at FPS."""
    writer = Mp4Writer(path, W, H)
    for i in range(round(seconds * FPS)):
        writer.write(jpeg(i / FPS), start_ts + i / FPS)
    writer.close()


def add_recording(library: Library, camera: str, start_ts: float, video_bytes: int = 1000) -> str:
    """Publish a recording whose video is ``video_bytes`` of filler: enough for naming and retention."""
    name = recording_name(camera, start_ts)
    part = library.part_path(name)
    part.write_bytes(b"\0" * video_bytes)
    library.publish(name, part, b"\xff\xd8thumb", {"camera": camera, "start": start_ts, "duration": 1.0})
    return name


# --- names -------------------------------------------------------------------------------------


def test_recording_name_is_utc_with_milliseconds() -> None:
    assert recording_name("cam0", 0.0) == "19700101T000000.000Z_cam0"
    assert recording_name("cam0", T0 + 0.123) == "20231114T221320.123Z_cam0"
    assert recording_name("back-door_2", T0 + 59.9996) == "20231114T221419.999Z_back-door_2"


def test_recording_name_does_not_depend_on_the_local_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two hosts in different zones must name the same moment alike, or sorting across cameras breaks."""
    expected = recording_name("cam0", T0)
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        assert recording_name("cam0", T0) == expected
        assert parse_name(expected) == ("cam0", T0)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_names_sort_by_start_time_across_cameras() -> None:
    """Camera ids chosen to sort against time: only the stamp may decide the order."""
    starts = [
        ("zeta", T0 - 86_400 * 400),  # over a year earlier
        ("cam0", T0 - 0.002),
        ("alpha", T0 - 0.001),
        ("zeta", T0),
        ("alpha", T0 + 0.999),
        ("cam0", T0 + 1.0),
        ("a", T0 + 36_000),  # across midnight UTC
    ]
    names = [recording_name(camera, ts) for camera, ts in starts]
    assert sorted(names) == names
    assert sorted(reversed(names)) == names


def test_recording_names_round_trip_through_parse_name_at_millisecond_precision() -> None:
    rng = np.random.default_rng(7)
    for ts in rng.uniform(0, 4_000_000_000, 300):
        name = recording_name("cam_1", float(ts))
        parsed = parse_name(name)
        assert parsed is not None
        camera, start = parsed
        assert camera == "cam_1"
        assert 0 <= float(ts) - start < 0.001 + 1e-6, name  # truncated to the millisecond, never later
        assert recording_name(camera, start) == name
    assert parse_name("20231114T221320.123Z_cam0") == ("cam0", datetime(2023, 11, 14, 22, 13, 20, 123000,
                                                                         tzinfo=UTC).timestamp())


@pytest.mark.parametrize("stem", [
    ".20231114T221320.123Z_cam0.mp4",  # the stem of a .part file
    ".20231114T221320.123Z_cam0",
    "20231114T221320.123Z_cam0.mp4",
    "notes",
    "",
    "20231114T221320Z_cam0",  # no milliseconds
    "20231114T221320.123_cam0",  # no Z
    "20231114T221320.123Z_",  # no camera
    "20231114T221320.123Z_cam 0",
    "20231114T221320.123Z_cam.0",
    "20231114T221320.123Z_" + "c" * 65,
    "x20231114T221320.123Z_cam0",
])
def test_parse_name_rejects_other_names(stem: str) -> None:
    assert parse_name(stem) is None


def test_parse_name_rejects_a_name_with_an_impossible_date() -> None:
    """A stray file like this in the folder would otherwise make recordings(), enforce() and recover() raise."""
    assert parse_name("20231399T221320.123Z_cam0") is None
    assert parse_name("20231114T256199.123Z_cam0") is None


# --- atomic writes and publication ---------------------------------------------------------------


def test_write_atomically_writes_all_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    write_atomically(target, b"first")
    assert target.read_bytes() == b"first"
    write_atomically(target, b"second, longer")
    assert target.read_bytes() == b"second, longer"
    assert files(tmp_path) == ["a.json"]


def test_publish_renames_the_part_and_writes_thumbnail_and_sidecar(tmp_path: Path) -> None:
    library = Library(tmp_path)
    name = recording_name("cam0", T0)
    part = library.part_path(name)
    assert part.name == f".{name}.mp4.part"
    part.write_bytes(b"video" * 100)
    thumbnail = jpeg(1.0)

    sidecar = library.publish(name, part, thumbnail, {"camera": "cam0", "duration": 4.2, "cut_short": False})

    assert files(tmp_path) == [f"{name}.jpg", f"{name}.json", f"{name}.mp4"]
    assert library.path(name, ".mp4").read_bytes() == b"video" * 100
    assert library.path(name, ".jpg").read_bytes() == thumbnail
    on_disk = json.loads(library.path(name, ".json").read_text())
    assert on_disk == sidecar
    assert on_disk == {"camera": "cam0", "duration": 4.2, "cut_short": False, "name": name,
                       "video": f"{name}.mp4", "thumbnail": f"{name}.jpg", "size": 500}


def test_publish_without_a_thumbnail_says_so_in_the_sidecar(tmp_path: Path) -> None:
    library = Library(tmp_path)
    name = recording_name("cam0", T0)
    library.part_path(name).write_bytes(b"v")
    sidecar = library.publish(name, library.part_path(name), None, {})
    assert sidecar["thumbnail"] is None
    assert files(tmp_path) == [f"{name}.json", f"{name}.mp4"]


def test_recordings_lists_newest_first_and_ignores_other_files(tmp_path: Path) -> None:
    library = Library(tmp_path)
    oldest = add_recording(library, "zeta", T0)
    middle = add_recording(library, "alpha", T0 + 60)
    newest = add_recording(library, "cam0", T0 + 61.5)
    (tmp_path / "notes.json").write_text('{"name": "not a recording"}')
    (tmp_path / "settings.json").write_text("[]")
    (tmp_path / f".{newest}.json.tmp").write_text("{}")
    library.part_path(recording_name("cam0", T0 + 120)).write_bytes(b"in progress")

    listed = library.recordings()

    assert [r["name"] for r in listed] == [newest, middle, oldest]
    assert [r["camera"] for r in listed] == ["cam0", "alpha", "zeta"]


def test_recordings_skips_an_unreadable_sidecar(tmp_path: Path) -> None:
    library = Library(tmp_path)
    good = add_recording(library, "cam0", T0)
    bad = add_recording(library, "cam0", T0 + 10)
    library.path(bad, ".json").write_text('{"name": ')
    assert [r["name"] for r in library.recordings()] == [good]


# VALID and NAME are replaced by what a good sidecar of recording NAME holds, and by its name.
VALID = '"name": "NAME", "video": "NAME.mp4", "camera": "cam0"'
HOSTILE_SIDECARS = {
    "a list": "[]",
    "an empty object": "{}",
    "null": "null",
    "a number": "3",
    "a string": '"x"',
    "NaN": '{VALID, "duration": NaN}',
    "Infinity": '{VALID, "duration": 1, "start": -Infinity}',
    "a float too big": '{VALID, "duration": 1e999}',
    "another name": '{"name": "other", "video": "NAME.mp4", "camera": "cam0", "duration": 1}',
    "a foreign video": '{"name": "NAME", "video": "../../etc/passwd", "camera": "cam0", "duration": 1}',
    "a foreign thumbnail": '{VALID, "thumbnail": "x.jpg", "duration": 1}',
    "no video": '{"name": "NAME", "camera": "cam0", "duration": 1}',
    "no duration": '{VALID}',
    "a camera that is a number": '{"name": "NAME", "video": "NAME.mp4", "camera": 0, "duration": 1}',
    "a duration that is a string": '{VALID, "duration": "1"}',
    "a duration that is true": '{VALID, "duration": true}',
    "a start that is a list": '{VALID, "duration": 1, "start": []}',
    "deep nesting": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("kind", HOSTILE_SIDECARS)
def test_a_hostile_sidecar_is_skipped_and_the_others_are_still_listed(
        tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    library = Library(tmp_path)
    older = add_recording(library, "cam0", T0)
    bad = add_recording(library, "cam0", T0 + 10)
    newer = add_recording(library, "cam0", T0 + 20)
    library.path(bad, ".json").write_text(HOSTILE_SIDECARS[kind].replace("VALID", VALID).replace("NAME", bad))

    for _ in range(3):
        assert [r["name"] for r in library.recordings()] == [newer, older]
    assert library.get(bad) is None
    page, cursor = library.page(limit=2)
    assert [r["name"] for r in page] == [newer] and cursor == bad
    warnings = [r.getMessage() for r in caplog.records if bad in r.getMessage()]
    assert len(warnings) == 1, warnings  # once, not at every listing


def test_a_sidecar_fixed_after_being_skipped_is_listed_again(tmp_path: Path) -> None:
    """Fixed by hand with no more than what is required: older or hand-made sidecars like it stay listed."""
    library = Library(tmp_path)
    name = add_recording(library, "cam0", T0)
    library.path(name, ".json").write_text("[]")
    assert library.recordings() == []
    library.path(name, ".json").write_text('{VALID, "duration": 0}'.replace("VALID", VALID).replace("NAME", name))
    assert [r["name"] for r in library.recordings()] == [name]


def test_a_symlinked_sidecar_is_not_listed_even_if_what_it_points_to_is_valid(tmp_path: Path) -> None:
    """A link could make the gateway read and serve any file it may read; a valid target proves the link is why."""
    library = Library(tmp_path / "recordings")
    library.root.mkdir()
    real = add_recording(library, "cam0", T0)
    linked = add_recording(library, "cam0", T0 + 10)
    outside = tmp_path / "outside.json"
    library.path(linked, ".json").rename(outside)
    library.path(linked, ".json").symlink_to(outside)

    assert [r["name"] for r in library.recordings()] == [real]
    assert library.get(linked) is None


@pytest.mark.parametrize("kind", ["a symlink", "a folder", "a FIFO"])
def test_only_a_regular_file_in_the_folder_is_a_file_to_serve(tmp_path: Path, kind: str) -> None:
    """What the gateway may send for /recordings/<file>: never through a link, a FIFO or a folder."""
    library = Library(tmp_path / "recordings")
    library.root.mkdir()
    name = add_recording(library, "cam0", T0)
    assert {suffix: library.file(name, suffix) for suffix in (".mp4", ".jpg", ".json")} == {
        suffix: library.path(name, suffix) for suffix in (".mp4", ".jpg", ".json")}
    other = add_recording(library, "cam0", T0 + 10)
    target = library.path(other, ".mp4")
    target.unlink()
    if kind == "a symlink":
        target.symlink_to(library.path(name, ".mp4"))  # inside the folder, and still refused
    elif kind == "a folder":
        target.mkdir()
    else:
        os.mkfifo(target)
    assert library.file(other, ".mp4") is None
    assert library.file(other, ".jpg") == library.path(other, ".jpg")
    assert library.file(name, ".mp4.part") is None
    assert library.file("../recordings/" + name, ".mp4") is None
    assert library.file(recording_name("cam0", T0 + 99), ".mp4") is None


@pytest.mark.parametrize("kind", ["a FIFO", "a big file"])
def test_a_sidecar_that_is_not_a_small_regular_file_is_skipped_without_blocking(tmp_path: Path, kind: str) -> None:
    """Opening a FIFO to read waits for a writer: the gateway would hang on its next listing."""
    library = Library(tmp_path)
    good = add_recording(library, "cam0", T0)
    bad = add_recording(library, "cam0", T0 + 10)
    sidecar = library.path(bad, ".json")
    text = sidecar.read_text()
    sidecar.unlink()
    if kind == "a FIFO":
        os.mkfifo(sidecar)
    else:
        sidecar.write_text(text[:-1] + ", " + '"padding": "' + "x" * 100_000 + '"}')
    assert [r["name"] for r in library.recordings()] == [good]


def test_publish_refuses_nan_before_writing_anything(tmp_path: Path) -> None:
    """A sidecar with NaN is not JSON: the API would pass it on to browsers that cannot parse it."""
    library = Library(tmp_path)
    name = recording_name("cam0", T0)
    part = library.part_path(name)
    part.write_bytes(b"video")
    with pytest.raises(ValueError):
        library.publish(name, part, b"\xff\xd8thumb", {"camera": "cam0", "duration": 1.0, "peak_delta": math.nan})
    assert files(tmp_path) == [part.name]
    assert library.recordings() == []


def test_an_absent_folder_has_no_recordings(tmp_path: Path) -> None:
    library = Library(tmp_path / "not-yet")
    assert library.recordings() == []
    assert library.usage() == 0
    assert library.enforce(1, 1) == []
    assert library.recover() == []


def test_delete_removes_all_three_files(tmp_path: Path) -> None:
    library = Library(tmp_path)
    keep = add_recording(library, "cam0", T0)
    gone = add_recording(library, "cam0", T0 + 5)
    library.delete(gone)
    assert [r["name"] for r in library.recordings()] == [keep]
    assert not [name for name in files(tmp_path) if name.startswith(gone)]


# --- retention -----------------------------------------------------------------------------------


def test_usage_counts_video_thumbnail_and_sidecar(tmp_path: Path) -> None:
    library = Library(tmp_path)
    add_recording(library, "cam0", T0, video_bytes=10_000)
    add_recording(library, "cam1", T0 + 1, video_bytes=20_000)
    library.part_path(recording_name("cam0", T0 + 2)).write_bytes(b"\0" * 50_000)  # not complete: not counted
    (tmp_path / "notes.txt").write_bytes(b"\0" * 70_000)
    expected = sum(p.stat().st_size for p in tmp_path.iterdir() if p.suffix in (".mp4", ".jpg", ".json"))
    assert library.usage() == expected
    assert 30_000 < library.usage() < 31_000


def test_enforce_size_deletes_oldest_first_until_under_the_limit_and_no_more(tmp_path: Path) -> None:
    library = Library(tmp_path)
    # Interleaved cameras, published out of order: age alone must decide.
    starts = [("cam1", T0 + 30), ("cam0", T0), ("cam1", T0 + 10), ("cam0", T0 + 40), ("cam0", T0 + 20)]
    names = {ts: add_recording(library, camera, ts, video_bytes=10_000) for camera, ts in starts}
    by_age = [names[ts] for ts in sorted(names)]
    each = library.usage() // 5
    total = library.usage()

    assert library.enforce(total, 0) == []  # at the limit is within it
    assert library.usage() == total

    limit = total - each - 1  # just too much for the oldest alone to free: two must go
    deleted = library.enforce(limit, 0)

    assert deleted == by_age[:2]
    assert library.usage() <= limit
    assert library.usage() > limit - each  # deleting a third would have been one too many
    assert [r["name"] for r in library.recordings()] == list(reversed(by_age[2:]))


def test_enforce_age_deletes_only_recordings_started_before_the_limit(tmp_path: Path) -> None:
    library = Library(tmp_path)
    now = T0 + 100 * 3600
    hours_ago = [99, 50, 31, 29, 1]
    names = [add_recording(library, f"cam{i % 2}", now - h * 3600) for i, h in enumerate(hours_ago)]

    deleted = library.enforce(0, 30 * 3600, now=now)

    assert deleted == names[:3]
    assert sorted(r["name"] for r in library.recordings()) == sorted(names[3:])
    assert library.enforce(0, 30 * 3600, now=now) == []


def test_enforce_with_no_limits_deletes_nothing(tmp_path: Path) -> None:
    library = Library(tmp_path)
    add_recording(library, "cam0", 0.0)
    assert library.enforce(0, 0, now=T0) == []
    assert len(library.recordings()) == 1


# --- recovery ------------------------------------------------------------------------------------

def test_recover_keeps_a_thumbnail_written_before_the_crash(tmp_path: Path) -> None:
    """publish writes the thumbnail before the rename: a crash in between leaves the real best frame."""
    library = Library(tmp_path)
    name = recording_name("cam0", T0)
    write_video(library.part_path(name), 2.0)
    best = jpeg(0.7)
    library.path(name, ".jpg").write_bytes(best)

    saved = library.recover()

    assert [s["name"] for s in saved] == [name]
    assert library.path(name, ".jpg").read_bytes() == best
    assert saved[0]["duration"] == pytest.approx(2.0, abs=0.05)
    assert temporary_files(tmp_path) == []


def test_recover_removes_a_part_file_with_nothing_playable(tmp_path: Path) -> None:
    library = Library(tmp_path)
    good = add_recording(library, "cam0", T0 - 100)
    garbage = library.part_path(recording_name("cam0", T0))
    garbage.write_bytes(b"\0\0\0\x18ftypisom" + bytes(range(256)) * 20)
    library.part_path(recording_name("cam1", T0)).write_bytes(b"")  # the crash came before the first frame
    stray = tmp_path / ".notes.mp4.part"
    write_video(stray, 0.5)  # playable, but not named as a recording

    assert library.recover() == []

    assert [r["name"] for r in library.recordings()] == [good]
    assert temporary_files(tmp_path) == []
    assert files(tmp_path) == [f"{good}.jpg", f"{good}.json", f"{good}.mp4"]


def test_recover_completes_a_recording_renamed_but_without_sidecar(tmp_path: Path) -> None:
    """A crash between the rename and the sidecar: the video is final and must get listed."""
    library = Library(tmp_path)
    name = recording_name("cam2", T0)
    write_video(library.path(name, ".mp4"), 2.5)
    broken = recording_name("cam2", T0 + 60)
    library.path(broken, ".mp4").write_bytes(b"not a video at all")
    (tmp_path / "holiday.mp4").write_bytes(b"someone else's file")

    saved = library.recover()

    assert [s["name"] for s in saved] == [name]
    sidecar = json.loads(library.path(name, ".json").read_text())
    assert sidecar == saved[0]
    assert sidecar["cut_short"] is True and sidecar["camera"] == "cam2"
    assert sidecar["duration"] == pytest.approx(2.5, abs=0.05)
    assert library.path(name, ".jpg").exists()
    assert [r["name"] for r in library.recordings()] == [name]
    assert not library.path(broken, ".mp4").exists()  # unplayable and unlisted: removed
    assert (tmp_path / "holiday.mp4").read_bytes() == b"someone else's file"  # not ours: left alone


def test_recover_removes_temporary_files_of_atomic_writes(tmp_path: Path) -> None:
    library = Library(tmp_path)
    name = add_recording(library, "cam0", T0)
    (tmp_path / f".{name}.json.tmp").write_text('{"half')
    (tmp_path / f".{name}.jpg.tmp").write_bytes(b"\xff\xd8")
    assert library.recover() == []
    assert temporary_files(tmp_path) == []
    assert [r["name"] for r in library.recordings()] == [name]


def test_recover_of_a_whole_library_changes_nothing(tmp_path: Path) -> None:
    library = Library(tmp_path)
    add_recording(library, "cam0", T0)
    add_recording(library, "cam1", T0 + 1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert library.recover() == []
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_recover_removes_a_salvage_file_left_by_an_interrupted_recovery(tmp_path: Path) -> None:
    library = Library(tmp_path)
    name = recording_name("cam0", T0)
    # The previous recover() was killed after salvaging into .salvage and deleting the .part.
    write_video(tmp_path / f".{name}.mp4.part.salvage", 1.0)
    library.recover()
    assert temporary_files(tmp_path) == []


def test_recover_of_a_part_cut_mid_fragment_has_a_thumbnail(tmp_path: Path) -> None:
    library = Library(tmp_path)
    name = recording_name("cam0", T0)
    whole = tmp_path / "whole.mp4"
    write_video(whole, 4.0)
    data = whole.read_bytes()
    whole.unlink()
    library.part_path(name).write_bytes(data[: int(len(data) * 0.6)])

    saved = library.recover()

    assert [s["name"] for s in saved] == [name]
    assert 1.0 <= saved[0]["duration"] <= 2.6
    assert saved[0]["thumbnail"] == f"{name}.jpg"


def test_a_page_of_one_camera_holds_only_its_recordings_and_pages_within_them(tmp_path: Path) -> None:
    library = Library(tmp_path)
    names = [add_recording(library, camera, T0 + 10 * i) for i, camera in enumerate(("cam0", "cam1") * 3)]
    cam1 = [name for name in names if name.endswith("_cam1")][::-1]
    page, cursor = library.page(limit=2, camera="cam1")
    assert [r["name"] for r in page] == cam1[:2] and cursor == cam1[1]
    page, cursor = library.page(limit=2, before=cursor, camera="cam1")
    assert [r["name"] for r in page] == cam1[2:] and cursor is None
    assert library.page(limit=10, camera="cam") == ([], None), "a camera id is matched whole, not as a prefix"
