"""Which of the people in a photo is the shopper, and the photo with the
others painted out.

MediaPipe's pose model finds one person, and with two side by side it may
take the friend: her clothes are then cut and the shopper's are not. So a
photo is searched again with each person found painted out, and the shopper
is chosen by a stated rule (`choose`): in front of the mirror she stands near
its middle. The rest of the careful path then sees her alone. The kiosk's
refresh does the same when its tracking pose, which follows whoever it found
first, leaves someone else in the person mask (`others_beside`).

Two people who overlap (one walking half behind the other) can be one body
to the pose model's mask, and then stay together.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision.body import TORSO_PER_SHOULDER
from vision.person import PoseEstimator, visible


MAX_PEOPLE = 3        # people looked for in one photo
OTHER_SHARE = 0.3     # sure person outside the bodies found, as a share of the first's, to look again
NEW_SHARE = 0.5       # a body found again must lie at least this share outside those found before
BODY_MIN = 0.2        # ... and be at least this share of the first's size, with both shoulders seen
HER_KEPT = 0.5        # share of her sure person the person model must still find once the others are painted out
SIZE_SHARE = 0.6      # the shopper's torso is at least this share of the longest torso among those standing
KNEES_DROP = 0.3      # standing: her knees at least this many torso lengths below her hips
LOOSE = 0.2           # person-mask evidence that goes to the nearer body when the others are painted out


def hips_seen(p: np.ndarray) -> bool:
    return visible(p, 23) and visible(p, 24)


def in_view(p: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`p` with the points outside a picture of `size` (width, height)
    marked unseen: pose gives shoulders and hips beyond the frame full
    visibility, and a body guessed there is no one to choose."""
    w, h = size
    q = p.copy()
    q[(q[:, 0] < 0) | (q[:, 0] >= w) | (q[:, 1] < 0) | (q[:, 1] >= h), 2] = 0.0
    return q


def torso(p: np.ndarray) -> tuple[float, float]:
    """(x of the torso's middle, torso length) from pose points in pixels.
    Hips out of view are pose's guess, often far off: then the length is
    told by her shoulders, and the middle is theirs. Seen hips can be
    guessed too (arms crossed over them), so the length is never under what
    her shoulders tell: two people are measured alike."""
    ms, mh = p[[11, 12], :2].mean(axis=0), p[[23, 24], :2].mean(axis=0)
    by_shoulders = TORSO_PER_SHOULDER * float(np.linalg.norm(p[11, :2] - p[12, :2]))
    if not hips_seen(p):
        return float(ms[0]), by_shoulders
    return float((ms[0] + mh[0]) / 2), max(float(np.linalg.norm(ms - mh)), by_shoulders)


def seated(p: np.ndarray) -> bool:
    """Her knees are seen at about her hips' height: she sits (or kneels).
    Unseen knees or hips (a photo cut at the waist) say nothing, so not seated."""
    knees = [i for i in (25, 26) if visible(p, i)]
    if not knees or not hips_seen(p):
        return False
    _, length = torso(p)
    drop = float(np.mean(p[knees, 1])) - float(p[[23, 24], 1].mean())
    return drop < KNEES_DROP * max(length, 1.0)


def choose(poses: list[np.ndarray], size: tuple[int, int]) -> int:
    """Index of the shopper among `poses` (pose points in pixels of a photo
    of `size`, width and height): of the people standing (everyone, if no one
    stands) whose torso is at least SIZE_SHARE of the longest there, the one
    whose torso is nearest the photo's middle. A friend beside her, a
    pedestrian further back, a person sitting on a bench are not her."""
    poses = [in_view(p, size) for p in poses]
    torsos = [torso(p) for p in poses]
    standing = [i for i, p in enumerate(poses) if not seated(p)] or list(range(len(poses)))
    longest = max(torsos[i][1] for i in standing)
    near = [i for i in standing if torsos[i][1] >= SIZE_SHARE * longest]
    return min(near, key=lambda i: abs(torsos[i][0] - size[0] / 2))


def someone_else(person: np.ndarray, covered: np.ndarray, first: np.ndarray) -> bool:
    """Enough sure person (`person` > 0.5) lies outside the bodies found
    (`covered`, bool, `person`'s size) for another person to be there: at
    least OTHER_SHARE of what it is sure of on the `first` body (the person
    model's pixels against its own: the two models' masks differ in size)."""
    sure = person > 0.5
    rest = int((sure & ~(cv2.dilate(covered.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0)).sum())
    return rest > 0 and rest >= OTHER_SHARE * (sure & first).sum()


def others_beside(points: np.ndarray | None, body: np.ndarray | None, person: np.ndarray) -> bool:
    """A live frame shows someone besides the person pose tracks (`points`,
    float `body` mask): she shows her face and shoulders (a hand held up to
    the camera, her head out of the picture, is no one to compare with) and
    `someone_else` is there."""
    if points is None or body is None:
        return False
    # (the body mask is at the frame's size, where `points` are)
    if not all(visible(in_view(points, (body.shape[1], body.shape[0])), i) for i in (0, 11, 12)):
        return False
    tracked = body_at(body, person.shape)
    return bool(tracked.any()) and someone_else(person, tracked, tracked)


def body_at(body: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pose's float body mask as bool at `shape` (the person mask's)."""
    return cv2.resize(body, (shape[1], shape[0]), interpolation=cv2.INTER_AREA) > 0.5


def people(bgr: np.ndarray, person: np.ndarray, pose: PoseEstimator,
           first: tuple[np.ndarray, np.ndarray] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The people in `bgr`: (pose points in pixels of `bgr`, body mask as
    bool at `person`'s size) for each, the first one pose finds first. After
    each, if `someone_else` is there, the photo is searched again with the
    bodies found painted out. A body that is small or has no shoulders seen
    is pose's guess in the painted patch, not a person. `first`: pose's
    answer on `bgr` as it is (points, float body mask), when already made."""
    h, w = person.shape
    found: list[tuple[np.ndarray, np.ndarray]] = []
    covered = np.zeros((h, w), bool)
    shown = bgr
    for _ in range(MAX_PEOPLE):
        pts, body = first if first is not None and not found else pose.landmarks_and_body(shown)
        if pts is None or body is None:
            break
        mine = body_at(body, (h, w))
        if not mine.any() or (mine & ~covered).sum() < NEW_SHARE * mine.sum():
            break
        seen = in_view(pts, (bgr.shape[1], bgr.shape[0]))
        if found and (mine.sum() < BODY_MIN * found[0][1].sum() or not (visible(seen, 11) and visible(seen, 12))):
            break
        found.append((pts, mine))
        covered |= mine
        if not someone_else(person, covered, found[0][1]):
            break
        shown = paint_out(bgr, covered)
    return found


def paint_out(bgr: np.ndarray, region: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """`bgr` with `region` (bool, the person mask's size, the photo's shape)
    and a small margin filled in from around it, but not `keep` (same size).
    The fill is made at that size (inpainting is slow at full size) and is
    blurred: the models rarely find a person in it, and `people` refuses the
    small, shoulderless bodies they do."""
    h, w = bgr.shape[:2]
    rh, rw = region.shape
    m = cv2.dilate(region.astype(np.uint8), np.ones((7, 7), np.uint8))
    if keep is not None:
        m[keep] = 0
    small = cv2.resize(bgr, (rw, rh), interpolation=cv2.INTER_AREA)
    filled = cv2.inpaint(small, m, 5, cv2.INPAINT_TELEA)
    big = cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST) > 0
    out = bgr.copy()
    out[big] = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)[big]
    return out


@dataclass
class Her:
    """The shopper among several people (`only_her`)."""
    painted: np.ndarray   # the photo with everyone else painted out
    body: np.ndarray      # her body, bool at the person mask's size
    points: np.ndarray    # her pose points, in pixels of the photo
    others: np.ndarray    # what was painted out, bool at the person mask's size


def only_her(bgr: np.ndarray, person: np.ndarray, pose: PoseEstimator,
             first: tuple[np.ndarray, np.ndarray] | None = None) -> Her | None:
    """The shopper and `bgr` with everyone else painted out, or None when
    pose finds no one else (the photo is used as it is). The others' bodies
    go, and so do the loose person pixels (their shadow, the floor between
    their legs) nearer their bodies than hers. `first`: as for `people`.
    See `kept_her` before using the painted photo."""
    found = people(bgr, person, pose, first)
    if len(found) < 2:
        return None
    her = choose([p for p, _ in found], (bgr.shape[1], bgr.shape[0]))
    hers = found[her][1]
    others = np.any([b for i, (_, b) in enumerate(found) if i != her], axis=0)
    to_her = cv2.distanceTransform((~hers).astype(np.uint8), cv2.DIST_L2, 3)
    to_them = cv2.distanceTransform((~others).astype(np.uint8), cv2.DIST_L2, 3)
    theirs = (others | ((person > LOOSE) & (to_them < to_her))) & ~hers
    return Her(paint_out(bgr, theirs, keep=hers), hers, found[her][0], theirs)


def kept_her(before: np.ndarray, after: np.ndarray, hers: np.ndarray) -> bool:
    """The person mask of the painted photo (`after`) still holds her: at
    least HER_KEPT of what the first (`before`) was sure of on her body. With
    the others painted out the person model can lose her too (two couples
    side by side); then the photo is better used as it is."""
    was = ((before > 0.5) & hers).sum()
    return was == 0 or ((after > 0.5) & hers).sum() >= HER_KEPT * was
