"""Synthetic camera used when no webcam is available.

The picture has to behave like a real fixed camera so that the later stages
(motion detection, recording) do real work and can be tested: a detailed
static room, sensor noise that never stops, an on-screen clock, and a person
who walks through on a fixed, published schedule so that tests know when
motion must (and must not) be reported.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

CYCLE_SECONDS: float = 16.0
"""The person walks through once per cycle; the rest of the cycle is still."""

FIRST_ENTRY_SECONDS: float = 2.0
"""The person enters at this time after capture start and then once per cycle."""

CROSSING_SECONDS: float = 5.5
"""Time from entering at one side to having fully left at the other."""

_NOISE_IMAGES_PER_SIGN = 2
_NOISE_SHIFTS = 16  # offsets, each way, at which a frame-sized window can be cut from a noise image
_NOISE_SIGMA = 2.2  # grey levels per channel, like a decent webcam in daylight
_GAIT_PHASES = 12
_PERSON_HEIGHT = 0.22  # fraction of the frame height
_SUPERSAMPLE = 4
_FEET_IN_CANVAS = 1.05  # height of the soles in a pose canvas, in person heights; leaves headroom for the bob
_MASK64 = (1 << 64) - 1
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_CLOCK_SAMPLE = "0000-00-00 00:00:00"
_LABEL = "DEMO SCENE"


def _mix(*values: int) -> int:
    """Hash integers with SplitMix64 steps.

    Python's own hash() is not meant to be stable, and nearby inputs (frame
    times a few milliseconds apart, consecutive cycles) must give unrelated
    outputs, which a plain modulo would not.
    """
    h = 0
    for value in values:
        z = (h ^ (value & _MASK64)) + 0x9E3779B97F4A7C15 & _MASK64
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB & _MASK64
        h = z ^ (z >> 31)
    return h


def _unit(*values: int) -> float:
    """Map integers to a reproducible float in [0, 1)."""
    return _mix(*values) / 2.0**64


@dataclass(frozen=True, slots=True)
class _Sprite:
    """One pre-lit gait pose, cropped to the pixels it actually changes.

    Cropping makes the crop rectangle the exact ground-truth box, and keeps
    the per-frame blend as small as possible.
    """

    premultiplied: np.ndarray  # float32 (h, w, 3): colour * alpha
    inverse_alpha: np.ndarray  # float32 (h, w, 1): 1 - alpha
    dx: int  # crop offset inside the uncropped pose canvas
    dy: int


class DemoScene:
    """Deterministic synthetic camera picture of a room with a passer-by.

    Everything expensive (background, noise, sprites, text layout) is built
    once, so render() costs little more than a copy, two saturating adds, a
    small blend and two lines of text.
    """

    def __init__(self, width: int, height: int, seed: int = 0) -> None:
        self.width = width
        self.height = height
        self.seed = seed
        rng = np.random.default_rng(seed)
        window_left = bool(rng.integers(2))
        self._background = _build_background(width, height, rng, window_left)
        self._noise_added = _build_noise_bank(width, height, rng)
        self._noise_subtracted = _build_noise_bank(width, height, rng)
        self._person_height = _PERSON_HEIGHT * height
        self._canvas_width = round(0.7 * self._person_height)
        canvas_height = round((_FEET_IN_CANVAS + 0.1) * self._person_height)
        self._sprites = _build_sprites(self._person_height, self._canvas_width, canvas_height, rng, window_left)
        self._layout_text()

    def _layout_text(self) -> None:
        """Fix font size and positions once; they only depend on the frame size."""
        width_at_unit_scale = cv2.getTextSize(_CLOCK_SAMPLE, _FONT, 1.0, 1)[0][0]
        # Readable at small sizes, but never wider than most of the frame.
        scale = min(max(self.height / 720 * 0.8, 0.3), 0.6 * self.width / width_at_unit_scale)
        self._clock_scale = scale
        self._label_scale = 0.75 * scale
        self._thickness = max(1, round(1.5 * scale))
        self._text_shadow = max(1, round(scale))
        margin = max(3, round(0.02 * self.height))
        (_, clock_h), _ = cv2.getTextSize(_CLOCK_SAMPLE, _FONT, scale, self._thickness)
        self._clock_origin = (margin, margin + clock_h)
        (label_w, _), label_base = cv2.getTextSize(_LABEL, _FONT, self._label_scale, self._thickness)
        label_x = self.width - margin - label_w - self._text_shadow
        self._label_origin = (label_x, self.height - margin - label_base - self._text_shadow)

    def render(self, t: float, clock_ts: float) -> np.ndarray:
        """BGR uint8 array of shape (height, width, 3).

        ``t`` (seconds since capture start) drives the person and the noise;
        ``clock_ts`` (wall-clock epoch seconds) only drives the on-screen
        clock, so tests can hold one still while varying the other.
        """
        frame = self._background.copy()
        placement = self._placement(t)
        if placement is not None:
            sprite, x, y = placement
            self._paste(frame, sprite, x, y)
        # Noise goes on after the person (it is sensor noise) but before the
        # text, which a real camera overlays digitally.
        added, subtracted = self._noise(t)
        cv2.add(frame, added, dst=frame)
        cv2.subtract(frame, subtracted, dst=frame)
        clock = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(clock_ts))
        self._text(frame, clock, self._clock_origin, self._clock_scale)
        self._text(frame, _LABEL, self._label_origin, self._label_scale)
        return frame

    def _noise(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """The noise to add and to subtract at time t: frame-sized windows into the banks.

        Choosing an image and a shifted window from each bank gives about a
        quarter of a million combinations, so frames practically never repeat
        their noise, and slicing costs nothing.
        """
        key = _mix(self.seed, round(t * 1000))
        windows = []
        for bank in (self._noise_added, self._noise_subtracted):
            key, index = divmod(key, len(bank))
            key, dy = divmod(key, _NOISE_SHIFTS)
            key, dx = divmod(key, _NOISE_SHIFTS)
            windows.append(bank[index][dy : dy + self.height, dx : dx + self.width])
        return windows[0], windows[1]

    def object_box(self, t: float) -> tuple[int, int, int, int] | None:
        """Ground truth: (x, y, w, h) of the moving object in pixels at time t, or None when it is out of frame.

        The box is the visible part of exactly the pixels render() blends the
        person (and its contact shadow) into, so detectors can be scored
        against it.
        """
        placement = self._placement(t)
        if placement is None:
            return None
        rect = self._visible_rect(*placement)
        if rect is None:
            return None
        x0, y0, x1, y1 = rect
        return x0, y0, x1 - x0, y1 - y0

    def _placement(self, t: float) -> tuple[_Sprite, int, int] | None:
        """Pose and top-left pixel of the person at time t, or None between crossings.

        Shared by render() and object_box() so the two can never disagree.
        """
        since_first = t - FIRST_ENTRY_SECONDS
        if since_first < 0:
            return None
        cycle = math.floor(since_first / CYCLE_SECONDS)
        progress = (since_first - cycle * CYCLE_SECONDS) / CROSSING_SECONDS
        if progress >= 1:
            return None
        # The uncropped canvas starts fully outside one edge and ends fully
        # outside the other, so entering and leaving are both visible.
        travel = progress * (self.width + self._canvas_width)
        leftward = cycle % 2 == 1
        canvas_x = self.width - travel if leftward else travel - self._canvas_width
        # Each crossing follows its own slightly slanted, gently wavy line on
        # the floor, so consecutive crossings are not pixel-identical.
        depth = (_unit(self.seed, cycle, 1) - 0.5) * 0.06
        slant = (_unit(self.seed, cycle, 2) - 0.5) * 0.12
        wave = 0.015 * math.sin(2 * math.pi * (progress + _unit(self.seed, cycle, 3)))
        ground = (0.86 + depth + slant * (progress - 0.5) + wave) * self.height
        canvas_y = ground - _FEET_IN_CANVAS * self._person_height
        # Step with the distance walked rather than with time, so the feet do
        # not slide whatever the frame size.
        gait = travel / (0.9 * self._person_height)
        sprite = self._sprites[leftward][int(gait * _GAIT_PHASES) % _GAIT_PHASES]
        return sprite, round(canvas_x) + sprite.dx, round(canvas_y) + sprite.dy

    def _visible_rect(self, sprite: _Sprite, x: int, y: int) -> tuple[int, int, int, int] | None:
        """Corners (x0, y0, x1, y1) of the part of a sprite at (x, y) that lies inside the frame."""
        sprite_h, sprite_w = sprite.inverse_alpha.shape[:2]
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + sprite_w, self.width), min(y + sprite_h, self.height)
        if x0 >= x1 or y0 >= y1:
            return None
        return x0, y0, x1, y1

    def _paste(self, frame: np.ndarray, sprite: _Sprite, x: int, y: int) -> None:
        """Alpha-blend a sprite into frame in place, clipped to the frame."""
        rect = self._visible_rect(sprite, x, y)
        if rect is None:
            return
        x0, y0, x1, y1 = rect
        rows, cols = slice(y0 - y, y1 - y), slice(x0 - x, x1 - x)
        region = frame[y0:y1, x0:x1]
        blended = region * sprite.inverse_alpha[rows, cols] + sprite.premultiplied[rows, cols]
        # premultiplied <= 255 * alpha, so blended + 0.5 truncates to <= 255.
        region[:] = (blended + 0.5).astype(np.uint8)

    def _text(self, frame: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
        """White text with a drop shadow, legible on the bright window too.

        A shadow rather than a thicker dark outline, because OpenCV advances
        glyphs by their thickness and a thick outline drifts away from the text.
        """
        x, y = origin
        shadow_origin = (x + self._text_shadow, y + self._text_shadow)
        cv2.putText(frame, text, shadow_origin, _FONT, scale, (0, 0, 0), self._thickness, cv2.LINE_AA)
        cv2.putText(frame, text, origin, _FONT, scale, (255, 255, 255), self._thickness, cv2.LINE_AA)


def _build_noise_bank(width: int, height: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Slightly oversized images of non-negative noise.

    A frame adds a window of one bank and subtracts a window of a second
    bank. Storing half-normal magnitudes instead of signed noise lets plain
    saturating uint8 add/subtract apply it, and shifted windows give endless
    variety from a few stored images, which matters at 1920x1080 (6 MB per
    image). The banks are separate so that a window added in one frame is
    never subtracted in the next, which would double the frame-to-frame
    difference.
    """
    # The difference of two half-normals with scale s has std s*sqrt(2 - 4/pi).
    scale = _NOISE_SIGMA / math.sqrt(2 - 4 / math.pi)
    # Random bytes mapped through the half-normal's inverse CDF: several times
    # faster than drawing normals, which dominated start-up at 1920x1080.
    grid = np.linspace(0, 6, 1201)
    cdf = np.array([math.erf(x / math.sqrt(2)) for x in grid])
    lut = np.round(scale * np.interp((np.arange(256) + 0.5) / 256, cdf, grid)).astype(np.uint8)
    return [
        cv2.LUT(rng.integers(0, 256, (height + _NOISE_SHIFTS - 1, width + _NOISE_SHIFTS - 1, 3), dtype=np.uint8), lut)
        for _ in range(_NOISE_IMAGES_PER_SIGN)
    ]


def _build_background(width: int, height: int, rng: np.random.Generator, window_left: bool) -> np.ndarray:
    """A lit room: wall, window, bookcase, picture, plant, wooden floor and rug.

    Drawn in float so lighting, texture and vignetting can be multiplied in
    before a single rounding; the final blur stands in for lens softness and
    hides the hard edges of the drawing primitives.
    """
    w, h = width, height
    img = np.zeros((h, w, 3), np.float32)

    def px(fx: float) -> int:
        return round(fx * w)

    def py(fy: float) -> int:
        return round(fy * h)

    def jitter(colour: tuple[float, float, float], amount: float) -> tuple[float, float, float]:
        b, g, r = (np.array(colour) * rng.uniform(1 - amount, 1 + amount, 3)).tolist()
        return b, g, r

    line = max(1, round(h / 240))
    floor_y = py(rng.uniform(0.6, 0.66))
    wall = jitter([(170, 190, 205), (185, 195, 190), (150, 170, 190), (200, 200, 200)][rng.integers(4)], 0.08)
    img[:floor_y] = wall

    # Floor: boards whose seams get further apart towards the camera.
    wood = jitter((70, 110, 150), 0.15)
    img[floor_y:] = wood
    boards = 9
    for i in range(boards):
        top = floor_y + round((h - floor_y) * (i / boards) ** 1.6)
        bottom = floor_y + round((h - floor_y) * ((i + 1) / boards) ** 1.6)
        img[top:bottom] *= rng.uniform(0.92, 1.08)
        img[top : top + line] *= 0.7
    cv2.ellipse(img, (px(0.5), py(0.86)), (px(0.26), py(0.07)), 0, 0, 360, jitter((60, 50, 130), 0.4), -1)
    cv2.rectangle(img, (0, floor_y - py(0.025)), (w, floor_y), (225, 228, 230), -1)

    # Window on one side, bookcase on the other.
    wx0 = px(rng.uniform(0.06, 0.12)) if window_left else px(rng.uniform(0.6, 0.66))
    wx1, wy0, wy1 = wx0 + px(0.26), py(0.12), py(0.44)
    sky_top, sky_bottom = np.array((235, 195, 140), np.float32), np.array((250, 240, 225), np.float32)
    ramp = np.linspace(0, 1, wy1 - wy0, dtype=np.float32)[:, None, None]
    img[wy0:wy1, wx0:wx1] = sky_top + (sky_bottom - sky_top) * ramp
    pane = img[wy0:wy1, wx0:wx1]
    for _ in range(5):  # hedge outside
        centre = (round(rng.uniform(0, wx1 - wx0)), wy1 - wy0 + py(rng.uniform(0.0, 0.06)))
        cv2.circle(pane, centre, py(rng.uniform(0.08, 0.13)), jitter((60, 120, 70), 0.2), -1)
    frame_colour = (235, 235, 232)
    frame_w = max(1, round(h / 120))
    cv2.rectangle(img, (wx0, wy0), (wx1, wy1), frame_colour, frame_w)
    cv2.line(img, ((wx0 + wx1) // 2, wy0), ((wx0 + wx1) // 2, wy1), frame_colour, frame_w)
    cv2.line(img, (wx0, (wy0 + wy1) // 2), (wx1, (wy0 + wy1) // 2), frame_colour, frame_w)
    cv2.rectangle(img, (wx0 - px(0.01), wy1), (wx1 + px(0.01), wy1 + py(0.02)), (215, 218, 220), -1)

    bx0 = px(rng.uniform(0.7, 0.76)) if window_left else px(rng.uniform(0.05, 0.1))
    bx1, by0 = bx0 + px(0.2), py(0.2)
    shelf_wood = jitter((45, 70, 105), 0.2)
    cv2.rectangle(img, (bx0, by0), (bx1, floor_y), shelf_wood, -1)
    inner_x0, inner_x1 = bx0 + max(1, px(0.008)), bx1 - max(1, px(0.008))
    shelves = 4
    shelf_h = (floor_y - by0) / shelves
    for s in range(shelves):
        top = round(by0 + s * shelf_h) + max(1, py(0.01))
        bottom = round(by0 + (s + 1) * shelf_h)
        cv2.rectangle(img, (inner_x0, top), (inner_x1, bottom), np.multiply(shelf_wood, 0.55).tolist(), -1)
        x = inner_x0 + round(rng.uniform(0, 0.02) * w)
        while True:
            book_w = max(1, px(rng.uniform(0.007, 0.018)))
            if x + book_w > inner_x1:
                break
            book_top = bottom - round((bottom - top) * rng.uniform(0.6, 0.95))
            colour = cv2.cvtColor(
                np.uint8([[[rng.integers(180), rng.integers(60, 200), rng.integers(70, 200)]]]), cv2.COLOR_HSV2BGR
            )[0, 0].tolist()
            cv2.rectangle(img, (x, book_top), (x + book_w - 1, bottom), colour, -1)
            x += book_w + (px(rng.uniform(0.01, 0.03)) if rng.random() < 0.1 else 0)

    # Framed picture and a potted plant between window and bookcase.
    mid = (max(wx1, bx1) + min(wx0, bx0)) // 2
    fx0, fx1, fy0, fy1 = mid - px(0.07), mid + px(0.07), py(0.18), py(0.34)
    cv2.rectangle(img, (fx0, fy0), (fx1, fy1), (30, 35, 40), -1)
    mat = max(1, px(0.008))
    art_split = (fy0 + fy1) // 2 + py(0.02)
    cv2.rectangle(img, (fx0 + mat, fy0 + mat), (fx1 - mat, art_split), jitter((200, 170, 120), 0.2), -1)
    cv2.rectangle(img, (fx0 + mat, art_split), (fx1 - mat, fy1 - mat), jitter((70, 140, 110), 0.2), -1)
    cv2.circle(img, (fx0 + (fx1 - fx0) * 2 // 3, fy0 + (fy1 - fy0) // 3), max(1, py(0.025)), (90, 200, 240), -1)
    plant_x = (wx1 + px(0.06)) if window_left else (wx0 - px(0.06))
    pot_top = floor_y - py(0.07)
    pot = np.array(
        [
            (plant_x - px(0.025), pot_top),
            (plant_x + px(0.025), pot_top),
            (plant_x + px(0.018), floor_y + py(0.01)),
            (plant_x - px(0.018), floor_y + py(0.01)),
        ],
        np.int32,
    )
    cv2.fillPoly(img, [pot], (50, 80, 160))
    for _ in range(9):
        leaf = (plant_x + px(rng.uniform(-0.035, 0.035)), pot_top - py(rng.uniform(0.0, 0.12)))
        cv2.circle(img, leaf, max(1, py(rng.uniform(0.02, 0.035))), jitter((50, 110, 50), 0.25), -1)

    # Lighting: daylight from the window falls off across the room.
    xs = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    ys = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    window_x = ((wx0 + wx1) / 2) / w
    img *= 0.78 + 0.35 * np.exp(-(((xs - window_x) / 0.45) ** 2))
    img *= 0.95 + 0.1 * ys

    # Texture: low-frequency blotches plus fine grain, then lens vignetting.
    blotches = cv2.resize(rng.standard_normal((9, 12), dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    img *= (1 + 0.05 * blotches)[:, :, None]
    grain = rng.standard_normal((max(2, h // 4), max(2, w // 4)), dtype=np.float32)
    img += 3 * cv2.resize(grain, (w, h), interpolation=cv2.INTER_LINEAR)[:, :, None]
    img *= 1 - 0.3 * ((xs - 0.5) ** 2 + (ys - 0.5) ** 2) * 2
    sigma = max(0.5, 0.8 * h / 720)
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _build_sprites(
    person_height: float, canvas_w: int, canvas_h: int, rng: np.random.Generator, window_left: bool
) -> tuple[list[_Sprite], list[_Sprite]]:
    """Walking poses facing right and facing left, lit from the window side."""
    skin = [(150, 180, 225), (110, 145, 195), (75, 100, 145), (55, 75, 105)][rng.integers(4)]
    shirt = cv2.cvtColor(
        np.uint8([[[rng.integers(180), rng.integers(140, 230), rng.integers(130, 210)]]]), cv2.COLOR_HSV2BGR
    )[0, 0].tolist()
    trousers = [(110, 70, 40), (55, 55, 60), (120, 160, 180), (35, 35, 40)][rng.integers(4)]
    hair = [(25, 30, 40), (40, 60, 95), (70, 120, 160)][rng.integers(3)]
    colours = {"skin": skin, "shirt": shirt, "trousers": trousers, "hair": hair, "shoes": (30, 30, 32)}
    rightward, leftward = [], []
    for phase in range(_GAIT_PHASES):
        colour, mask, shadow = _draw_pose(phase / _GAIT_PHASES, person_height, canvas_w, canvas_h, colours)
        rightward.append(_finish_sprite(colour, mask, shadow, light_from_left=window_left))
        leftward.append(_finish_sprite(colour[:, ::-1], mask[:, ::-1], shadow[:, ::-1], light_from_left=window_left))
    return rightward, leftward


def _draw_pose(
    phase: float, person_height: float, canvas_w: int, canvas_h: int, colours: dict[str, tuple]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Side view of a right-facing walker at one gait phase, at final resolution.

    Drawn supersampled and area-averaged down, which gives soft, correctly
    anti-aliased edges in both colour and alpha. Angles are measured from
    straight down, positive towards the walking direction.
    """
    s = _SUPERSAMPLE
    unit = person_height * s
    colour = np.zeros((canvas_h * s, canvas_w * s, 3), np.float32)
    mask = np.zeros((canvas_h * s, canvas_w * s), np.float32)
    shadow = np.zeros_like(mask)
    cx = canvas_w * s / 2
    swing = 2 * math.pi * phase

    def limb(start: tuple[float, float], angle: float, length: float) -> tuple[float, float]:
        return start[0] + length * unit * math.sin(angle), start[1] + length * unit * math.cos(angle)

    def leg(offset: float) -> tuple[tuple[float, float], ...]:
        thigh = 0.42 * math.sin(swing + offset)
        knee_bend = 0.6 * max(0.0, math.cos(swing + offset))  # the knee folds while the leg swings forward
        hip = (cx, 0.52 * unit)
        knee = limb(hip, thigh, 0.24)
        ankle = limb(knee, thigh - knee_bend, 0.23)
        return hip, knee, ankle, (ankle[0] + 0.07 * unit, ankle[1])

    def arm(offset: float) -> tuple[tuple[float, float], ...]:
        upper = -0.35 * math.sin(swing + offset)
        shoulder = (cx, 0.18 * unit)
        elbow = limb(shoulder, upper, 0.16)
        return shoulder, elbow, limb(elbow, upper + 0.35, 0.15)

    legs = [leg(0.0), leg(math.pi)]
    arms = [arm(0.0), arm(math.pi)]
    shoe_w = 0.045 * unit
    # Move the body so the lower foot stands on the ground line: this is what
    # makes the walker bob up and down naturally.
    ground = _FEET_IN_CANVAS * unit
    lift = ground - max(p[3][1] for p in legs) - shoe_w / 2

    def pt(p: tuple[float, float]) -> tuple[int, int]:
        return round(p[0]), round(p[1] + lift)

    def paint(draw: Callable[[np.ndarray, tuple], object], bgr: tuple, darken: float = 1.0) -> None:
        draw(colour, tuple(c * darken for c in bgr))
        draw(mask, (1.0,))

    def paint_leg(joints: tuple, darken: float) -> None:
        hip, knee, ankle, toe = (pt(p) for p in joints)
        thick = round(0.075 * unit)
        paint(lambda im, c: cv2.line(im, hip, knee, c, thick), colours["trousers"], darken)
        paint(lambda im, c: cv2.line(im, knee, ankle, c, round(0.065 * unit)), colours["trousers"], darken)
        paint(lambda im, c: cv2.line(im, ankle, toe, c, round(shoe_w)), colours["shoes"], darken)

    def paint_arm(joints: tuple, darken: float) -> None:
        shoulder, elbow, hand = (pt(p) for p in joints)
        paint(lambda im, c: cv2.line(im, shoulder, elbow, c, round(0.055 * unit)), colours["shirt"], darken)
        paint(lambda im, c: cv2.line(im, elbow, hand, c, round(0.045 * unit)), colours["shirt"], darken)
        paint(lambda im, c: cv2.circle(im, hand, round(0.028 * unit), c, -1), colours["skin"], darken)

    cv2.ellipse(shadow, (round(cx), round(ground)), (round(0.17 * unit), round(0.022 * unit)), 0, 0, 360, 1.0, -1)
    # Far-side limbs first and darker, so the figure reads as three-dimensional.
    paint_arm(arms[1], 0.7)
    paint_leg(legs[1], 0.7)
    neck = pt((cx, 0.11 * unit)), pt((cx, 0.17 * unit))
    paint(lambda im, c: cv2.line(im, *neck, c, round(0.05 * unit)), colours["skin"])
    torso = np.array(
        [
            pt((cx - 0.06 * unit, 0.2 * unit)),
            pt((cx + 0.07 * unit, 0.2 * unit)),
            pt((cx + 0.065 * unit, 0.55 * unit)),
            pt((cx - 0.065 * unit, 0.55 * unit)),
        ],
        np.int32,
    )
    paint(lambda im, c: cv2.fillPoly(im, [torso], c), colours["shirt"])
    chest_axes = (round(0.066 * unit), round(0.06 * unit))
    paint(
        lambda im, c: cv2.ellipse(im, pt((cx + 0.005 * unit, 0.21 * unit)), chest_axes, 0, 0, 360, c, -1),
        colours["shirt"],
    )
    head = pt((cx + 0.01 * unit, 0.075 * unit))
    paint(lambda im, c: cv2.circle(im, head, round(0.066 * unit), c, -1), colours["skin"])
    hair_axes = (round(0.068 * unit), round(0.05 * unit))
    paint(lambda im, c: cv2.ellipse(im, head, hair_axes, -20, 150, 360, c, -1), colours["hair"])
    paint_leg(legs[0], 1.0)
    paint_arm(arms[0], 1.0)

    size = (canvas_w, canvas_h)
    premultiplied = cv2.resize(colour * mask[:, :, None], size, interpolation=cv2.INTER_AREA)
    return (
        premultiplied,
        cv2.resize(mask, size, interpolation=cv2.INTER_AREA),
        cv2.resize(shadow, size, interpolation=cv2.INTER_AREA),
    )


def _finish_sprite(premultiplied: np.ndarray, mask: np.ndarray, shadow: np.ndarray, light_from_left: bool) -> _Sprite:
    """Light the pose, add its contact shadow and crop it to the changed pixels."""
    h, w = mask.shape
    across = np.linspace(0, 1, w, dtype=np.float32)
    if not light_from_left:
        across = across[::-1]
    down = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    light = (1.15 - 0.35 * across)[None, :] * (1.05 - 0.15 * down)
    premultiplied = np.minimum(premultiplied * light[:, :, None], 255 * mask[:, :, None])
    alpha = mask + (1 - mask) * 0.45 * shadow
    # Pixels that would change by well under one grey level are dropped so
    # the crop (the ground-truth box) hugs what is actually visible.
    visible = alpha >= 0.02
    alpha = np.where(visible, alpha, 0)
    rows = np.flatnonzero(visible.any(axis=1))
    cols = np.flatnonzero(visible.any(axis=0))
    crop = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    return _Sprite(
        premultiplied=np.ascontiguousarray((premultiplied * visible[:, :, None])[crop], np.float32),
        inverse_alpha=np.ascontiguousarray((1 - alpha)[crop][:, :, None], np.float32),
        dx=int(cols[0]),
        dy=int(rows[0]),
    )
