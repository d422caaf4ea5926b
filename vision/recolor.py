"""Garment recolouring in Lab: move hue and chroma, keep the lightness structure.

The garment's own lightness variations (folds, shading, knit texture) are kept
exactly: new L = new mean + (L - old mean) * gain. Only the mean is pulled
toward the target's lightness (partly, so a black top turned red still reads as
a dark fabric in red, and a white one turned navy still shows its folds). The
chroma is replaced by the target's, slightly modulated by the local lightness so
shadows are less saturated, as real dyed cloth is. Work is done only inside the
matte's bounding box.
"""

from __future__ import annotations

import cv2
import numpy as np

LIGHTNESS_PULL = 0.75    # share of the way the mean lightness moves to the target's


def target_lab(bgr: tuple[int, int, int]) -> np.ndarray:
    """Target colour in OpenCV's 8-bit Lab (L 0..255, a/b offset by 128), as float32."""
    return cv2.cvtColor(np.array([[bgr]], np.uint8), cv2.COLOR_BGR2Lab)[0, 0].astype(np.float32)


def _bbox(alpha: np.ndarray, thresh: float = 0.02) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(alpha.max(1) > thresh)
    if rows.size == 0:
        return None
    cols = np.flatnonzero(alpha[rows[0]:rows[-1] + 1].max(0) > thresh)
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def recolor(bgr: np.ndarray, alpha: np.ndarray, color_bgr: tuple[int, int, int],
            strength: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
    """Return `bgr` with the garment (`alpha` float [0,1], same HxW) turned `color_bgr`.

    `out` may be `bgr` itself to work in place.
    """
    if alpha.shape != bgr.shape[:2]:
        raise ValueError(f"matte is {alpha.shape[1]}x{alpha.shape[0]} but image is {bgr.shape[1]}x{bgr.shape[0]}")
    if out is None:
        out = bgr.copy()
    elif out is not bgr:
        out[...] = bgr
    box = _bbox(alpha)
    if box is None or strength <= 0:
        return out
    y0, y1, x0, x1 = box
    roi = bgr[y0:y1, x0:x1]
    a = alpha[y0:y1, x0:x1].astype(np.float32) * float(strength)
    L = cv2.cvtColor(roi, cv2.COLOR_BGR2Lab)[..., 0]
    w = (a > 0.5).view(np.uint8)
    if cv2.countNonZero(w) < 10:
        w = (a > 0.05).view(np.uint8)
    if cv2.countNonZero(w):
        mean, std = cv2.meanStdDev(L, mask=w)
        mean_l, std_l = float(mean[0, 0]), float(std[0, 0])
    else:
        mean_l, std_l = float(L.mean()), 1.0
    # The new colour depends on the old lightness alone, so it is a 256-entry table, built in
    # Lab and turned to BGR once: the frame pays for one lookup per pixel, not a Lab round trip
    # (a colour map reads one channel and writes three: no merged copy of L to look up).
    lut = _lut(mean_l, std_l, target_lab(color_bgr))
    rec = cv2.applyColorMap(L, lut[:, None, :])
    a = np.clip(a, 0.0, 1.0)
    out[y0:y1, x0:x1] = cv2.blendLinear(rec, roi, a, 1.0 - a)
    return out


def _lut(mean_l: float, std_l: float, target: np.ndarray) -> np.ndarray:
    """BGR (256, 3) uint8: what a garment pixel of each 8-bit Lab lightness becomes."""
    tl, ta, tb = (float(v) for v in target)
    L = np.arange(256, dtype=np.float32)
    new_mean = mean_l + (tl - mean_l) * LIGHTNESS_PULL
    # Very flat (dark or white) fabric: stretch its shading a little so folds stay visible.
    gain = 1.0 if std_l >= 12 else min(1.8, 12.0 / max(std_l, 4.0))
    new_l = new_mean + (L - mean_l) * gain
    shade = np.clip(0.55 + 0.45 * new_l / max(new_mean, 1.0), 0.4, 1.25)
    new_a = 128.0 + (ta - 128.0) * shade
    new_b = 128.0 + (tb - 128.0) * shade
    lab = np.stack([np.clip(new_l, 0, 255), np.clip(new_a, 0, 255), np.clip(new_b, 0, 255)], -1).astype(np.uint8)
    return cv2.cvtColor(lab[None], cv2.COLOR_Lab2BGR)[0]
