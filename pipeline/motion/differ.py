"""Motion detection, free of sockets and clocks: how much of the picture changed since the last frame.

``FrameDiffer`` says how much of the picture changed since the previous frame. It works on a
grayscale image decoded straight from the JPEG at 1/2, 1/4 or 1/8 size (libjpeg skips most of
the work at reduced scale), so its cost hardly grows with the camera's resolution and one
percentage threshold means the same at every resolution.

Each frame's verdict goes on to pipeline.motion.episodes, which builds episodes from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from pipeline.motion.disturbances import NoiseLevel, global_shift, lit_pixels, spread_out, steadied_difference

# Smallest width the analysis image may have: enough for a person across a room at 1080p.
ANALYSIS_MIN_WIDTH = 240
_REDUCED_FLAGS = {
    1: cv2.IMREAD_GRAYSCALE,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}
_BLUR = (5, 5)
# --noise-tune: the per-pixel threshold is --pixel-threshold at this brightness and above, lower below,
MID_GREY = 128.0
# never under this many grey levels, and at least this many times the mean difference of calm frames.
MIN_PIXEL_THRESHOLD = 4.0
NOISE_MARGIN = 6.0
_DILATE = np.ones((3, 3), np.uint8)

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class MotionSettings:
    """The detector's tunables; their defaults and meaning are options in pipeline.config.options."""

    threshold: float
    pixel_threshold: int
    min_area: int
    lightswitch_percent: float
    stable_frames: int
    min_motion_frames: int
    noise_tune: bool = True
    local_light: bool = True
    shake: bool = True
    mask_rects: tuple[Box, ...] = ()
    mask_image: np.ndarray | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Measurement:
    """How one frame differs from the one before it.

    ``delta`` is the percentage of the unmasked picture that changed, after compensating for a
    change of overall brightness and leaving out lighting changes over part of it; ``changed``
    is the same without either, which is what reveals a light switch. ``ignored`` names the rule
    that kept a changed frame from counting as motion: ``lightswitch`` (most of the picture),
    ``local_light`` (``lit`` percent of it) or ``shake`` (the picture moved by ``shift`` frame pixels).
    """

    delta: float
    changed: float
    significant: bool
    boxes: list[Box]
    pixel_threshold: float = 0.0
    ignored: str | None = None
    lit: float = 0.0
    shift: tuple[float, float] | None = None


def reduction_for(width: int) -> int:
    """The largest JPEG scale-down that still leaves ANALYSIS_MIN_WIDTH pixels across."""
    factor = 1
    for candidate in (2, 4, 8):
        if width // candidate >= ANALYSIS_MIN_WIDTH:
            factor = candidate
    return factor


class FrameDiffer:
    """Compares each frame of one camera with the previous frame it was given."""

    def __init__(self, settings: MotionSettings) -> None:
        self.settings = settings
        self._size: tuple[int, int] | None = None
        self._factor = 1
        self._shape: tuple[int, ...] = ()
        # Zero where the picture is masked out; None when nothing is, which saves an AND per frame.
        self._mask: np.ndarray | None = None
        self._valid_count = 0
        self._previous: np.ndarray | None = None
        self._previous_mean = 0.0
        self._noise = NoiseLevel()

    def measure(self, jpeg: bytes, width: int, height: int) -> Measurement | None:
        """The difference from the previous frame; None for a first frame or one of a new size.

        Raises ValueError for bytes that do not decode as a JPEG.
        """
        if self._size != (width, height):
            self._configure(width, height)
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), _REDUCED_FLAGS[self._factor])
        if image is None:
            raise ValueError("frame does not decode as a JPEG")
        if image.shape != self._shape:
            raise ValueError(f"frame decodes to {image.shape[1]}x{image.shape[0]}, not the size its header says")
        current = cv2.GaussianBlur(image, _BLUR, 0)
        if self._mask is not None:
            # Masked pixels are zero in every frame, so they never differ: one AND per frame instead of one per test.
            cv2.bitwise_and(current, self._mask, dst=current)
        current_mean = cv2.sumElems(current)[0] / self._valid_count
        previous, previous_mean = self._previous, self._previous_mean
        self._previous, self._previous_mean = current, current_mean
        if previous is None:
            return None

        before = previous
        raw = cv2.absdiff(current, before)
        if previous_mean > 1.0:
            previous = cv2.convertScaleAbs(previous, alpha=current_mean / previous_mean)
        difference = cv2.absdiff(current, previous)
        s = self.settings
        pixel_threshold = self._pixel_threshold(current_mean)
        raw_mask = self._changed_mask(raw, pixel_threshold)
        changed = self._percent(raw_mask)
        changed_mask = self._changed_mask(difference, pixel_threshold)
        delta = self._percent(changed_mask)
        ignored, lit, shift = None, 0.0, None
        if s.lightswitch_percent > 0 and changed >= s.lightswitch_percent:
            ignored = "lightswitch"
        elif delta > s.threshold and s.local_light:
            # Against the uncompensated frame: brightness compensation would spread a lamp's light
            # over the whole picture, as a darkening of everything it does not light.
            lit_mask = lit_pixels(current, before, raw_mask)
            if lit_mask is not None:
                lit = self._percent(lit_mask)
                changed_mask = cv2.subtract(raw_mask, lit_mask)
                delta = self._percent(changed_mask)
                ignored = "local_light" if delta <= s.threshold else None
        if delta > s.threshold and s.shake and spread_out(changed_mask):
            shift = global_shift(previous, current)
            if shift is not None:
                steadied = self._changed_mask(steadied_difference(current, previous, *shift), pixel_threshold)
                margin = int(max(abs(shift[0]), abs(shift[1]))) + 2  # the edges the shift brought in
                steadied[:margin], steadied[-margin:], steadied[:, :margin], steadied[:, -margin:] = 0, 0, 0, 0
                if self._percent(steadied) <= s.threshold:
                    ignored, delta = "shake", self._percent(steadied)
                else:
                    shift = None
        significant = delta > s.threshold and ignored is None
        if not significant and ignored is None:
            # masked pixels are 0 in both frames; the mean over the unmasked ones is what noise is
            self._noise.update(cv2.sumElems(difference)[0] / self._valid_count)
        boxes = self._boxes(changed_mask) if significant else []
        f = self._factor
        return Measurement(round(delta, 3), round(changed, 3), significant, boxes,
                           round(pixel_threshold, 1), ignored, round(lit, 3),
                           None if shift is None else (round(shift[0] * f, 1), round(shift[1] * f, 1)))

    def _pixel_threshold(self, brightness: float) -> float:
        """Grey levels a pixel must change by: --pixel-threshold, lower in a dark picture, never within the noise.

        A dark picture shows a person with less contrast (half the light, half the difference), so
        the threshold follows the brightness below mid-grey; and it stays NOISE_MARGIN times above
        the mean difference of calm frames, so a noisy camera does not see motion in its own noise.
        """
        s = self.settings
        if not s.noise_tune:
            return float(s.pixel_threshold)
        threshold = s.pixel_threshold * min(1.0, max(brightness, 1.0) / MID_GREY)
        if self._noise.level is not None:
            threshold = max(threshold, NOISE_MARGIN * self._noise.level)
        return min(max(threshold, MIN_PIXEL_THRESHOLD), 255.0)

    def reset(self) -> None:
        """Forget the previous frame, e.g. when capture restarted and the scene may have moved on."""
        self._previous = None

    def _configure(self, width: int, height: int) -> None:
        """Start afresh at a new frame size: reduction, mask and reference frame all depend on it."""
        self._size = (width, height)
        self._factor = reduction_for(width)
        f = self._factor
        small = (-(-width // f), -(-height // f))
        valid = np.full((small[1], small[0]), 255, np.uint8)
        if self.settings.mask_image is not None:
            keep = cv2.resize(self.settings.mask_image, small, interpolation=cv2.INTER_AREA)
            valid[keep < 128] = 0
        for x, y, w, h in self.settings.mask_rects:
            valid[y // f:-(-(y + h) // f), x // f:-(-(x + w) // f)] = 0
        self._valid_count = max(1, cv2.countNonZero(valid))
        self._shape = valid.shape
        self._mask = valid if self._valid_count < valid.size else None
        self._previous = None

    @staticmethod
    def _changed_mask(difference: np.ndarray, pixel_threshold: float) -> np.ndarray:
        return cv2.threshold(difference, pixel_threshold, 255, cv2.THRESH_BINARY)[1]

    def _percent(self, mask: np.ndarray) -> float:
        return 100.0 * cv2.countNonZero(mask) / self._valid_count

    def _boxes(self, changed_mask: np.ndarray) -> list[Box]:
        """Bounding boxes of the changed regions, in full-frame pixels, largest first."""
        f = self._factor
        assert self._size is not None
        width, height = self._size
        grown = cv2.dilate(changed_mask, _DILATE, iterations=2)
        # Outer contours cost a tenth of labelling every component with its statistics; a region
        # inside another's outline is inside its box too.
        contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes = []
        for contour in contours:
            if cv2.contourArea(contour) * f * f >= self.settings.min_area:
                x, y, w, h = cv2.boundingRect(contour)
                boxes.append((x * f, y * f, min(w * f, width - x * f), min(h * f, height - y * f)))
        return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)
