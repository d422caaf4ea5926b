"""Her hair, told apart from her top by colour: sampled around the top of her
head, split into tones, and taken out of the garment where it falls over her
shoulders (`GarmentModel.build`)."""

from __future__ import annotations

import cv2
import numpy as np

from vision.body import GRABCUT_SEED, Layout, fill_ellipse
from vision.person import visible


HAIR_GAP = 0.3   # gaps between hair-coloured strands bridged, as a share of the head's half-width


def hair_like(lab: np.ndarray, candidates: np.ndarray,
              layout: Layout | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Pixels coloured like the hair sampled around the top of the head, and
    that sample (Lab, float32, for `hair_tones`); (None, None) without a
    head to sample."""
    if layout is None:
        return None, None
    h, w = lab.shape[:2]
    ring = np.zeros((h, w), np.uint8)
    ax = (layout.head_axes[0] * 1.2, layout.head_axes[1] * 1.05)
    fill_ellipse(ring, layout.head_center, ax, 1)
    fc, fa = layout.face_core
    fill_ellipse(ring, fc, (fa[0] * 2.0, fa[1] * 2.2), 0)
    ring[int(max(0, layout.chin_y)):, :] = 0
    sample = lab[(ring > 0) & candidates].astype(np.float32)
    if len(sample) < 40:
        return None, None
    mean = sample.mean(0)
    cov = np.cov(sample.T) + np.eye(3) * 9.0
    d = lab.astype(np.float32) - mean
    m = np.einsum("...i,ij,...j->...", d, np.linalg.inv(cov), d)
    out = (m < 7.8) & candidates
    # Hair hangs from her head and ends above her hips, whichever way she
    # bends; further away, its colour is her trousers, tights or shoes.
    reach = np.zeros((h, w), np.uint8)
    hips = layout.torso[2:].mean(axis=0)
    r = float(np.linalg.norm(hips - np.array(layout.head_center, np.float32)))
    cv2.circle(reach, (round(layout.head_center[0]), round(layout.head_center[1])), max(1, round(r)), 1, -1)
    out &= reach > 0
    # ... and is one piece with the hair on her head: a dark shirt showing
    # between a jacket's lapels is cut off from it by the face and neck.
    # A beard reaches the collar down the middle; hair hangs beside the face.
    (fx, fy), (half, _) = layout.face_core
    out[int(max(0, fy)):int(max(0, layout.shoulder_y + half)), int(max(0, fx - 1.3 * half)):int(max(0, fx + 1.3 * half + 1))] = False
    k = max(3, int(HAIR_GAP * layout.head_axes[0]) | 1)      # strands of other shades leave gaps
    grown = cv2.dilate(out.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    n, labels = cv2.connectedComponents(grown, connectivity=8)
    on_head = np.unique(labels[(ring > 0) & out])
    return out & np.isin(labels, on_head[on_head > 0]), sample


HAIR_TONES = 25.0       # Lab distance (OpenCV's 8-bit scale) between two tones of one head of hair
HAIR_TONE_SHARE = 0.2   # ... each at least this share of the hair sampled
HAIR_TONE_CHEST = 0.1   # a tone on under this share of her chest is not her top's colour
UPRIGHT = 45.0          # degrees from vertical within which her torso is upright


def hair_tones(sample: np.ndarray) -> np.ndarray | None:
    """The two colours (2x3 Lab) of hair sampled round her head, if it has
    two tones far apart (dyed ends, highlights, or lit and shaded); else None."""
    cv2.setRNGSeed(GRABCUT_SEED)     # k-means++'s start: same photo, same tones
    _, labels, centres = cv2.kmeans(sample, 2, None, (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5),
                                    3, cv2.KMEANS_PP_CENTERS)
    share = float(labels.mean())
    if np.linalg.norm(centres[0] - centres[1]) > HAIR_TONES and min(share, 1 - share) > HAIR_TONE_SHARE:
        return centres
    return None


def by_tone(lab: np.ndarray, hair: np.ndarray, tones: np.ndarray) -> list[np.ndarray]:
    """`hair` split by which of the two `tones` each pixel is nearer."""
    labf = lab.astype(np.float32)
    nearer_first = np.linalg.norm(labf - tones[0], axis=-1) < np.linalg.norm(labf - tones[1], axis=-1)
    return [hair & nearer_first, hair & ~nearer_first]


def upright(torso: np.ndarray) -> bool:
    """Her torso (`Layout.torso`: its top edge at her shoulders, its bottom
    edge at her hips, or straight below her shoulders when pose cannot see
    them) within UPRIGHT of vertical: her hair hangs down her back and over
    her shoulders, not across her chest as when she bends over."""
    up = torso[:2].mean(axis=0) - torso[2:].mean(axis=0)
    return bool(-up[1] > 0 and np.degrees(np.arctan2(abs(up[0]), -up[1])) < UPRIGHT)


HAIR_SURE = 2.0   # hair this many times nearer (Lab) her hair's median colour than her top's is surely hair


def nearer_colour(lab: np.ndarray, a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Pixels k times nearer (Lab distance) region `a`'s median colour than region `b`'s."""
    if not a.any() or not b.any():
        return np.zeros(lab.shape[:2], bool)
    labf = lab.astype(np.float32)
    ra, rb = np.median(labf[a], axis=0), np.median(labf[b], axis=0)
    return k * np.linalg.norm(labf - ra, axis=-1) < np.linalg.norm(labf - rb, axis=-1)


HAIR_SHOULDER = 0.2   # hair above her chin is taken out only this far (share of her shoulders) above them


def hair_above_chin(hair: np.ndarray, layout: Layout, pose: np.ndarray) -> np.ndarray:
    """Hair-coloured pixels joined to her head (`hair`, from `hair_like`)
    above her chin and away from her arms: a ponytail or locks beside her
    face, even when her top is her hair's colour (a sleeve raised beside her
    head is not)."""
    sw = float(np.linalg.norm(pose[11, :2] - pose[12, :2]))
    out = hair.copy()
    # and well above her shoulders, which a hunched top may reach
    out[max(0, int(min(layout.chin_y, layout.shoulder_y - HAIR_SHOULDER * sw))):, :] = False
    h, w = hair.shape
    arms = np.zeros((h, w), np.uint8)
    for arm in layout.arms:
        cv2.polylines(arms, [np.round(arm).astype(np.int32)], False, 1, max(2, round(0.3 * sw)))
    return out & (arms == 0)


SLEEVE_HAIR = 0.5   # share of either elbow's disc coloured like her hair that makes it a sleeve's colour


def sleeves_like(hair: np.ndarray, inside: np.ndarray, pose: np.ndarray | None) -> bool:
    """Whether either elbow is hair-coloured: hair falls to her shoulders and
    back, rarely round an elbow, so there that colour is a jacket's sleeves (a
    black coat worn open over a red top, on a dark-haired woman). One is
    enough: light from one side puts the other sleeve in another shade."""
    if pose is None:
        return False
    h, w = hair.shape
    sw = float(np.linalg.norm(pose[11, :2] - pose[12, :2]))
    for i in (13, 14):
        if visible(pose, i):
            ring = np.zeros((h, w), np.uint8)
            cv2.circle(ring, (round(float(pose[i, 0])), round(float(pose[i, 1]))), max(1, round(0.12 * sw)), 1, -1)
            at = (ring > 0) & inside
            if at.sum() >= 10 and (hair & at).sum() >= SLEEVE_HAIR * at.sum():
                return True
    return False
