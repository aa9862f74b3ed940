"""Motion detection on generated frame sequences, through the detector's per-camera logic."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.motion.camera import CameraDetector
from pipeline.motion.differ import FrameDiffer, reduction_for
from pipeline.motion.episodes import EpisodeTracker
from pipeline.protocol import Frame
from pipeline.video.demo import DemoScene
from tests.support.detection import FPS, H, W, jpeg, of_type, run, settings

SCENE = DemoScene(W, H, seed=3)


def demo_frames(start_s: float, stop_s: float) -> list[tuple[float, np.ndarray]]:
    """(t, picture) of the demo scene every 1/FPS s, its clock frozen so only motion and noise change."""
    return [(t, SCENE.render(t, 1.7e9)) for t in np.arange(start_s, stop_s, 1 / FPS)]


def truth(frames: list[tuple[float, np.ndarray]]) -> list[int]:
    """Indexes of the frames in which the demo's visitor is in view."""
    return [i for i, (t, _) in enumerate(frames) if SCENE.object_box(t) is not None]


def test_a_still_noisy_scene_gives_no_episode() -> None:
    events = run([image for _, image in demo_frames(9.0, 17.0)])
    deltas = of_type(events, "delta")
    assert len(deltas) == 79
    assert not any(e.data["significant"] for e in deltas)
    assert max(e.data["delta"] for e in deltas) < settings().threshold / 3
    assert of_type(events, "motion_start") == [] and of_type(events, "lightswitch") == []


def test_a_visitor_walking_through_gives_one_kept_episode_at_the_right_frames() -> None:
    frames = demo_frames(0.0, 12.0)
    events = run([image for _, image in frames])
    starts, ends = of_type(events, "motion_start"), of_type(events, "motion_end")
    assert len(starts) == 1 and len(ends) == 1
    visible = truth(frames)
    end = ends[0]
    assert abs(starts[0].seq - visible[0]) <= 2
    assert abs(end.data["end_seq"] - visible[-1]) <= 3
    assert end.seq == end.data["end_seq"] + settings().stable_frames
    assert end.data["keep"] is True and end.data["reason"] == "stable"
    assert end.data["start_seq"] == starts[0].seq
    assert end.data["significant_frames"] >= 0.8 * len(visible)
    assert end.data["peak_delta"] == max(e.data["delta"] for e in of_type(events, "delta"))


def test_motion_boxes_cover_the_visitor() -> None:
    frames = demo_frames(3.0, 6.0)
    events = of_type(run([image for _, image in frames]), "delta")
    checked = 0
    for event in events:
        x, y, w, h = SCENE.object_box(frames[event.seq][0])
        centre = (x + w / 2, y + h / 2)
        assert event.data["boxes"], f"no box at frame {event.seq}"
        assert any(bx <= centre[0] <= bx + bw and by <= centre[1] <= by + bh for bx, by, bw, bh in event.data["boxes"])
        checked += 1
    assert checked == len(frames) - 1


def test_a_three_frame_twitch_is_one_discarded_episode() -> None:
    still = [image for _, image in demo_frames(9.0, 13.0)]
    for offset, index in enumerate(range(10, 13)):
        still[index] = still[index].copy()
        cv2.rectangle(still[index], (100 + 30 * offset, 300), (160 + 30 * offset, 380), (20, 20, 20), -1)
    events = run(still)
    ends = of_type(events, "motion_end")
    assert len(of_type(events, "motion_start")) == 1 and len(ends) == 1
    assert ends[0].data["keep"] is False
    assert ends[0].data["significant_frames"] == 4  # three twitches and the return to the still scene


def test_a_light_switch_is_reported_and_starts_no_episode() -> None:
    frames = [image for _, image in demo_frames(9.0, 13.0)]
    brighter = [cv2.convertScaleAbs(image, alpha=1.6, beta=30) if i >= 15 else image for i, image in enumerate(frames)]
    events = run(brighter)
    switches = of_type(events, "lightswitch")
    assert [e.seq for e in switches] == [15]
    assert switches[0].data["changed"] > 90
    assert of_type(events, "motion_start") == []


def test_a_light_switch_does_not_prolong_an_episode() -> None:
    frames = demo_frames(0.0, 12.0)
    images = [image for _, image in frames]
    visible = truth(frames)
    flash = visible[-1] + 10
    images = [cv2.convertScaleAbs(im, alpha=0.5) if i >= flash else im for i, im in enumerate(images)]
    events = run(images)
    (end,) = of_type(events, "motion_end")
    assert end.seq == end.data["end_seq"] + settings().stable_frames
    assert [e.seq for e in of_type(events, "lightswitch")] == [flash]


def test_gradual_exposure_change_is_not_motion() -> None:
    frames = [image for _, image in demo_frames(9.0, 13.0)]
    ramp = [cv2.convertScaleAbs(image, alpha=1.0 + 0.02 * i) for i, image in enumerate(frames)]
    events = run(ramp)
    assert of_type(events, "motion_start") == [] and of_type(events, "lightswitch") == []


def test_motion_inside_a_mask_is_ignored() -> None:
    frames = demo_frames(0.0, 12.0)
    boxes = [SCENE.object_box(t) for t, _ in frames if SCENE.object_box(t) is not None]
    top = min(y for _, y, _, _ in boxes) - 8
    bottom = max(y + h for _, y, _, h in boxes) + 8
    mask = settings(mask_rects=((0, top, W, bottom - top),))
    events = run([image for _, image in frames], mask)
    assert of_type(events, "motion_start") == []
    assert not any(e.data["significant"] for e in of_type(events, "delta"))


def test_a_mask_image_hides_its_black_areas() -> None:
    frames = demo_frames(0.0, 12.0)
    keep = np.full((H // 4, W // 4), 255, np.uint8)  # any size: it is scaled to the frame
    keep[H // 8:, :] = 0  # the lower half, where the visitor walks, is ignored
    events = run([image for _, image in frames], settings(mask_image=keep))
    assert of_type(events, "motion_start") == []


def test_dropped_frames_are_counted_and_the_episode_still_found() -> None:
    frames = demo_frames(0.0, 14.0)
    keep = [i for i in range(len(frames)) if i % 3 != 1]
    events = run([image for _, image in frames], settings(stable_frames=14), keep)
    deltas = of_type(events, "delta")
    assert {e.data["skipped"] for e in deltas} == {0, 1}
    assert sum(e.data["skipped"] for e in deltas) == len(frames) - len(keep) - (0 if 1 in keep else 1)
    starts, ends = of_type(events, "motion_start"), of_type(events, "motion_end")
    visible = truth(frames)
    assert len(starts) == 1 and len(ends) == 1 and ends[0].data["keep"] is True
    assert abs(starts[0].seq - visible[0]) <= 3
    assert abs(ends[0].data["end_seq"] - visible[-1]) <= 3


def test_an_episode_open_when_frames_stop_is_closed_with_a_reason() -> None:
    frames = demo_frames(3.0, 5.0)
    events = run([image for _, image in frames])
    (end,) = of_type(events, "motion_end")
    assert end.data["reason"] == "end of test" and end.data["keep"] is True


def test_a_corrupt_jpeg_is_skipped_without_losing_state() -> None:
    detector = CameraDetector("cam0", settings())
    images = [image for _, image in demo_frames(3.0, 3.5)]
    first = Frame("cam0", 0, 1.0, W, H, False, jpeg(images[0]))
    assert detector.process(first) == []
    broken = Frame("cam0", 1, 1.1, W, H, False, b"\xff\xd8 not really a jpeg")
    assert detector.process(broken) == []
    events = detector.process(Frame("cam0", 2, 1.2, W, H, False, jpeg(images[2])))
    assert [e.type for e in events] == ["motion_start", "delta"]
    assert events[1].data["skipped"] == 1 and events[1].data["significant"] and events[1].data["motion"]


def test_a_capture_restart_is_not_compared_with_the_frame_before_it() -> None:
    detector = CameraDetector("cam0", settings())
    before, after = SCENE.render(4.0, 1.7e9), SCENE.render(10.0, 1.7e9)  # the visitor, then an empty room
    assert detector.process(Frame("cam0", 0, 1.0, W, H, False, jpeg(before))) == []
    assert detector.process(Frame("cam0", 1, 1.1, W, H, False, jpeg(before)))[0].data["significant"] is False
    assert detector.process(Frame("cam0", 0, 9.0, W, H, False, jpeg(after))) == []
    (delta,) = detector.process(Frame("cam0", 1, 9.1, W, H, False, jpeg(after)))
    assert delta.data["significant"] is False and delta.data["skipped"] == 0


def test_a_new_frame_size_starts_afresh() -> None:
    differ = FrameDiffer(settings())
    small = np.full((240, 320, 3), 90, np.uint8)
    assert differ.measure(jpeg(small), 320, 240) is None
    assert differ.measure(jpeg(small), 320, 240).delta == 0.0
    assert differ.measure(jpeg(np.full((480, 640, 3), 90, np.uint8)), 640, 480) is None


@pytest.mark.parametrize(("width", "factor"), [(320, 1), (640, 2), (1280, 4), (1920, 8), (3840, 8)])
def test_reduction_keeps_enough_pixels(width: int, factor: int) -> None:
    assert reduction_for(width) == factor


def test_episode_tracker_rule() -> None:
    tracker = EpisodeTracker(stable_frames=3, min_motion_frames=2)
    verdicts = [False, True, False, True, False, False, False, True, False, False, False]
    out = [tracker.update(seq, float(seq), 5.0 if v else 0.0, v) for seq, v in enumerate(verdicts)]
    assert out[1] == [("motion_start", {"delta": 5.0})]
    assert out[6][0][0] == "motion_end" and out[6][0][1]["keep"] is True
    assert (out[6][0][1]["start_seq"], out[6][0][1]["end_seq"], out[6][0][1]["significant_frames"]) == (1, 3, 2)
    assert out[7] == [("motion_start", {"delta": 5.0})]
    assert out[10][0][1]["keep"] is False
    assert [i for i, o in enumerate(out) if o] == [1, 6, 7, 10]
