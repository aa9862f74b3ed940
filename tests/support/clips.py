"""Synthetic camera clips with known truth, one per condition a motion detector must survive.

Each clip is the demo scene (pipeline.video.demo.DemoScene: a lit room, sensor noise, a visitor on a
published schedule) with one condition laid over it: dim light with more sensor noise, a lamp
that flickers on over part of the picture, a camera shaken for a few frames, rain, and the
conditions the detector already handled (a light switch, a twitch, a slow exposure ramp). The
truth is what the scene knows: the frames in which the visitor is in view, or None when nothing
real moves, and which event the detector should report for the condition.

Shared by tests/unit/test_motion_in_hard_conditions.py and bench/conditions.py, so it imports no
pytest. Every clip is deterministic (seeded) and built on demand: a 12 s clip at 640x480 is about
110 MB of pictures, too much to hold all of them at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.video.demo import DemoScene

FPS = 10
W, H = 640, 480
SCENE_SEED = 3
CLOCK_TS = 1.7e9  # the on-screen clock is held still, so only the condition and the visitor change

# Scene times (s) of the demo: the visitor crosses left to right from 2 to 7.5 s, nobody is in view
# from 7.5 to 18 s, and the visitor crosses right to left from 18 s.
WALK_FROM_LEFT_S = 0.0
STILL_S = 8.0
WALK_FROM_RIGHT_S = 16.0

DIM = 0.5  # about half the usual brightness
SENSOR_NOISE_SIGMA = 3.5  # grey levels of extra noise per channel, fresh every frame
LAMP_GAIN = 1.6  # how much brighter the lamp makes its third of the picture
LAMP_EDGE_PX = 48  # width of the soft edge of the lamp's light
LAMP_FLICKER = (1, 0, 1, 1, 0, 1, 0)  # on/off per frame for 0.7 s after the lamp first comes on; then on
SHAKE_PX = ((3, -2), (-2, 3), (4, 1), (-3, -2))  # a 4-frame jitter of the whole picture
RAIN_STREAKS = 300  # per frame
RAIN_GREY = (20, 50)  # how much a streak brightens the picture: faint, as drops blurred by their fall are
SWITCH_GAIN, SWITCH_OFFSET = 1.6, 30  # the light switched on over the whole picture
RAMP_PER_FRAME, RAMP_FRAMES = 0.02, 40  # a slow exposure ramp: +2% a frame for 4 s, then held


@dataclass(frozen=True)
class Clip:
    """Pictures at FPS with their truth.

    ``walk`` lists the indexes of the frames in which a real walker is in view, or is None when
    nothing real moves and no recording should be kept. ``event`` is the type of event the
    detector should report for the condition (``lightswitch``, ``shake``), or None; ``rule`` the
    rule that event should name (``global`` for the whole picture, ``local`` for part of it);
    ``event_frames`` the frames whose picture the condition changed, the only ones where it may be
    reported.
    """

    name: str
    frames: list[np.ndarray]
    walk: list[int] | None
    description: str
    event: str | None = None
    rule: str | None = None
    event_frames: tuple[int, ...] = ()


def _scene() -> DemoScene:
    return DemoScene(W, H, seed=SCENE_SEED)


def _times(start_s: float, seconds: float) -> list[float]:
    return [start_s + i / FPS for i in range(round(seconds * FPS))]


def _render(scene: DemoScene, times: Iterable[float]) -> list[np.ndarray]:
    return [scene.render(t, CLOCK_TS) for t in times]


def _walk_truth(scene: DemoScene, times: list[float]) -> list[int]:
    """Indexes of the times at which the visitor is in view, as the scene itself reports it."""
    return [i for i, t in enumerate(times) if scene.object_box(t) is not None]


def _dim_and_noisy(frames: list[np.ndarray], gain: float, seed: int) -> list[np.ndarray]:
    """Each picture scaled by ``gain`` with fresh Gaussian sensor noise of SENSOR_NOISE_SIGMA on top."""
    rng = np.random.default_rng(seed)
    out = []
    for frame in frames:
        noise = rng.standard_normal(frame.shape, dtype=np.float32) * SENSOR_NOISE_SIGMA
        out.append(np.clip(frame.astype(np.float32) * gain + noise + 0.5, 0, 255).astype(np.uint8))
    return out


def _lamp_gain_map() -> np.ndarray:
    """Per-pixel gain of the lamp: LAMP_GAIN over the left third, falling smoothly to 1 across its edge."""
    edge = W / 3
    x = np.arange(W, dtype=np.float32)
    ramp = np.clip((edge + LAMP_EDGE_PX / 2 - x) / LAMP_EDGE_PX, 0, 1)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep: no visible kink where the light ends
    gain = 1 + (LAMP_GAIN - 1) * ramp
    return np.broadcast_to(gain[None, :, None], (H, W, 3))


def _lamp_frames(on_at: int) -> tuple[int, ...]:
    """The frames that differ from the one before them because the lamp came on, went off or on again."""
    return tuple(on_at + i for i in range(len(LAMP_FLICKER) + 1))


def _lamp(frames: list[np.ndarray], on_at: int) -> list[np.ndarray]:
    """The lamp comes on at frame ``on_at``, flickers as LAMP_FLICKER says, then stays on."""
    gain = _lamp_gain_map()
    out = []
    for i, frame in enumerate(frames):
        since = i - on_at
        lit = since >= 0 and (since >= len(LAMP_FLICKER) or LAMP_FLICKER[since])
        out.append(np.clip(frame * gain + 0.5, 0, 255).astype(np.uint8) if lit else frame)
    return out


def _shake(frames: list[np.ndarray], at: int) -> list[np.ndarray]:
    """Frames ``at`` onwards shifted by SHAKE_PX, one shift a frame, the edge pixels repeated into the gap."""
    out = list(frames)
    for k, (dx, dy) in enumerate(SHAKE_PX):
        shift = np.float32([[1, 0, dx], [0, 1, dy]])
        out[at + k] = cv2.warpAffine(frames[at + k], shift, (W, H), borderMode=cv2.BORDER_REPLICATE)
    return out


def _shake_frames(at: int) -> tuple[int, ...]:
    """The shaken frames, and the steady one after them that differs from the last shaken one."""
    return tuple(range(at, at + len(SHAKE_PX) + 1))


def _rain(frames: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Short, thin, slightly slanted bright streaks all over every picture, new ones each frame."""
    rng = np.random.default_rng(seed)
    out = []
    for frame in frames:
        streaks = np.zeros((H, W), np.uint8)
        x0 = rng.integers(0, W, RAIN_STREAKS)
        y0 = rng.integers(0, H, RAIN_STREAKS)
        length = rng.integers(8, 24, RAIN_STREAKS)
        slant = rng.uniform(0.1, 0.3, RAIN_STREAKS)
        brightness = rng.integers(*RAIN_GREY, RAIN_STREAKS)
        for x, y, n, s, b in zip(x0, y0, length, slant, brightness, strict=True):
            cv2.line(streaks, (int(x), int(y)), (int(x + s * n), int(y + n)), int(b), 1, cv2.LINE_AA)
        out.append(cv2.add(frame, cv2.cvtColor(streaks, cv2.COLOR_GRAY2BGR)))
    return out


def walk() -> Clip:
    scene = _scene()
    times = _times(WALK_FROM_LEFT_S, 12)
    return Clip("walk", _render(scene, times), _walk_truth(scene, times), "the visitor walks through a lit room")


def low_light_walk() -> Clip:
    scene = _scene()
    times = _times(WALK_FROM_LEFT_S, 12)
    frames = _dim_and_noisy(_render(scene, times), DIM, seed=11)
    return Clip("low_light_walk", frames, _walk_truth(scene, times),
                f"half brightness, +{SENSOR_NOISE_SIGMA} grey levels of noise; the visitor walks through")


def low_light_still() -> Clip:
    frames = _dim_and_noisy(_render(_scene(), _times(STILL_S, 10)), DIM, seed=12)
    return Clip("low_light_still", frames, None, f"half brightness, +{SENSOR_NOISE_SIGMA} grey levels of noise; nobody")


def bright_noise_still() -> Clip:
    frames = _dim_and_noisy(_render(_scene(), _times(STILL_S, 10)), 1.0, seed=13)
    return Clip("bright_noise_still", frames, None,
                f"full brightness, +{SENSOR_NOISE_SIGMA} grey levels of noise; nobody")


def lamp_flicker() -> Clip:
    on_at = 30
    frames = _lamp(_render(_scene(), _times(STILL_S, 10)), on_at)
    return Clip("lamp_flicker", frames, None,
                f"the left third brightens x{LAMP_GAIN}, flickers 0.7 s, stays on; nobody",
                event="lightswitch", rule="local", event_frames=_lamp_frames(on_at))


def lamp_flicker_with_walk() -> Clip:
    scene = _scene()
    times = _times(WALK_FROM_RIGHT_S, 12)
    # The visitor enters on the right at frame 20; the lamp comes on over the left third while the
    # visitor is still in the right third, and the visitor then walks through its light.
    on_at = 24
    frames = _lamp(_render(scene, times), on_at)
    return Clip("lamp_flicker_with_walk", frames, _walk_truth(scene, times),
                "the lamp flickers on over the left third while the visitor walks in from the right",
                event="lightswitch", rule="local", event_frames=_lamp_frames(on_at))


def shake() -> Clip:
    at = 40
    frames = _shake(_render(_scene(), _times(STILL_S, 10)), at)
    return Clip("shake", frames, None, f"{len(SHAKE_PX)} frames of a 2-4 px jitter of the whole picture; nobody",
                event="shake", event_frames=_shake_frames(at))


def shake_with_walk() -> Clip:
    scene = _scene()
    times = _times(WALK_FROM_LEFT_S, 12)
    at = 45
    frames = _shake(_render(scene, times), at)
    return Clip("shake_with_walk", frames, _walk_truth(scene, times),
                f"{len(SHAKE_PX)} frames of a 2-4 px jitter while the visitor walks through",
                event="shake", event_frames=_shake_frames(at))


def rain() -> Clip:
    frames = _rain(_render(_scene(), _times(STILL_S, 10)), seed=14)
    return Clip("rain", frames, None, f"{RAIN_STREAKS} short bright streaks a frame all over the picture; nobody")


def rain_with_walk() -> Clip:
    scene = _scene()
    times = _times(WALK_FROM_LEFT_S, 12)
    frames = _rain(_render(scene, times), seed=15)
    return Clip("rain_with_walk", frames, _walk_truth(scene, times),
                f"{RAIN_STREAKS} short bright streaks a frame while the visitor walks through")


def light_switch() -> Clip:
    frames = _render(_scene(), _times(STILL_S, 8))
    on_at = 30
    switched = [cv2.convertScaleAbs(f, alpha=SWITCH_GAIN, beta=SWITCH_OFFSET) if i >= on_at else f
                for i, f in enumerate(frames)]
    return Clip("light_switch", switched, None, "a light switched on over the whole picture; nobody",
                event="lightswitch", rule="global", event_frames=(on_at,))


def twitch() -> Clip:
    frames = _render(_scene(), _times(STILL_S, 8))
    for offset, index in enumerate(range(30, 33)):
        frames[index] = frames[index].copy()
        x = 100 + 30 * offset
        cv2.rectangle(frames[index], (x, 300), (x + 60, 380), (20, 20, 20), -1)
    return Clip("twitch", frames, None, "a dark shape for 3 frames: too short to keep")


def exposure_ramp() -> Clip:
    frames = _render(_scene(), _times(STILL_S, 8))
    ramped = [cv2.convertScaleAbs(f, alpha=1 + RAMP_PER_FRAME * min(i, RAMP_FRAMES)) for i, f in enumerate(frames)]
    return Clip("exposure_ramp", ramped, None,
                f"exposure rises {RAMP_PER_FRAME:.0%} a frame for {RAMP_FRAMES / FPS:g} s, then holds; nobody")


CLIPS: dict[str, Callable[[], Clip]] = {make.__name__: make for make in (
    walk, low_light_walk, low_light_still, bright_noise_still, lamp_flicker, lamp_flicker_with_walk,
    shake, shake_with_walk, rain, rain_with_walk, light_switch, twitch, exposure_ramp,
)}
"""Every clip's generator by name, in the order a table lists them."""
