"""A small kinematic hand that produces MediaPipe-style landmarks for tests.

Fingers point up (-y) from a palm facing the camera; each joint bends toward
the camera (-z). `rotate` turns the whole hand in the image plane.
"""

import math

import numpy as np

BASES = {"index": (-0.35, -1.0), "middle": (-0.1, -1.05), "ring": (0.15, -1.0), "pinky": (0.38, -0.9)}
FAN = 0.5   # fingers fan out from the palm as a real hand's do: a V's tips are further apart than its knuckles
LENGTHS = {"index": (0.45, 0.28, 0.22), "middle": (0.5, 0.32, 0.24), "ring": (0.47, 0.3, 0.22),
           "pinky": (0.36, 0.22, 0.2)}


def _chain(base, direction, lengths, bends):
    pts = [np.array(base, float)]
    d = np.array(direction, float)
    d /= np.linalg.norm(d)
    angle = 0.0
    for L, b in zip(lengths, bends):
        angle += math.radians(b)
        # bend in the y-z plane toward the camera
        step = np.array([d[0], d[1] * math.cos(angle), -abs(d[1]) * math.sin(angle)]) * L
        pts.append(pts[-1] + step)
    return pts


def hand(fingers: dict[str, float], thumb: str = "tucked", rotate: float = 0.0, scale: float = 100.0,
         noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """`fingers`: name -> curl in [0, 1] (0 straight, 1 fully curled).
    `thumb`: 'out' (sideways), 'up' (along the fingers), 'tucked', 'touch_index'."""
    p = np.zeros((21, 3))
    for name, idx in (("index", 5), ("middle", 9), ("ring", 13), ("pinky", 17)):
        c = fingers.get(name, 1.0)
        bx, by = BASES[name]
        chain = _chain((bx, by, 0.0), (bx * FAN, -1.0, 0.0), LENGTHS[name], (c * 80, c * 100, c * 70))
        for k in range(4):
            p[idx + k] = chain[k]
    p[1] = (-0.45, -0.25, 0)
    p[2] = (-0.75, -0.45, -0.05)
    if thumb == "out":
        p[3], p[4] = (-1.0, -0.6, -0.05), (-1.25, -0.75, -0.05)
    elif thumb == "up":
        p[2] = (-0.6, -0.55, -0.05)
        p[3], p[4] = (-0.62, -1.0, -0.05), (-0.64, -1.5, -0.05)
    elif thumb == "touch_index":
        p[3] = (-0.7, -0.9, -0.15)
        p[4] = p[8] + np.array([0.03, 0.05, 0.0])
    else:  # tucked across the palm
        p[3], p[4] = (-0.5, -0.6, -0.25), (-0.2, -0.55, -0.3)
    th = math.radians(rotate)
    R = np.array([[math.cos(th), -math.sin(th), 0], [math.sin(th), math.cos(th), 0], [0, 0, 1]])
    p = p @ R.T * scale + np.array([300.0, 300.0, 0.0])
    if noise:
        p += np.random.default_rng(seed).normal(0, noise * scale, p.shape)
    return p.astype(np.float32)


STRAIGHT = dict(index=0.0, middle=0.0, ring=0.0, pinky=0.0)
CURLED = dict(index=1.0, middle=1.0, ring=1.0, pinky=1.0)
