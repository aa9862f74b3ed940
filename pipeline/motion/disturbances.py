"""Changes between two frames that are not motion: sensor noise, light on part of the picture, a shaken camera.

Each is recognised on the detector's small, blurred grayscale analysis images, and only when a
frame would otherwise count as motion, so a calm scene costs nothing extra:

- ``NoiseLevel`` follows how much calm frames differ (the mean absolute difference, as Motion's
  ``noise_tune`` does), so the per-pixel threshold can stay above a camera's own noise.
- ``lit_pixels`` finds regions whose changed pixels all brightened or darkened by a similar factor:
  a lamp, a shadow, a cloud's edge. A person changes pixels by wildly different factors (skin,
  clothes, the wall behind), light multiplies a whole region by one. It works per cell of a
  coarse grid, and a cell next to a lit one joins it with fewer changed pixels, so the soft edge
  of a lamp's light is lighting too.
- ``global_shift`` estimates by phase correlation how far the whole picture moved; a frame whose
  difference vanishes once the previous one is shifted back is camera shake.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

GRID = (8, 6)  # cells across and down for lighting changes
# A lit cell: at least LIT_SHARE of it changed, by factors whose logs have a standard deviation of
# at most LIT_SPREAD (a lamp's soft edge spreads them a little; a walker's cells measure 0.14 and
# up, but only a tenth of a cell changes); or, joined to lit cells, at least LIT_NEIGHBOUR_SHARE
# changed with a spread of at most LIT_NEIGHBOUR_SPREAD.
LIT_SHARE, LIT_SPREAD = 0.4, 0.2
LIT_NEIGHBOUR_SHARE, LIT_NEIGHBOUR_SPREAD = 0.02, 0.12
NOISE_EMA = 0.05  # weight of each calm frame in the noise level
SHAKE_MIN_RESPONSE = 0.2  # phase correlation peak below this: no single shift explains the change
SHAKE_MAX_SHARE = 0.02  # a shift of more than this share of the width is not shake (the camera moved)
# Shake moves every edge in the picture: it is looked for only when at least SHAKE_CELLS of the cells
# have SHAKE_CELL_SHARE of their pixels changed (a walker touches a few cells).
SHAKE_CELLS, SHAKE_CELL_SHARE = 0.3, 0.01
_NEIGHBOURS = np.ones((3, 3), np.uint8)


class NoiseLevel:
    """The mean absolute difference between calm frames, followed as an exponential moving average."""

    def __init__(self) -> None:
        self.level: float | None = None

    def update(self, mean_difference: float) -> None:
        if self.level is None:
            self.level = mean_difference
        else:
            self.level += NOISE_EMA * (mean_difference - self.level)


def cell_shares(changed: np.ndarray) -> np.ndarray:
    """The share of each grid cell's pixels that changed, 0 to 1."""
    return cv2.resize(changed, GRID, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def spread_out(changed: np.ndarray) -> bool:
    """Whether change touches at least SHAKE_CELLS of the grid's cells, as a shaken picture's edges do."""
    return float(np.mean(cell_shares(changed) >= SHAKE_CELL_SHARE)) >= SHAKE_CELLS


def lit_pixels(current: np.ndarray, previous: np.ndarray, changed: np.ndarray) -> np.ndarray | None:
    """The changed pixels that belong to lighting changes, as a 0/255 mask; None when there are none."""
    share = cell_shares(changed)
    if not (share >= LIT_SHARE).any():  # a walker never changes this much of a cell: no work for most motion
        return None
    height, width = changed.shape
    mask = (changed > 0).astype(np.float32)
    # The log of each pixel's factor, so that a light going off spreads as little as one coming on.
    factor = cv2.log((current.astype(np.float32) + 1.0) / (previous.astype(np.float32) + 1.0))
    weight = np.maximum(share, 1e-6)
    mean = cv2.resize(factor * mask, GRID, interpolation=cv2.INTER_AREA) / weight
    square = cv2.resize(factor * factor * mask, GRID, interpolation=cv2.INTER_AREA) / weight
    spread = np.sqrt(np.maximum(square - mean * mean, 0.0))
    lit = (share >= LIT_SHARE) & (spread <= LIT_SPREAD)
    if not lit.any():
        return None
    joinable = (share >= LIT_NEIGHBOUR_SHARE) & (spread <= LIT_NEIGHBOUR_SPREAD)
    for _ in range(max(GRID)):  # grow the lit cells through joinable neighbours (a lamp's light fading out)
        grown = lit | (joinable & cv2.dilate(lit.astype(np.uint8), _NEIGHBOURS).astype(bool))
        if (grown == lit).all():
            break
        lit = grown
    cells = cv2.resize(lit.astype(np.uint8) * 255, (width, height), interpolation=cv2.INTER_NEAREST)
    return cv2.bitwise_and(cells, changed)


def global_shift(previous: np.ndarray, current: np.ndarray) -> tuple[float, float] | None:
    """How far the whole picture moved from ``previous`` to ``current``, in their pixels; None if no shift explains it.

    Phase correlation on half-size images: a few FFTs of a picture smaller than a thumbnail.
    """
    height, width = current.shape
    size = (width // 2, height // 2)
    window = _hanning(size)
    before = cv2.resize(previous, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    after = cv2.resize(current, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    (dx, dy), response = cv2.phaseCorrelate(before, after, window)
    dx, dy = 2 * dx, 2 * dy
    if response < SHAKE_MIN_RESPONSE or max(abs(dx), abs(dy)) > SHAKE_MAX_SHARE * width or abs(dx) + abs(dy) < 0.5:
        return None
    return dx, dy


@functools.cache
def _hanning(size: tuple[int, int]) -> np.ndarray:
    return cv2.createHanningWindow(size, cv2.CV_32F)


def steadied_difference(current: np.ndarray, previous: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """How much each pixel of ``current`` differs from ``previous`` moved by (dx, dy), give or take a pixel.

    A pixel counts only by how far it lies outside the range of the moved picture's 3x3
    neighbourhood, so the estimate's sub-pixel error and the blur along edges vanish while a
    walker, who is nowhere in the previous picture, stays.
    """
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    moved = cv2.warpAffine(previous, matrix, (previous.shape[1], previous.shape[0]), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    above = cv2.subtract(current, cv2.dilate(moved, _NEIGHBOURS))
    below = cv2.subtract(cv2.erode(moved, _NEIGHBOURS), current)
    return cv2.max(above, below)
