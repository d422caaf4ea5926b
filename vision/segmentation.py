"""Person and garment segmentation.

Two speeds, one model:

* `GarmentModel.build()` is the slow, careful step (about 0.2 s). It runs pose,
  lays out seeds (torso and legs = garment; face, hair, hands and background =
  not garment), lets GrabCut at 320 px settle the boundary by colour, then
  learns colour histograms of garment versus the rest of the person and a
  spatial prior. The kiosk reruns it about once a second in the background.
* `GarmentModel.matte()` is the cheap per-frame step (about 1 ms at 320 px):
  the current person mask times the histogram back-projection times the prior.

`PhotoSegmenter` is the photo path used by `mirror segment` and `mirror
recolor`: the slow step, its outline cut again at a higher resolution
(`refine_outline`), then soft edges at full resolution; all of it on three
views of the photo (`PHOTO_VIEWS`), whose median is the answer.

Parts (`PARTS`): the slow step also splits the garment into upper and lower
(`split_parts`: pose for the waist and sleeves, Lab colour on chest and thighs
for the hem, a second small GrabCut between them), so the per-frame matte can be
limited to the part the product is.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from vision import models
from vision.hands import HandTracker, hand_mask

WORK_WIDTH = 320
WORK_PIXELS = 320 * 640   # ... and at most this many pixels (a 9:16 frame stays 320 wide)
# Lab histogram bins: coarse lightness, finer chroma.
HIST_BINS = [8, 24, 24]
HIST_RANGES = [0, 256, 0, 256, 0, 256]
GRABCUT_SEED = 12345
PHOTO_FOREARM = 0.5      # how far past the wrist (in palm lengths) a photo's hand is cut out
SKIN_MAX_SHARE = 0.7     # more of her than this "skin" means the skin model cannot tell (a summer
                         # outfit, bare arms and legs, is 0.5-0.7 of her; a skin-toned dress 0.9)
SKIN_TINT = 0.4          # skin keeps at least this share of the face's tint (distance from grey in Lab)
HALF = 0.6               # a photo's person mask is also made on its top and bottom 60% (PersonSegmenter)
HALF_COVER = 0.4         # ... unless she covers this share of the photo (whole bodies: 0.13-0.31)
PERSON_MIN = 0.005       # a photo's crop: the biggest piece of sure person (> 0.5) must be this share of it
PERSON_WEAK = 0.2        # ... other pieces joined to it above this
PERSON_PIECE = 0.25      # ... count if at least this share of its size
SKIN_CHEST = 0.7          # share of her chest the skin model may claim before it is taken for a skin-toned top
BODY_AGREE = 0.5         # share of pose's body mask the person mask must hold for it to count (`with_body`)


class PersonSegmenter:
    """MediaPipe selfie segmentation; returns a float32 [0,1] mask at `width`."""

    def __init__(self, width: int = 256):
        self.width = width
        self._model = models.selfie_segmentation(landscape=False)
        self._lock = threading.Lock()

    def process(self, bgr: np.ndarray, halves: bool = False) -> np.ndarray:
        """The mask at `width` x (width * h / w); `halves`: see `add_halves`."""
        mask = self._one(bgr)
        return self.add_halves(bgr, mask) if halves else mask

    def add_halves(self, bgr: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """`mask` (this picture's, from `process`) with its halves added, for
        photos: a picture taller than wide is also run as its top and bottom
        `HALF` (overlapping), each larger in the model's input, and a pixel is
        hers if any run says so. At 256 px a standing body is thin, and the
        model loses a raised leg or an arm held out. Not when she already
        covers `HALF_COVER` of the picture (a close-up): there the halves add
        only the wall beside her."""
        h, w = bgr.shape[:2]
        if h <= w or (mask > 0.5).mean() >= HALF_COVER:
            return mask
        mask = mask.copy()
        out_h = mask.shape[0]
        for y0, y1 in ((0, round(HALF * h)), (round((1 - HALF) * h), h)):
            a, b = round(y0 * out_h / h), round(y1 * out_h / h)
            part = cv2.resize(self._one(bgr[y0:y1]), (self.width, b - a), interpolation=cv2.INTER_LINEAR)
            mask[a:b] = np.maximum(mask[a:b], part)
        return mask

    def _one(self, bgr: np.ndarray) -> np.ndarray:
        h, w = bgr.shape[:2]
        # The model's input is square and MediaPipe stretches to it; a tall
        # photo squeezed sideways loses the torso (seen on two_hands_raised).
        # So letterbox: longer side = width, edges replicated.
        s = self.width / max(h, w)
        sw, sh = max(1, round(w * s)), max(1, round(h * s))
        small = shrink(bgr, (sw, sh))
        y0, x0 = (self.width - sh) // 2, (self.width - sw) // 2
        square = cv2.copyMakeBorder(small, y0, self.width - sh - y0, x0, self.width - sw - x0,
                                    cv2.BORDER_REPLICATE)
        with self._lock:
            res = self._model.process(cv2.cvtColor(square, cv2.COLOR_BGR2RGB))
        mask = res.segmentation_mask[y0:y0 + sh, x0:x0 + sw].astype(np.float32)
        out_h = max(1, round(h * self.width / w))
        return cv2.resize(mask, (self.width, out_h), interpolation=cv2.INTER_LINEAR)


class PoseEstimator:
    """MediaPipe pose; with `body_mask`, also the pose model's own mask of the
    body it found (see `with_body`)."""

    def __init__(self, static: bool = False, body_mask: bool = False):
        self.static = static
        self._model = models.pose(static, body_mask)
        self._lock = threading.Lock()

    def process(self, bgr: np.ndarray) -> np.ndarray | None:
        """(33, 3) array of x, y in pixels of `bgr` and visibility, or None."""
        return self.landmarks_and_body(bgr)[0]

    def landmarks_and_body(self, bgr: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """`process`'s landmarks, and the body mask (float32 [0,1], `bgr`'s
        size) when made with `body_mask` and a body was found, else None."""
        pts, body = self._run(bgr)
        if pts is None and self.static:
            # The pose detector misses some tight portrait crops (arms raised
            # over the head) that it finds once the picture is padded square.
            h, w = bgr.shape[:2]
            side = max(h, w)
            x0 = (side - w) // 2
            padded = cv2.copyMakeBorder(bgr, 0, side - h, x0, side - w - x0, cv2.BORDER_REPLICATE)
            pts, body = self._run(padded)
            if pts is not None:
                pts[:, 0] -= x0
            if body is not None:
                body = np.ascontiguousarray(body[:h, x0:x0 + w])
        return pts, body

    def _run(self, bgr: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        h, w = bgr.shape[:2]
        with self._lock:
            res = self._model.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if not res.pose_landmarks:
            return None, None
        body = getattr(res, "segmentation_mask", None)
        pts = np.array([[p.x * w, p.y * h, p.visibility] for p in res.pose_landmarks.landmark], np.float32)
        return pts, None if body is None else body.astype(np.float32)


def with_body(person: np.ndarray, body: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The person mask told by pose's body mask: (her, maybe).

    The selfie model, made for faces near a webcam, takes a full-length body
    loosely (the floor between her legs, her shadow, a lamp beside her) and
    sometimes drops a sitting shin. Pose's mask is made for whole bodies and
    follows her tightly, but cuts a flared skirt or a sheer dress short.
    So `her` (float, `person`'s size) is the body mask, and `maybe` (bool) is
    what only the selfie model takes: GrabCut may keep it if it has her
    clothes' colours, starting from not garment. The person mask as it is,
    and no maybe, with no body mask; when she fills `HALF_COVER` of the
    picture (a close-up, where pose, made for whole bodies, can take raised
    arms for a body); and when under `BODY_AGREE` of pose's body is in the
    person mask (pose alone finds a body in a desk's clutter)."""
    sure = person > 0.5
    if body is None or sure.mean() >= HALF_COVER:
        return person, None
    body = cv2.resize(body, (person.shape[1], person.shape[0]), interpolation=cv2.INTER_AREA)
    hers = body > 0.5
    if (hers & sure).sum() < BODY_AGREE * max(1, hers.sum()):
        return person, None
    return body, sure & ~hers


FACE_NOSE_MARGIN = 0.5   # pose's nose may lie this share of the face box's size outside it


class FaceFinder:
    """MediaPipe face detection: a face's box (x, y, w, h) in pixels, or None.

    Pose gives a face too, but with the face partly covered (an arm across the
    forehead) its face points can be far off; the detector's box holds up."""

    def __init__(self):
        self._model = models.face_detection()
        self._lock = threading.Lock()

    def process(self, bgr: np.ndarray, pose: np.ndarray | None = None) -> tuple[int, int, int, int] | None:
        """The biggest face; with `pose` (PoseEstimator's points in pixels of
        `bgr`), the face of the person pose found: the one holding her nose
        (the biggest face may be the friend beside her), None if none does."""
        h, w = bgr.shape[:2]
        with self._lock:
            res = self._model.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if not res.detections:
            return None
        boxes = [(round(b.xmin * w), round(b.ymin * h), round(b.width * w), round(b.height * h))
                 for b in (d.location_data.relative_bounding_box for d in res.detections)]
        if pose is not None and _vis(pose, 0, 0.3):
            nx, ny = float(pose[0, 0]), float(pose[0, 1])
            boxes = [b for b in boxes if _holds(b, nx, ny, FACE_NOSE_MARGIN)]
        return max(boxes, key=lambda b: b[2] * b[3]) if boxes else None


def _holds(box: tuple[int, int, int, int], x: float, y: float, margin: float) -> bool:
    """Point (x, y) lies in `box` grown by `margin` of its size on every side."""
    bx, by, bw, bh = box
    return bx - margin * bw <= x <= bx + (1 + margin) * bw and by - margin * bh <= y <= by + (1 + margin) * bh


def face_ellipse(box: tuple[int, int, int, int], scale: float = 1.0) -> tuple[tuple[float, float], tuple[float, float]]:
    """Centre and half-axes of the face inside a detector box. The box runs
    from the brows to a little below the chin; the ellipse stops at the chin
    so a collar stays garment."""
    x, y, w, h = box
    return (x + w / 2, y + h * 0.45), (w * 0.42 * scale, h * 0.45 * scale)


def shrink(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`img` scaled down to `size` (w, h), averaging pixels as INTER_AREA does.

    OpenCV's INTER_AREA is fast for whole-number ratios and about 20x slower
    otherwise (2.5 ms for a 720x1280 frame to 320 wide): halve exactly while the
    ratio is 2 or more, then finish with a linear step of less than 2x."""
    w, h = size
    while img.shape[1] >= 2 * w and img.shape[0] >= 2 * h:
        ih, iw = img.shape[:2]
        img = cv2.resize(img[:ih - ih % 2, :iw - iw % 2], (iw // 2, ih // 2), interpolation=cv2.INTER_AREA)
    if (img.shape[1], img.shape[0]) == (w, h):
        return img
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def person_extent(person: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) in `person`'s pixels around the biggest piece of sure
    person (over 0.5) and the big pieces joined to it, or None if the biggest
    is under PERSON_MIN of the mask.

    Bent over, the model can be only half sure of her torso, and one leg
    alone was the biggest piece: a crop to it cut the rest of her off. Pieces
    joined to it through weaker evidence (over PERSON_WEAK) are her too if at
    least PERSON_PIECE of its size; a smaller one (a hand, or a thing beside
    her joined through the blur) adds little but could widen the crop and
    cost her pixels."""
    strong = (person > 0.5).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(strong, connectivity=8)
    areas = stats[:, cv2.CC_STAT_AREA].copy()
    areas[0] = 0
    i = int(np.argmax(areas))
    if n < 2 or areas[i] < PERSON_MIN * strong.size:
        return None
    _, weak = cv2.connectedComponents((person > PERSON_WEAK).astype(np.uint8), connectivity=8)
    joined = np.unique(labels[(weak == weak[labels == i][0]) & (strong > 0)])
    mine = stats[[j for j in joined if areas[j] >= PERSON_PIECE * areas[i]]]
    x0, y0 = mine[:, 0].min(), mine[:, 1].min()
    x1, y1 = (mine[:, 0] + mine[:, 2]).max(), (mine[:, 1] + mine[:, 3]).max()
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def box_with_margin(x: float, y: float, w: float, h: float, margin: float,
                    size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the box (x, y, w, h) grown by `margin` of its longer
    side all round, clipped to an image of `size` (width, height)."""
    m = margin * max(w, h)
    return (max(0, int(x - m)), max(0, int(y - m)), min(size[0], int(x + w + m)), min(size[1], int(y + h + m)))


def person_box(person: np.ndarray, size: tuple[int, int], margin: float) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) round her (`person_extent`) with `margin` of her size
    around her, in pixels of an image of `size` (width, height), or None."""
    extent = person_extent(person)
    if extent is None:
        return None
    s = size[0] / person.shape[1]
    return box_with_margin(*(v * s for v in extent), margin, size)


def _resize_to(img: np.ndarray, width: int) -> np.ndarray:
    h, w = img.shape[:2]
    return shrink(img, (width, max(1, round(h * width / w))))


def _vis(p: np.ndarray, i: int, t: float = 0.5) -> bool:
    return bool(p[i, 2] >= t)


def _skin_rule(ycrcb: np.ndarray) -> np.ndarray:
    cr, cb = ycrcb[..., 1].astype(np.int16), ycrcb[..., 2].astype(np.int16)
    return (cr > 135) & (cr < 180) & (cb > 80) & (cb < 135) & (ycrcb[..., 0] > 40)


@dataclass
class Layout:
    """Body geometry from pose, in pixels of the work image."""
    head_center: tuple[float, float]
    head_axes: tuple[float, float]
    chin_y: float
    shoulder_y: float
    torso: np.ndarray            # polygon of the torso core
    legs: list[np.ndarray]       # thick lines hip->knee(->ankle)
    hands: list[tuple[tuple[float, float], float]]  # centre, radius
    face_core: tuple[tuple[float, float], tuple[float, float]]
    arms: list[np.ndarray]


def body_layout(p: np.ndarray, size: tuple[int, int]) -> Layout | None:
    w, h = size
    if not (_vis(p, 11) and _vis(p, 12)) or not _vis(p, 0, 0.3):
        return None
    ls, rs = p[11, :2], p[12, :2]
    sw = float(np.linalg.norm(ls - rs))
    if sw < 4:
        return None
    eyes = np.mean(p[[2, 5], :2], axis=0)
    mouth = np.mean(p[[9, 10], :2], axis=0)
    nose = p[0, :2]
    ear_d = float(np.linalg.norm(p[7, :2] - p[8, :2]))
    face_w = max(ear_d, 0.45 * sw)
    eye_mouth = max(2.0, float(mouth[1] - eyes[1]))
    chin_y = float(mouth[1] + 1.1 * eye_mouth)
    head_c = (float(nose[0]), float(eyes[1] - 0.2 * eye_mouth))
    head_axes = (0.62 * face_w, max(0.85 * face_w, chin_y - head_c[1]))
    shoulder_y = float((ls[1] + rs[1]) / 2)
    mid_s = (ls + rs) / 2
    if _vis(p, 23, 0.3) and _vis(p, 24, 0.3) and p[23, 1] < h * 1.3:
        lh, rh = p[23, :2], p[24, :2]
    else:
        down = np.array([0.0, 1.6 * sw], np.float32)
        lh, rh = ls + down, rs + down
    mid_h = (lh + rh) / 2
    # Torso core: between the shoulders pulled toward the body's axis, from
    # just below the shoulder line to just above the hips, clipped to the image.
    top = shoulder_y + 0.12 * sw
    bottom = max(top + 0.2 * sw, float((lh[1] + rh[1]) / 2) - 0.1 * sw)
    mid_x = float(mid_s[0])
    half_top = 0.32 * sw
    half_bot = max(0.3 * sw, 0.35 * float(abs(lh[0] - rh[0])))
    mid_hx = float(mid_h[0])
    torso = np.array([[mid_x - half_top, top], [mid_x + half_top, top],
                      [mid_hx + half_bot, bottom], [mid_hx - half_bot, bottom]], np.float32)
    torso[:, 1] = np.minimum(torso[:, 1], h - 1)
    legs = []
    for hip, knee, ankle in ((23, 25, 27), (24, 26, 28)):
        if _vis(p, hip, 0.3) and _vis(p, knee, 0.5):
            pts = [p[hip, :2], p[knee, :2]] + ([p[ankle, :2]] if _vis(p, ankle, 0.5) else [])
            legs.append(np.array(pts, np.float32))
    arms = []
    for s, e, wr in ((11, 13, 15), (12, 14, 16)):
        if _vis(p, e):
            arms.append(np.array([p[s, :2], p[e, :2]] + ([p[wr, :2]] if _vis(p, wr) else []), np.float32))
    hands = []
    for wr, a, b in ((15, 17, 19), (16, 18, 20)):
        if _vis(p, wr) and _vis(p, a, 0.3) and _vis(p, b, 0.3):
            c = (p[wr, :2] + p[a, :2] + p[b, :2]) / 3
            r = max(float(np.linalg.norm(p[a, :2] - p[wr, :2])) * 1.1, 0.08 * sw)
            hands.append(((float(c[0]), float(c[1])), r))
    face_core = ((float(nose[0]), float((eyes[1] + mouth[1]) / 2)),
                 (0.28 * face_w, 0.55 * eye_mouth + 1))
    return Layout(head_c, head_axes, chin_y, shoulder_y, torso, legs, hands, face_core, arms)


def _torso_core(layout: Layout, shape: tuple[int, int]) -> np.ndarray:
    """The torso core polygon as a bool mask of `shape`."""
    m = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(m, np.round(layout.torso).astype(np.int32), 1)
    return m > 0


def _upper_torso(layout: Layout, shape: tuple[int, int]) -> np.ndarray:
    """The upper half of the torso core (bool mask of `shape`): her chest."""
    m = _torso_core(layout, shape)
    m[int(layout.torso[:, 1].mean()):, :] = False
    return m


def _mark_shoes(unlikely: np.ndarray, never: np.ndarray, pose: np.ndarray) -> None:
    """Her shoes, from pose's ankle, heel and toe points, from just below the
    ankle down (a trouser hem over the ankle stays): the foot's outline grown
    by a fifth of its length is probably not garment, and colour decides (a
    raised foot may rest against the other leg). The outline itself, on a
    foot she stands on (below both knees), is never garment: black shoes
    under black trousers."""
    knees_y = max(pose[25, 1], pose[26, 1]) if _vis(pose, 25) and _vis(pose, 26) else None
    for ankle, heel, toe in ((27, 29, 31), (28, 30, 32)):
        if not (_vis(pose, ankle) and _vis(pose, heel) and _vis(pose, toe)):
            continue
        pts = pose[[ankle, heel, toe], :2]
        length = float(np.linalg.norm(pts[1] - pts[2]))
        if length < 3:
            continue
        core = np.zeros_like(unlikely)
        hull = cv2.convexHull(np.round(pts).astype(np.int32))
        cv2.fillConvexPoly(core, hull, 1)
        foot = core.copy()
        cv2.polylines(foot, [hull], True, 1, max(1, round(0.4 * length)))
        foot[:max(0, int(pts[0, 1] + 0.15 * length)), :] = 0
        # a full-length trouser hem may lie over the top of the shoe
        core[:max(0, int(pts[0, 1] + 0.25 * length)), :] = 0
        unlikely[foot > 0] = 1
        if knees_y is not None and pts[0, 1] > knees_y:
            never[core > 0] = 1


def _head_from_box(box: tuple[float, float, float, float]):
    """Head centre, half-axes and chin line from a face detector's box (brows to chin)."""
    x, y, w, h = box
    return (x + w / 2, y + 0.2 * h), (0.62 * w, 0.72 * h), y + 0.9 * h


def _head_from_face(layout: Layout, box: tuple[float, float, float, float]) -> Layout:
    """The head's geometry from a face detector's box, which holds up where
    pose's face points drift (a face half covered by an arm)."""
    x, y, w, h = box
    center, axes, chin_y = _head_from_box(box)
    return dataclasses.replace(layout, head_center=center, head_axes=axes, chin_y=chin_y,
                               face_core=((center[0], y + 0.5 * h), (0.28 * w, 0.3 * h)))


def _ellipse(mask, center, axes, value):
    cv2.ellipse(mask, (round(center[0]), round(center[1])),
                (max(1, round(axes[0])), max(1, round(axes[1]))), 0, 0, 360, value, -1)


def _skin_mask(lab: np.ndarray, ycrcb: np.ndarray, face_pixels_lab: np.ndarray | None) -> np.ndarray:
    """Skin in the work image: close in chroma to the face, or the generic rule if no face."""
    rule = _skin_rule(ycrcb)
    if face_pixels_lab is not None and len(face_pixels_lab) >= 30:
        ab = face_pixels_lab[:, 1:].astype(np.float32)
        mean = ab.mean(0)
        cov = np.cov(ab.T) + np.eye(2) * 4.0
        icov = np.linalg.inv(cov)
        d = lab[..., 1:].astype(np.float32) - mean
        m = np.einsum("...i,ij,...j->...", d, icov, d)
        skin = (m < 9.0) & (lab[..., 0] > 35)
        # A pale, brightly lit face is nearly grey; white or grey cloth is
        # greyer still, while skin keeps its tint in any light.
        face_tint = float(np.median(np.linalg.norm(ab - 128.0, axis=-1)))
        if face_tint >= 4.0:
            tint = np.linalg.norm(lab[skin][:, 1:].astype(np.float32) - 128.0, axis=-1)
            skin[skin] = tint >= SKIN_TINT * face_tint
        return skin
    return rule


class GarmentModel:
    """What the garment looks like and where it is; see the module docstring."""

    def __init__(self, hist_g: np.ndarray, hist_rest: np.ndarray, prior: np.ndarray,
                 layout: Layout | None, seg: np.ndarray):
        self.hist_g = hist_g
        self.hist_rest = hist_rest
        self.prior = prior            # float32 [0,1] at work size
        self.layout = layout
        self.seg = seg                # the GrabCut result, uint8 {0,1} at work size
        ratio = hist_g / (hist_g + hist_rest + 1e-3)
        self._lut = np.clip(ratio * 255.0, 0, 255).astype(np.float32)
        self.parts: Parts | None = None
        self.off: np.ndarray | None = None   # bool at work size: her head and standing shoes, never garment
        self._part_priors: dict[str, np.ndarray] = {}

    def part_mask(self, part: str) -> np.ndarray:
        """uint8 {0,1} at work size: the GrabCut garment, or one part of it."""
        check_part(part)
        if part == "none":
            return np.zeros_like(self.seg)
        if part == "full" or self.parts is None:
            return self.seg
        return self.parts.masks[part]

    def part_prior(self, part: str) -> np.ndarray:
        """The spatial prior restricted to `part` (cached: parts are fixed per model)."""
        if part == "full":
            return self.prior
        got = self._part_priors.get(part)
        if got is None:
            m = self.part_mask(part).astype(np.float32)
            k = max(3, int(0.02 * m.shape[1]) | 1)
            # blurred but not dilated: a grown upper would leak over the waistband
            got = self.prior * np.clip(cv2.GaussianBlur(m, (k, k), 0) * 1.4, 0.0, 1.0)
            self._part_priors[part] = got
        return got

    @classmethod
    def build(cls, bgr: np.ndarray, person: np.ndarray, pose_px: np.ndarray | None,
              iterations: int = 3, depth_mm: np.ndarray | None = None,
              face_box: tuple[int, int, int, int] | None = None,
              maybe: np.ndarray | None = None) -> "GarmentModel | None":
        """`person`: float mask (any size); `pose_px`: landmarks in pixels of
        `bgr`; `face_box`: a face detector's box in pixels of `bgr`; `maybe`:
        bool mask (any size) of pixels that may be hers though `person` says
        not (see `with_body`)."""
        h0, w0 = bgr.shape[:2]
        # a width, and a pixel budget for tall images (a strip is not upscaled to 320x2560)
        img = _resize_to(bgr, min(WORK_WIDTH, max(16, int((WORK_PIXELS * w0 / h0) ** 0.5))))
        h, w = img.shape[:2]
        s = w / w0
        pm = cv2.resize(person, (w, h), interpolation=cv2.INTER_LINEAR)
        lab = cv2.cvtColor(img, cv2.COLOR_BGR2Lab)
        ycrcb = cv2.cvtColor(img, cv2.COLOR_BGR2YCrCb)
        pose = None
        if pose_px is not None:
            pose = pose_px.copy()
            pose[:, :2] *= s
        layout = body_layout(pose, (w, h)) if pose is not None else None
        face_work = tuple(v * s for v in face_box) if face_box is not None else None
        if layout is not None and face_work is not None:
            layout = _head_from_face(layout, face_work)

        inside = pm > 0.5
        if pose is not None:
            inside = _her_pieces(inside, pose)
        if inside.sum() < 0.01 * w * h:
            return None
        may = np.zeros((h, w), bool)
        if maybe is not None:
            may = cv2.resize(maybe.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
            may &= ~inside
        gc = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
        gc[inside] = cv2.GC_PR_FGD
        outside = cv2.erode(((pm < 0.2) & ~may).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        gc[outside] = cv2.GC_BGD

        not_garment = np.zeros((h, w), np.uint8)
        unlikely = np.zeros((h, w), np.uint8)     # her hands and shoes: probably not garment, colour decides
        seeds = np.zeros((h, w), np.uint8)
        face_px = None
        if layout is not None:
            face = np.zeros((h, w), np.uint8)
            _ellipse(face, *layout.face_core, 1)
            face_pick = (face > 0) & inside & _skin_rule(ycrcb)
            face_px = lab[face_pick] if face_pick.sum() >= 30 else None
            _ellipse(not_garment, layout.head_center, layout.head_axes, 1)
            for c, r in layout.hands:
                cv2.circle(unlikely, (round(c[0]), round(c[1])), max(1, round(r)), 1, -1)
            seeds[_torso_core(layout, (h, w))] = 1
            thick = max(2, round(0.08 * np.linalg.norm(layout.torso[0] - layout.torso[1]) + 2))
            for leg in layout.legs:
                # thighs only: below the knee a skirt or a dress has ended and
                # her shins (bare, tights) are left to colour
                cv2.polylines(seeds, [np.round(leg[:2]).astype(np.int32)], False, 1, thick)
            above = np.zeros((h, w), bool)
            above[: max(0, int(layout.chin_y)), :] = True
            gc[above & inside] = cv2.GC_PR_BGD
            _mark_shoes(unlikely, not_garment, pose)
        elif face_work is not None:
            # No pose but a face: the head around it, the garment below the chin.
            head_center, head_axes, chin_y = _head_from_box(face_work)
            _ellipse(not_garment, head_center, head_axes, 1)
            chin, fh = int(chin_y), face_work[3]
            gc[:max(0, chin), :][inside[:max(0, chin), :]] = cv2.GC_PR_BGD
            band = np.zeros((h, w), np.uint8)
            band[min(h - 1, chin + int(0.5 * fh)):, :] = 1
            seeds = (cv2.erode(inside.astype(np.uint8), np.ones((15, 15), np.uint8)) & band)
        else:
            # No pose, no face: the top fifth of the person is taken as head, the middle as torso.
            ys, xs = np.nonzero(inside)
            top, bottom = ys.min(), ys.max()
            head_end = top + int(0.22 * (bottom - top))
            not_garment[top:head_end, :] = 1
            band = np.zeros((h, w), np.uint8)
            band[head_end + int(0.15 * (bottom - top)):, :] = 1
            seeds = (cv2.erode(inside.astype(np.uint8), np.ones((15, 15), np.uint8)) & band)

        if face_work is not None:
            # The head (from the face box when there is one) is certainly not
            # garment. That costs the bit of a sleeve raised over the head, but
            # keeps dark hair off a dark top, where colour cannot tell them apart.
            _ellipse(not_garment, *face_ellipse(face_work), 1)
        skin = _skin_mask(lab, ycrcb, face_px) & inside
        if skin.sum() > SKIN_MAX_SHARE * inside.sum():
            # A face whose colour is everywhere (warm light, clothes of her
            # skin's tone) tells skin from nothing: fall back to the generic
            # rule, and to no skin at all if that says the same.
            skin = _skin_rule(ycrcb) & inside
            if skin.sum() > SKIN_MAX_SHARE * inside.sum():
                skin[:] = False
        upper_torso = _upper_torso(layout, (h, w)) if layout is not None else None
        bare = None
        if layout is not None:
            core = _torso_core(layout, (h, w))
            on_chest = upper_torso & inside
            if (skin & on_chest).sum() >= SKIN_CHEST * max(1, on_chest.sum()):
                # Her chest is her skin's colour nearly all over: a skin-toned
                # top (a beige knit, a cream dress), not bare skin; on her torso
                # the skin model is not to be trusted (on her legs it still is).
                skin &= ~core
            # a forearm is judged against her top (the chest), a shin against her thighs
            top_px = upper_torso & inside & ~skin
            thigh_px = (seeds > 0) & ~core & inside & ~skin
            bare = _bare_limbs(lab, inside, pose, top_px if top_px.sum() >= 30 else seeds > 0,
                               thigh_px if thigh_px.sum() >= 30 else seeds > 0)
        if bare is not None:
            skin |= bare
        hair, hair_sample = _hair_like(lab, inside & ~skin, layout)
        seeds = (seeds > 0) & inside & ~skin & (not_garment == 0) & (unlikely == 0)
        chest = seeds
        if upper_torso is not None:
            # judged on her chest, not on the legs too: a short dark top over
            # a long skirt is a hair-coloured top, not hair
            chest = seeds & upper_torso if (seeds & upper_torso).sum() >= 20 else seeds
        not_cloth = skin.copy()      # what must not be taken as a sample of her clothes' colours

        def hair_on_her(lock: np.ndarray, top: np.ndarray) -> None:
            # Hair lying on the torso (a braid, long hair) must not teach
            # GrabCut the garment; where it is much nearer her hair's colour
            # than her top's (sampled in `top`), it is surely hair: GrabCut
            # would take a dark lock back for a top that has that colour
            # anywhere (dark trousers), a beige knit's sides near blonde hair
            # stay its call.
            not_cloth[lock] = True
            seeds[lock] = False
            gc[lock & (gc == cv2.GC_PR_FGD)] = cv2.GC_PR_BGD
            gc[lock & (gc == cv2.GC_PR_BGD) & _nearer(lab, lock, top, HAIR_SURE)] = cv2.GC_BGD

        if hair is not None and not _sleeves_like(hair, inside, pose):
            if (chest & hair).sum() < 0.5 * chest.sum():
                # unless the garment itself is hair-coloured (on her chest,
                # or an open jacket's sleeves)
                hair_on_her(hair, chest & ~hair)
            else:
                # a top of her hair's colour; if her hair has two tones (dark
                # roots, blonde lengths) and her top is one of them, the
                # other tone lying over it is still hair
                tones = _hair_tones(hair_sample) if _upright(layout.torso) else None
                if tones is not None:
                    for tone in _by_tone(lab, hair, tones):
                        if (chest & tone).sum() < HAIR_TONE_CHEST * chest.sum():
                            hair_on_her(tone, chest & ~tone)
                if layout.shoulder_y > layout.chin_y:
                    # her hair is still hair above her chin (if pose has her
                    # shoulders below it at all); a collar there is lost,
                    # which is rarer than a ponytail
                    up = _hair_above_chin(hair, layout, pose)
                    not_cloth |= up
                    seeds &= ~up
                    gc[up] = cv2.GC_BGD
        if seeds.sum() < 20:
            return None
        gc[(not_garment > 0) & inside] = cv2.GC_BGD
        gc[((unlikely > 0) | skin) & (gc != cv2.GC_BGD)] = cv2.GC_PR_BGD
        gc[seeds] = cv2.GC_FGD
        if depth_mm is not None:
            far = cv2.resize(depth_mm, (w, h), interpolation=cv2.INTER_NEAREST)
            cut = (far > 0) & (pm > 0.5)
            if cut.sum() > 50:
                med = float(np.median(far[cut]))
                gc[(far > med + 600) & (gc != cv2.GC_FGD)] = cv2.GC_BGD
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        try:
            cv2.setRNGSeed(GRABCUT_SEED)  # GrabCut's k-means start: same photo, same mask
            cv2.grabCut(img, gc, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:
            return None
        seg = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)
        seg &= (inside | may).astype(np.uint8)
        if layout is not None:
            # GrabCut keeps bare arms and legs when the garment's colours
            # reach toward skin; skin off the torso is never garment.
            seg[skin & (_limb_ends(pose, w, h) > 0) & ~seeds] = 0
        if bare is not None:
            seg[bare] = 0
        # an unseeded piece in her hands' and shoes' places is a raised shoe
        # past a bare shin, or a hand: not garment
        seg = _keep_big_parts(seg, seeds, unlikely > 0)
        rest = inside & (seg == 0)
        hist_g = cv2.calcHist([lab], [0, 1, 2], seg, HIST_BINS, HIST_RANGES)
        hist_r = cv2.calcHist([lab], [0, 1, 2], rest.astype(np.uint8), HIST_BINS, HIST_RANGES)
        hist_g = cv2.GaussianBlur(hist_g.reshape(HIST_BINS[0], -1), (3, 3), 0).reshape(HIST_BINS)
        hist_g /= max(1.0, float(seg.sum()))
        hist_r /= max(1.0, float(rest.sum()))
        # Where the garment may be next frame: the GrabCut result, softened a
        # little for movement; never the head.
        k = max(3, int(0.03 * w) | 1)
        prior = cv2.dilate(seg, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))).astype(np.float32)
        if layout is not None:
            head = np.zeros((h, w), np.uint8)
            _ellipse(head, layout.head_center, layout.head_axes, 1)
            prior[head > 0] = 0
        prior = cv2.GaussianBlur(prior, (k, k), 0)
        model = cls(hist_g, hist_r, prior, layout, seg)
        model.parts = split_parts(img, lab, seg, pose, layout, not_cloth=not_cloth)
        # what a photo's second cut of the outline may not take either: her
        # head and the shoes she stands on (what the skin rules cut off is left
        # to that cut, which often regains a sleeve's or a hem's edge there)
        model.off = not_garment > 0
        return model

    def matte(self, bgr_small: np.ndarray, person_small: np.ndarray, part: str = "full") -> np.ndarray:
        """Per-frame soft matte of the garment (or one `part` of it) at the work size of `bgr_small`."""
        h, w = bgr_small.shape[:2]
        if part == "none":
            return np.zeros((h, w), np.float32)
        lab = cv2.cvtColor(bgr_small, cv2.COLOR_BGR2Lab)
        prob = self._lut.ravel()[_bin_index(lab)] / 255.0
        prob = cv2.GaussianBlur(prob, (5, 5), 0)
        prior = self.part_prior(part)
        prior = prior if prior.shape == (h, w) else cv2.resize(prior, (w, h))
        person = person_small if person_small.shape == (h, w) else cv2.resize(person_small, (w, h))
        # The spatial prior carries the shape; colour vetoes what has moved in
        # front (a hand) or out of it.
        m = prior * person * (0.3 + 0.7 * np.clip((prob - 0.2) * 2.5, 0.0, 1.0))
        return np.clip((m - 0.25) * 2.0, 0.0, 1.0)


# Which part of her clothing to recolour (the catalogue says it per product):
# upper = the top, or a dress as a whole; lower = trousers or a skirt;
# dress = the top together with whatever continues it in its colour below the
# waist; full = all her clothing; none = nothing (shoes, make-up).
PARTS = ("upper", "lower", "dress", "full", "none")

# Tuned on tests/data/unseen/garments/tune (see its PROVENANCE.md).
WAIST_FRAC = 0.12        # waistband above the hip joints, as a share of shoulder-to-hip length
SAME_COLOUR_DE = 12.0    # Lab distance under which top and bottom count as one colour,
SAME_HUE = 0.7           # ... with their a/b apart by under this share of the stronger chroma
HUE_FLOOR = 6.0          # ... (at least of this chroma: two greys differ in a/b by noise)
SHADE_RATIO = 0.65       # lightness ratio down to which one cloth may be half in shade
SAME_CLOTH_OVERLAP = 0.7  # histogram overlap over which two regions are one (printed) cloth
CLOTH_BINS = [6, 8, 8]     # coarse Lab bins for that overlap
DRESS_GAP_FILL = 0.55    # garment share of the gap between the knees that makes it a skirt
KNEES_DOWN = 0.4        # ... looked at only with her knees this far below the waist line on average (torso lengths)


class PartError(ValueError):
    pass


def check_part(part: str) -> str:
    if part not in PARTS:
        raise PartError(f"unknown garment part {part!r}; use one of {', '.join(PARTS)}")
    return part


@dataclass
class Parts:
    masks: dict[str, np.ndarray]     # upper, lower, dress: uint8 {0,1} at work size
    kind: str                        # separates | dress | one_colour | top_only | no_pose


def _lab_ref(px: np.ndarray) -> np.ndarray:
    """Median of 8-bit OpenCV Lab pixels in CIE units (L 0..100, a/b signed)."""
    m = np.median(px.astype(np.float32), axis=0)
    return np.array([m[0] * 100 / 255, m[1] - 128, m[2] - 128], np.float32)


def split_parts(img: np.ndarray, lab: np.ndarray, seg: np.ndarray, pose: np.ndarray | None,
                layout: Layout | None, not_cloth: np.ndarray | None = None) -> Parts:
    """Split the garment (`seg`, work size) into upper and lower by pose and colour.

    The waistband lies a little above the hip joints; sleeves follow the arms.
    When the top and the bottom differ in colour (sampled on the chest and the
    thighs), GrabCut restricted to the garment finds the hem between them; when
    they do not, it is a dress if the garment fills the gap between the knees,
    otherwise a one-colour outfit split at the waist line. `not_cloth` (bool,
    work size: her skin, hair) and her shoes are never taken as those samples."""
    h, w = seg.shape
    seg = seg.astype(np.uint8)
    empty = np.zeros_like(seg)
    if pose is None or layout is None:
        return Parts({"upper": seg, "lower": empty, "dress": seg}, "no_pose")
    ls, rs = pose[11, :2], pose[12, :2]
    sw = float(np.linalg.norm(ls - rs))
    mid_s = (ls + rs) / 2
    hips_seen = _vis(pose, 23, 0.3) and _vis(pose, 24, 0.3) and max(pose[23, 1], pose[24, 1]) < h * 1.02
    if not hips_seen:
        # only her top half in view: all of it is the top
        return Parts({"upper": seg, "lower": empty, "dress": seg}, "top_only")
    lh, rh = pose[23, :2], pose[24, :2]
    mid_h = (lh + rh) / 2
    axis = mid_h - mid_s
    torso_len = float(np.linalg.norm(axis))
    if torso_len < 4:
        return Parts({"upper": seg, "lower": empty, "dress": seg}, "no_pose")
    if mid_h[1] > h - 0.25 * torso_len or abs(axis[0]) > 0.5 * axis[1]:
        # hips at the bottom edge (a waist-up photo), or a torso leaning over
        # 27 degrees (pose guessing hips it cannot see): no trousers to find
        return Parts({"upper": seg, "lower": empty, "dress": seg}, "top_only")
    axis = axis / torso_len
    hip_xs = (int(min(lh[0], rh[0])), int(max(lh[0], rh[0])))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    waist = mid_h - axis * WAIST_FRAC * torso_len
    # signed distance below the waist line, in torso lengths
    below = _below(xs, ys, waist, axis, torso_len)
    straight = below
    below = _along_legs(below, pose, waist, axis, torso_len, xs, ys)

    arms = np.zeros((h, w), np.uint8)
    thick = max(2, round(0.22 * sw))
    for s_i, e_i, w_i in ((11, 13, 15), (12, 14, 16)):
        if _vis(pose, e_i, 0.3):
            pts = [pose[s_i, :2], pose[e_i, :2]]
            if _vis(pose, w_i, 0.3):
                pts.append(pose[e_i, :2] + 0.7 * (pose[w_i, :2] - pose[e_i, :2]))
            cv2.polylines(arms, [np.round(np.array(pts)).astype(np.int32)], False, 1, thick)
    # her forearms resting on raised knees: there the cloth is her legs'
    arms[below > straight] = 0
    chest = _torso_core(layout, (h, w)) & (below < -0.15)
    thighs = np.zeros((h, w), np.uint8)
    knees = []
    for hip, knee in ((23, 25), (24, 26)):
        if _vis(pose, knee, 0.3):
            a = pose[hip, :2] + 0.3 * (pose[knee, :2] - pose[hip, :2])
            b = pose[hip, :2] + 0.85 * (pose[knee, :2] - pose[hip, :2])
            cv2.line(thighs, tuple(np.round(a).astype(int)), tuple(np.round(b).astype(int)), 1,
                     max(2, round(0.12 * sw)))
            knees.append(pose[knee, :2])
    g = seg > 0
    upper_torso = _upper_torso(layout, (h, w)) & g
    # a trouser band rising into the torso core across a bare midriff is no sample of the top
    chest = _joined_to(chest & g, upper_torso)
    up_seed = (chest | ((arms > 0) & (below < 0.4))) & g
    lo_seed = (thighs > 0) & g & (below > 0.25)
    not_cloth = np.zeros((h, w), bool) if not_cloth is None else np.asarray(not_cloth, bool)
    # her forearms on her lap, her hair over her chest (the cut may keep
    # them) are no samples of the top's or the bottom's colour
    up_seed &= ~not_cloth
    lo_seed &= ~not_cloth
    if (over := _top_over_thighs(lab, g, up_seed, lo_seed)) is not None:
        lo_seed &= ~over

    under = chest & up_seed       # her top's sample without the sleeves (an open jacket's)
    geometric_upper = g & ((below < 0) | (arms > 0))
    kind = "separates"
    # the torso's upper half is surely the top, wherever the waist is
    pieces = _pieces_apart(g, upper_torso, lo_seed)
    middle = np.abs((xs - mid_h[0]) * -axis[1] + (ys - mid_h[1]) * axis[0]) < 0.3 * sw   # down her body's axis
    if pieces is not None:
        # skin all the way across between them (a crop top, a bare midriff):
        # two garments, whatever their colours
        upper = pieces
    elif (gap := _midriff_gap(g, below, middle)) is not None and not _same_cloth(lab, *gap):
        # a bare midriff across her body, though something beside her (an arm,
        # hair, the wall the person mask took) joins top and bottom, or pose
        # gave no sample of the bottom (of one colour above and below, it is
        # more likely bare forearms across a top)
        above, under = gap
        up_gap = (up_seed | above) & ~not_cloth
        upper = _grabcut_split(img, g, up_gap, (lo_seed | under) & ~not_cloth, below)
        # the top is what hangs together with its seeds (not a raised shoe of its colour)
        upper = _joined_to(upper, up_gap)
    elif up_seed.sum() < 15:
        upper = geometric_upper
        kind = "one_colour"
    elif lo_seed.sum() < 15:
        # bare legs (shorts, a short skirt) or legs out of view: the hem is
        # where the top's colour stops, if anything of her is well below the waist
        feet = np.zeros((h, w), np.uint8)
        _mark_shoes(feet, np.zeros_like(feet), pose)
        # ... not her shoes: a black shoe is no sample of grey shorts
        low = g & (below > 0.6) & ~up_seed & (feet == 0) & ~not_cloth
        if low.sum() < 15:
            return Parts({"upper": seg, "lower": empty, "dress": seg}, "top_only")
        if not _same_cloth(lab, up_seed, low):
            upper = _grabcut_split(img, g, up_seed, low, below)
        elif _covers_knees(g, pose) and _gap_fill(g, mid_h, [pose[25, :2], pose[26, :2]]) >= DRESS_GAP_FILL:
            # her knees hidden under the top's own cloth: a long dress
            upper, kind = g, "dress"
        else:
            upper, kind = _one_colour_top(lab, g, below, arms, hip_xs), "one_colour"
    else:
        # a knee pose cannot see is often under the skirt itself: it is still
        # where pose puts it, and the gap between the knees is tested
        pair = [pose[25, :2], pose[26, :2]] if knees else []
        # (knees raised to her hips, sitting, leave her lap between them: no skirt's test;
        # one knee a little raised, legs crossed on a stool, is no lap: on average)
        lowered = bool(pair) and np.mean([_below(*k, waist, axis, torso_len) for k in pair]) >= KNEES_DOWN
        filled = lowered and (_gap_fill(g, mid_h, pair) >= DRESS_GAP_FILL or _short_skirt(g, mid_h, pair))
        # legs of another colour under a flare are tights or boots under a skirt
        skirt = filled and ((_legwear(lab, g, pose, lo_seed) is not None and _flares_over_shins(g, pose))
                            or not _trouser_legs(g, pose, mid_h))
        if not _same_cloth(lab, up_seed, lo_seed) and not (
                skirt and under.sum() >= 15 and _same_cloth(lab, under, lo_seed)):
            upper = _grabcut_split(img, g, up_seed, lo_seed, below)
        elif skirt:
            # one cloth from her chest to below her knees: a dress (under an
            # open jacket or cardigan, whose sleeves are another colour)
            upper, kind = g, "dress"
        else:
            # over the gap between her knees, a long coat or a dress may hang lower than a jacket
            upper = _one_colour_top(lab, g, below, arms, hip_xs, HEM_MAX_LONG if filled else HEM_MAX)
            kind = "one_colour"
    if kind == "dress" and (legs := _legwear(lab, g, pose, under | lo_seed)) is not None:
        # the dress ends where its colours give way to her tights' or boots'
        # (sampled without the sleeves: an open jacket may be the tights'
        # colour); down to her crotch it is all dress, or what is over it
        upper = _grabcut_split(img, g, under | lo_seed, legs & ~under & ~lo_seed, below)
        upper |= g & (below < LEGS_BELOW)
    upper = upper & g
    lower = g & ~upper
    if kind == "dress":
        # a dress is an upper garment as a whole; she wears no trousers or
        # skirt (tights or boots under it are in no part, only in `full`)
        lower = np.zeros_like(g)
        dress = upper
    elif kind == "one_colour":
        dress = g if len(knees) < 2 else upper
    else:
        dress = upper | (lower & _like(lab, upper, lower))
    return Parts({"upper": upper.astype(np.uint8), "lower": lower.astype(np.uint8),
                  "dress": dress.astype(np.uint8)}, kind)


LEG_FROM = 0.3   # share of the thigh from the hip after which her leg, not the waist line, says how far down she is
HIP_FLANK = 0.5  # her torso reaches past each hip joint by this share of the distance between them


def _below(x, y, waist: np.ndarray, axis: np.ndarray, torso_len: float):
    """How far (x, y) lies below the waist line along her body's `axis`, in
    torso lengths: pixel grids or one point."""
    return ((x - waist[0]) * axis[0] + (y - waist[1]) * axis[1]) / torso_len


def _seg_dist(xs: np.ndarray, ys: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of each pixel from segment a-b, and where along it (0..1) it lies."""
    d = b - a
    t = np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / max(1e-6, float(d @ d)), 0.0, 1.0)
    return np.hypot(xs - (a[0] + t * d[0]), ys - (a[1] + t * d[1])), t


def _along_legs(below: np.ndarray, pose: np.ndarray, waist: np.ndarray, axis: np.ndarray,
                torso_len: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """`below` (torso lengths under the waist line) where her legs go: a
    sitting woman's raised thighs are as far down her body as a standing
    one's, though the waist line's straight measure puts them at or above
    her waist. For a knee under KNEES_DOWN, pixels off her torso and nearer
    that thigh (past LEG_FROM of it) or shin than her torso's axis take their
    distance along the leg, if that is further. (A standing or walking leg
    keeps the straight measure the split's rules were made on.)"""
    raised = [leg for leg in ((23, 25, 27), (24, 26, 28)) if _vis(pose, leg[1], 0.3)
              and _below(*pose[leg[1], :2], waist, axis, torso_len) < KNEES_DOWN]
    if not raised:
        return below
    lh, rh = pose[23, :2], pose[24, :2]
    flank = HIP_FLANK * (lh - rh)
    torso = np.zeros(below.shape, np.uint8)
    cv2.fillConvexPoly(torso, np.round(np.array([pose[11, :2], pose[12, :2], rh - flank, lh + flank])).astype(np.int32), 1)
    off = torso == 0
    torso_d, _ = _seg_dist(xs, ys, (pose[11, :2] + pose[12, :2]) / 2, (lh + rh) / 2)
    out = below
    for hip, knee, ankle in raised:
        h_pt, k_pt = pose[hip, :2], pose[knee, :2]
        thigh = float(np.linalg.norm(k_pt - h_pt))
        d, t = _seg_dist(xs, ys, h_pt, k_pt)
        along = (WAIST_FRAC * torso_len + t * thigh) / torso_len
        out = np.where(off & (d < torso_d) & (t >= LEG_FROM), np.maximum(out, along), out)
        if _vis(pose, ankle, 0.3):
            a_pt = pose[ankle, :2]
            d2, t2 = _seg_dist(xs, ys, k_pt, a_pt)
            along2 = (WAIST_FRAC * torso_len + thigh + t2 * float(np.linalg.norm(a_pt - k_pt))) / torso_len
            out = np.where(off & (d2 < torso_d) & (d2 < d), np.maximum(out, along2), out)
    return out


GAP_BARE = 0.1     # garment share of a row across her middle that makes it bare skin
GAP_CLOTH = 0.6    # ... and that makes it clothed
GAP_ROW = 0.03     # a row's height, in torso lengths below the waist line
GAP_ROWS = (-0.8, 0.3)   # the rows looked at: from her chest to her upper thighs
GAP_LOWEST = 0.1   # a bare row lies above this (her hips): lower, bare skin is her thighs
GAP_REACH = 8      # rows looked at above and below a bare one, and the seeds' height
GAP_MIN_PX = 5     # pixels a row needs to count at all


def _midriff_gap(g: np.ndarray, below: np.ndarray, strip: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A bare midriff: rows across her middle (along the waist line, within
    `strip`, a band down her body's axis) with no garment, above her hips and
    between clothed rows. Returns the garment in the strip just above the
    bare rows and just under them, or None."""
    edges = np.arange(GAP_ROWS[0], GAP_ROWS[1] + GAP_ROW / 2, GAP_ROW)
    n = len(edges) - 1
    row = np.digitize(below, edges) - 1
    row[~strip | (row >= n)] = -1
    area = np.bincount(row[row >= 0], minlength=n)
    cloth = np.bincount(row[(row >= 0) & g], minlength=n)
    cover = np.where(area >= GAP_MIN_PX, cloth / np.maximum(area, 1), np.nan)
    clothed = cover > GAP_CLOTH
    for i in np.nonzero((cover < GAP_BARE) & (edges[:-1] < GAP_LOWEST))[0]:
        lo_i = max(0, i - GAP_REACH)
        up = np.nonzero(clothed[lo_i:i])[0]
        down = np.nonzero(clothed[i + 1:i + 1 + GAP_REACH])[0]
        if len(up) == 0 or len(down) == 0:
            continue
        top, bottom = lo_i + up[-1], i + 1 + down[0]
        above = g & (row <= top) & (row > max(-1, top - GAP_REACH))
        under = g & (row >= bottom) & (row < bottom + GAP_REACH)
        if above.sum() >= 15 and under.sum() >= 15:
            return above, under
    return None


OVER_THIGHS_REST = 0.3   # share of the thighs' sample that must remain once the top's cloth is taken off it


def _top_over_thighs(lab: np.ndarray, g: np.ndarray, up_seed: np.ndarray, lo_seed: np.ndarray) -> np.ndarray | None:
    """The part of the thighs' sample that is the top's cloth hanging down from
    her chest (a long coat or cardigan, sleeves on her lap), when the rest of
    that sample is another colour: it is no sample of the bottom."""
    if up_seed.sum() < 15 or lo_seed.sum() < 15:
        return None
    like = _like(lab, up_seed, lo_seed) & g
    if not (like & up_seed).any():
        return None
    over = _joined_to(like, up_seed) & lo_seed
    rest = lo_seed & ~over
    if not over.any() or rest.sum() < max(15, OVER_THIGHS_REST * lo_seed.sum()) or _same_cloth(lab, up_seed, rest):
        return None
    return over


def _joined_to(m: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """The pieces of `m` that touch `anchor` (all of `m` if none does)."""
    n, labels = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
    if n <= 2:
        return m
    ids = set(np.unique(labels[anchor & m])) - {0}
    return np.isin(labels, list(ids)) if ids else m


HEM_MAX = 0.6      # lowest jacket hem, in torso lengths below the waist line
HEM_MAX_LONG = 1.5  # ... of a long coat or a dress over legs of its colour (the gap between her knees filled)
HEM_EDGE = 1.8     # a hem's edge is this many times the outfit's usual shading edges
HEM_MIN_EDGE = 6.0  # ... and at least this strong (Sobel of L, 0..255): not flat cloth's noise
HEM_ACROSS = 0.7   # share of her front's columns the hem's edge must cross


def _one_colour_top(lab: np.ndarray, g: np.ndarray, below: np.ndarray, arms: np.ndarray,
                    hip_xs: tuple[int, int], hem_max: float = HEM_MAX) -> np.ndarray:
    """The top of a one-colour outfit: down to the waist line, or to a jacket's
    hem (which lies lower than a tucked-in top's waistband), and the sleeves.
    With no jacket's hem, a longer one is looked for down to `hem_max`."""
    return g & ((below < _hem_level(lab, g, below, hip_xs, hem_max)) | (arms > 0))


def _hem_level(lab: np.ndarray, g: np.ndarray, below: np.ndarray, xs: tuple[int, int],
               hem_max: float = HEM_MAX) -> float:
    """Where a one-colour top ends, in torso lengths below the waist line: a
    jacket's hem is a line of strong up-down shading change across her front,
    well above what the cloth's folds make; without one, the waist line (0).
    A jacket's hem is looked for down to HEM_MAX; without one, a longer hem
    below that, down to `hem_max`. The shading profile is measured once."""
    L = cv2.GaussianBlur(lab[..., 0], (3, 3), 0).astype(np.float32)
    edge = np.abs(cv2.Sobel(L, cv2.CV_32F, 0, 1, ksize=3))
    front = cv2.erode(g.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0     # not her outline
    cols = np.zeros_like(front)
    cols[:, max(0, xs[0]):max(0, xs[1] + 1)] = True
    front &= cols
    steps = np.arange(-0.2, max(hem_max, HEM_MAX) + 0.1, 0.02)
    prof = np.full(len(steps), np.nan)
    for i, b in enumerate(steps):
        band = front & (below >= b - 0.02) & (below < b + 0.02)
        if band.sum() >= 10:
            prof[i] = edge[band].mean()

    def search(start: float, stop: float) -> float:
        # (the outfit's usual shading: the median over the rows down to 0.1
        # past `stop`, so the long search's baseline takes in her legs too)
        seen = prof[:len(np.arange(-0.2, stop + 0.1, 0.02))]
        look = (steps[:len(seen)] >= start) & (steps[:len(seen)] <= stop) & ~np.isnan(seen)
        if not look.any():
            return 0.0
        i = int(np.flatnonzero(look)[np.argmax(seen[look])])
        if seen[i] < max(HEM_EDGE * np.nanmedian(seen), HEM_MIN_EDGE):
            return 0.0
        # a hem runs right across her; a leg's or an arm's edge crosses only part of it
        band = front & (below >= steps[i] - 0.03) & (below < steps[i] + 0.03)
        strong = np.where(band, edge, 0.0).max(axis=0) >= HEM_MIN_EDGE
        present = band.any(axis=0)
        # ... and the trousers go on below it (a shorts' hem over a bare thigh is not a jacket's)
        under = front & (below >= steps[i] + 0.08) & (below < steps[i] + 0.14)
        goes_on = under.any(axis=0)[present].mean()
        if strong[present].mean() < HEM_ACROSS or goes_on < HEM_ACROSS:
            return 0.0
        if start >= HEM_MAX:
            # below a jacket's length, a hem is a coat's or a dress's over her
            # legs: wider than they are (a crease across trousers is not)
            rows_hem = (g & (below >= steps[i] - 0.1) & (below < steps[i] - 0.02)).any(1)
            rows_legs = (g & (below >= steps[i] + 0.04) & (below < steps[i] + 0.12)).any(1)
            if _cover(g & (below < steps[i]), rows_hem) < FLARE * _cover(g & (below > steps[i]), rows_legs):
                return 0.0
        return float(steps[i])

    level = search(0.05, HEM_MAX)
    if level == 0.0 and hem_max > HEM_MAX:
        level = search(HEM_MAX, hem_max)
    return level


def _same_cloth(lab: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Regions `a` and `b` (bool masks) look like one cloth: near in median
    colour (in hue too, for a coloured cloth), or one of them in shade,
    or, for a print whose median moves with the pattern, made of the same
    colours (Bhattacharyya overlap of their coarse Lab histograms)."""
    ra, rb = _lab_ref(lab[a]), _lab_ref(lab[b])
    d = ra - rb
    # one cloth lit differently on her chest and her thighs changes in
    # lightness, and its a/b shrink or grow together; a navy top over charcoal
    # shorts is as near in Lab, but one has a hue and the other none
    chroma = max(float(np.hypot(*ra[1:])), float(np.hypot(*rb[1:])), HUE_FLOOR)
    if float(np.linalg.norm(d)) < SAME_COLOUR_DE and float(np.linalg.norm(d[1:])) < SAME_HUE * chroma:
        return True
    if _in_shade(ra, rb):
        return True
    def overlap(channels, bins, ranges):
        ha = cv2.calcHist([lab], channels, a.astype(np.uint8), bins, ranges)
        hb = cv2.calcHist([lab], channels, b.astype(np.uint8), bins, ranges)
        return float(np.sum(np.sqrt(ha / max(1.0, ha.sum()) * hb / max(1.0, hb.sum()))))
    # coarse bins see a print's shared colours; their 32-wide chroma bins would
    # also merge two near plain colours (a white blouse, a beige skirt), which
    # the finer chroma check keeps apart
    return (overlap([0, 1, 2], CLOTH_BINS, HIST_RANGES) >= SAME_CLOTH_OVERLAP
            and overlap([1, 2], [32, 32], [0, 256, 0, 256]) >= SAME_CLOTH_OVERLAP)


def _in_shade(ra: np.ndarray, rb: np.ndarray) -> bool:
    """Two median colours (CIE Lab) could be one cloth, one half in shade:
    shade scales lightness and chroma together, so the darker one brought up
    to the lighter one's lightness has its a/b. Shade darkens by a lightness
    ratio of SHADE_RATIO at most: black beside charcoal, or dark jeans beside
    a chambray shirt, stay two colours."""
    dark, light = (ra, rb) if ra[0] < rb[0] else (rb, ra)
    k = float(light[0] / max(dark[0], 1e-3))
    if k * SHADE_RATIO > 1.0:
        return False
    d = light[1:] - dark[1:] * k
    chroma = max(float(np.hypot(*light[1:])), HUE_FLOOR)
    return float(np.linalg.norm(d)) < min(SAME_COLOUR_DE, SAME_HUE * chroma)


def _covers_knees(g: np.ndarray, pose: np.ndarray) -> bool:
    """The garment reaches down past where pose puts her knees (seen or
    guessed), inside the picture: a long skirt or dress over them."""
    knee_y = float((pose[25, 1] + pose[26, 1]) / 2)
    return 0 <= knee_y < g.shape[0] and bool(g[int(knee_y):].any())


def _span(g: np.ndarray, y: float, half: int = 2) -> float:
    """Width of the garment across rows y-half..y+half (its extent, gaps included)."""
    y0, y1 = max(0, int(y) - half), min(g.shape[0], int(y) + half + 1)
    cols = np.flatnonzero(g[y0:y1].any(0)) if y1 > y0 else np.array([])
    return float(cols[-1] - cols[0] + 1) if cols.size else 0.0


LEGWEAR_COVER = 0.6   # share of her shins' middle the cut must cover for tights or boots (not bits of bare skin)


def _shins(g: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """The garment on her shins (the middle of knee to ankle, both legs), or
    nothing unless it covers LEGWEAR_COVER of them."""
    m = np.zeros(g.shape, np.uint8)
    sw = float(np.linalg.norm(pose[11, :2] - pose[12, :2]))
    for knee, ankle in ((25, 27), (26, 28)):
        if _vis(pose, knee, 0.3) and _vis(pose, ankle, 0.3):
            a, b = pose[knee, :2], pose[ankle, :2]
            p0, p1 = a + 0.3 * (b - a), a + 0.8 * (b - a)
            cv2.line(m, tuple(np.round(p0).astype(int)), tuple(np.round(p1).astype(int)), 1,
                     max(2, round(0.08 * sw)))
    on = (m > 0) & g
    return on if on.sum() >= LEGWEAR_COVER * max(1, int(m.sum())) else np.zeros_like(on)


FLARE = 1.25   # a skirt or a coat over her legs covers this many times the width her legs do below it


def _cover(g: np.ndarray, rows: np.ndarray) -> float:
    """Garment pixels per row over `rows` (bool, one per image row)."""
    n = int(rows.sum())
    return float(g[rows].sum() / n) if n else 0.0


def _flares_over_shins(g: np.ndarray, pose: np.ndarray) -> bool:
    """Her thighs' garment is wider than her shins' (FLARE): a skirt or a coat
    over tights or boots, not trousers tucked into boots."""
    ys = np.arange(g.shape[0])
    hip, knee, ankle = ((pose[a, 1] + pose[b, 1]) / 2 for a, b in ((23, 24), (25, 26), (27, 28)))
    thigh, shin = hip + 0.6 * (knee - hip), knee + 0.5 * (ankle - knee)
    band = max(2.0, 0.05 * float(ankle - hip))
    return _cover(g, np.abs(ys - thigh) <= band) >= FLARE * _cover(g, np.abs(ys - shin) <= band)


def _legwear(lab: np.ndarray, g: np.ndarray, pose: np.ndarray, cloth: np.ndarray) -> np.ndarray | None:
    """Her shins in another colour than `cloth` (a dress's sample): tights or
    boots under it, which are not the dress. None when her shins are bare, out
    of view or of the dress's own cloth."""
    shins = _shins(g, pose)
    if shins.sum() < 15 or cloth.sum() < 15 or _same_cloth(lab, cloth, shins):
        return None
    return shins


def _trouser_legs(g: np.ndarray, pose: np.ndarray, mid_h: np.ndarray) -> bool:
    """One colour from the waist down with the legs together looks like a dress
    between the knees. Trousers go on down to her shoes as two legs no wider
    together than her hips would suggest; a dress ends above the ankles (her
    shins show) or, long, stays as wide as at her hips. (Legs of another
    colour than her thighs are tights or boots under a skirt: `_legwear`.)"""
    if not (_vis(pose, 27) and _vis(pose, 28)):
        return False
    ankle_y = float((pose[27, 1] + pose[28, 1]) / 2)
    knee_y = float((pose[25, 1] + pose[26, 1]) / 2)
    low = ankle_y - 0.15 * (ankle_y - knee_y)
    hips = _span(g, mid_h[1])
    if hips < 4 or low >= g.shape[0]:
        return False
    return _span(g, low) >= 0.3 * hips and _span(g, low) < 0.8 * hips


def _pieces_apart(g: np.ndarray, up_seed: np.ndarray, lo_seed: np.ndarray) -> np.ndarray | None:
    """The garment pieces holding the top's seeds, when none of them also holds
    the bottom's: she wears two garments with nothing of either between."""
    if up_seed.sum() < 15 or lo_seed.sum() < 15:
        return None
    _, labels = cv2.connectedComponents(g.astype(np.uint8), connectivity=8)
    up, lo = set(np.unique(labels[up_seed])) - {0}, set(np.unique(labels[lo_seed])) - {0}
    if not up or up & lo:
        return None
    return np.isin(labels, list(up))


def _limb_ends(pose: np.ndarray, w: int, h: int) -> np.ndarray:
    """Forearms and shins (elbow to past the wrist, knee to ankle): where bare skin is common."""
    m = np.zeros((h, w), np.uint8)
    sw = float(np.linalg.norm(pose[11, :2] - pose[12, :2]))
    for a, b in ((13, 15), (14, 16), (25, 27), (26, 28)):
        if _vis(pose, a, 0.3) and _vis(pose, b, 0.3):
            p, q = pose[a, :2], pose[b, :2]
            cv2.line(m, tuple(np.round(p).astype(int)), tuple(np.round(q + 0.2 * (q - p)).astype(int)), 1,
                     max(2, round(0.3 * sw)))
    return m


BARE_DE = 22.0     # a forearm or shin this far (Lab) from her top (or her thighs) is bare skin
SKIN_DE = 14.0     # limb pixels this near that skin's colour are skin too


def _bare_limbs(lab: np.ndarray, inside: np.ndarray, pose: np.ndarray, top: np.ndarray,
                bottom: np.ndarray) -> np.ndarray | None:
    """Bare arms and legs, found by their own colour: a forearm whose colour is
    far from her top's (sampled in `top`), or a shin far from her bottom's
    (`bottom`), is skin, whatever the light (the face's colour misses arms in
    sunlight); then the pixels along that whole limb coloured like it are skin
    too. None when nothing was found."""
    if top.sum() < 30 or bottom.sum() < 30:
        return None
    h, w = inside.shape
    sw = float(np.linalg.norm(pose[11, :2] - pose[12, :2]))
    refs = np.median(lab[top].astype(np.float32), axis=0), np.median(lab[bottom].astype(np.float32), axis=0)
    out = np.zeros((h, w), bool)
    limbs = ((11, 13, 15), (12, 14, 16), (23, 25, 27), (24, 26, 28))
    for root, mid, end in limbs:
        if not (_vis(pose, mid) and _vis(pose, end)):
            continue
        garment = refs[root >= 23]
        a, b = pose[mid, :2], pose[end, :2]
        sample = np.zeros((h, w), np.uint8)
        p0, p1 = a + 0.35 * (b - a), a + 0.75 * (b - a)
        cv2.line(sample, tuple(np.round(p0).astype(int)), tuple(np.round(p1).astype(int)), 1,
                 max(1, round(0.08 * sw)))
        px = lab[(sample > 0) & inside].astype(np.float32)
        if len(px) < 15:
            continue
        ref = np.median(px, axis=0)
        if float(np.linalg.norm(ref - garment)) < BARE_DE:
            continue          # a sleeve, or trousers, of the torso's colour
        ycc = cv2.cvtColor(cv2.cvtColor(np.round(ref).astype(np.uint8)[None, None], cv2.COLOR_Lab2BGR),
                           cv2.COLOR_BGR2YCrCb)
        if not _skin_rule(ycc)[0, 0]:
            continue          # a sleeve of another colour (a two-tone jacket), gloves
        limb = np.zeros((h, w), np.uint8)
        pts = [pose[root, :2]] if _vis(pose, root, 0.3) else []
        pts += [a, b + 0.2 * (b - a)]
        cv2.polylines(limb, [np.round(np.array(pts)).astype(np.int32)], False, 1, max(2, round(0.3 * sw)))
        on = (limb > 0) & inside
        px = lab[on].astype(np.float32)
        d_skin = np.linalg.norm(px - ref, axis=-1)
        out[on] |= (d_skin < SKIN_DE) & (d_skin < np.linalg.norm(px - garment, axis=-1))
    return out if out.any() else None


def _gap_strip(shape: tuple[int, int], mid_h: np.ndarray, knees: list[np.ndarray]) -> np.ndarray:
    """A strip down the middle, from below the crotch to between the knees
    (the knee points sit mid-leg, so only the middle third of the span between
    them): bool mask of `shape`."""
    k1, k2 = knees
    kmid = (k1 + k2) / 2
    top = mid_h + 0.35 * (kmid - mid_h)
    half = max(1.0, 0.15 * float(np.linalg.norm(k1 - k2)))
    across = (k2 - k1) / max(1e-3, float(np.linalg.norm(k2 - k1))) * half
    strip = np.zeros(shape, np.uint8)
    pts = np.array([top - across, top + across, kmid + across, kmid - across])
    cv2.fillConvexPoly(strip, np.round(pts).astype(np.int32), 1)
    return strip > 0


def _gap_fill(g: np.ndarray, mid_h: np.ndarray, knees: list[np.ndarray]) -> float:
    """Garment share of the gap's strip: a skirt fills it, trouser legs leave it open."""
    strip = _gap_strip(g.shape, mid_h, knees)
    n = int(strip.sum())
    return float((g & strip).sum() / n) if n >= 10 else 0.0


MINI_ROWS = 0.15   # share of the gap's strip a short skirt must fill from its top, before it ends


def _short_skirt(g: np.ndarray, mid_h: np.ndarray, knees: list[np.ndarray]) -> bool:
    """A skirt ending above her knees: the gap's strip is filled from its top,
    row after row, for at least MINI_ROWS of its length, then empty down to
    the knees (bare legs, or the gap between them). Trouser legs or shorts
    leave its top open."""
    strip = _gap_strip(g.shape, mid_h, knees)
    ys = np.flatnonzero(strip.any(1))
    if len(ys) < 7:
        return False
    per_row = (g & strip)[ys].sum(1) / strip[ys].sum(1)
    short = per_row < DRESS_GAP_FILL
    run = int(np.argmax(short)) if short.any() else len(ys)
    return run >= MINI_ROWS * len(ys) and bool((per_row[run:] < GAP_BARE).all())


LEGS_BELOW = 0.5   # below the waist line by this much (torso lengths) is her legs


def _grabcut_split(img: np.ndarray, g: np.ndarray, up_seed: np.ndarray, lo_seed: np.ndarray,
                   below: np.ndarray) -> np.ndarray:
    """GrabCut inside the garment's box: upper (foreground) against lower."""
    ys, xs = np.nonzero(g)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    pad = 4
    y0, x0 = max(0, y0 - pad), max(0, x0 - pad)
    y1, x1 = min(g.shape[0], y1 + pad), min(g.shape[1], x1 + pad)
    gg, bb = g[y0:y1, x0:x1], below[y0:y1, x0:x1]
    gc = np.full(gg.shape, cv2.GC_BGD, np.uint8)
    gc[gg & (bb < 0)] = cv2.GC_PR_FGD
    gc[gg & (bb >= 0)] = cv2.GC_PR_BGD
    gc[lo_seed[y0:y1, x0:x1]] = cv2.GC_BGD
    gc[up_seed[y0:y1, x0:x1]] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.setRNGSeed(GRABCUT_SEED)
        cv2.grabCut(np.ascontiguousarray(img[y0:y1, x0:x1]), gc, None, bgd, fgd, 2, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return g & (below < 0)
    out = np.zeros_like(g)
    out[y0:y1, x0:x1] = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    # keep the pieces joined to the top (a speck on the trousers that shares its colour is not it)
    # ... and of those apart from it, none lying on her legs: tights or boots
    # of the top's colour below a skirt are not the top
    return _keep_big_parts(out.astype(np.uint8), up_seed, below > LEGS_BELOW) > 0


def _like(lab: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels coloured more like region `a` than region `b`."""
    ha = cv2.calcHist([lab], [0, 1, 2], a.astype(np.uint8), HIST_BINS, HIST_RANGES) / max(1, int(a.sum()))
    hb = cv2.calcHist([lab], [0, 1, 2], b.astype(np.uint8), HIST_BINS, HIST_RANGES) / max(1, int(b.sum()))
    idx = _bin_index(lab)
    return ha.ravel()[idx] > 1.5 * hb.ravel()[idx]


def _bin_index(lab: np.ndarray) -> np.ndarray:
    """Flat HIST_BINS index of each Lab pixel (cv2.calcBackProject mishandles 3-D histograms)."""
    l_bins, a_bins, b_bins = HIST_BINS
    lab16 = lab.astype(np.uint16)
    return ((lab16[..., 0] * l_bins >> 8) * (a_bins * b_bins)
            + (lab16[..., 1] * a_bins >> 8) * b_bins + (lab16[..., 2] * b_bins >> 8))


HAIR_GAP = 0.3   # gaps between hair-coloured strands bridged, as a share of the head's half-width


def _hair_like(lab: np.ndarray, candidates: np.ndarray,
               layout: Layout | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Pixels coloured like the hair sampled around the top of the head, and
    that sample (Lab, float32, for `_hair_tones`); (None, None) without a
    head to sample."""
    if layout is None:
        return None, None
    h, w = lab.shape[:2]
    ring = np.zeros((h, w), np.uint8)
    ax = (layout.head_axes[0] * 1.2, layout.head_axes[1] * 1.05)
    _ellipse(ring, layout.head_center, ax, 1)
    fc, fa = layout.face_core
    _ellipse(ring, fc, (fa[0] * 2.0, fa[1] * 2.2), 0)
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


def _hair_tones(sample: np.ndarray) -> np.ndarray | None:
    """The two colours (2x3 Lab) of hair sampled round her head, if it has
    two tones far apart (dyed ends, highlights, or lit and shaded); else None."""
    cv2.setRNGSeed(GRABCUT_SEED)     # k-means++'s start: same photo, same tones
    _, labels, centres = cv2.kmeans(sample, 2, None, (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5),
                                    3, cv2.KMEANS_PP_CENTERS)
    share = float(labels.mean())
    if np.linalg.norm(centres[0] - centres[1]) > HAIR_TONES and min(share, 1 - share) > HAIR_TONE_SHARE:
        return centres
    return None


def _by_tone(lab: np.ndarray, hair: np.ndarray, tones: np.ndarray) -> list[np.ndarray]:
    """`hair` split by which of the two `tones` each pixel is nearer."""
    labf = lab.astype(np.float32)
    nearer_first = np.linalg.norm(labf - tones[0], axis=-1) < np.linalg.norm(labf - tones[1], axis=-1)
    return [hair & nearer_first, hair & ~nearer_first]


def _upright(torso: np.ndarray) -> bool:
    """Her torso (`Layout.torso`: its top edge at her shoulders, its bottom
    edge at her hips, or straight below her shoulders when pose cannot see
    them) within UPRIGHT of vertical: her hair hangs down her back and over
    her shoulders, not across her chest as when she bends over."""
    up = torso[:2].mean(axis=0) - torso[2:].mean(axis=0)
    return bool(-up[1] > 0 and np.degrees(np.arctan2(abs(up[0]), -up[1])) < UPRIGHT)


HAIR_SURE = 2.0   # hair this many times nearer (Lab) her hair's median colour than her top's is surely hair


def _nearer(lab: np.ndarray, a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Pixels k times nearer (Lab distance) region `a`'s median colour than region `b`'s."""
    if not a.any() or not b.any():
        return np.zeros(lab.shape[:2], bool)
    labf = lab.astype(np.float32)
    ra, rb = np.median(labf[a], axis=0), np.median(labf[b], axis=0)
    return k * np.linalg.norm(labf - ra, axis=-1) < np.linalg.norm(labf - rb, axis=-1)


HAIR_SHOULDER = 0.2   # hair above her chin is taken out only this far (share of her shoulders) above them


def _hair_above_chin(hair: np.ndarray, layout: Layout, pose: np.ndarray) -> np.ndarray:
    """Hair-coloured pixels joined to her head (`hair`, from `_hair_like`)
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


def _sleeves_like(hair: np.ndarray, inside: np.ndarray, pose: np.ndarray | None) -> bool:
    """Whether either elbow is hair-coloured: hair falls to her shoulders and
    back, rarely round an elbow, so there that colour is a jacket's sleeves (a
    black coat worn open over a red top, on a dark-haired woman). One is
    enough: light from one side puts the other sleeve in another shade."""
    if pose is None:
        return False
    h, w = hair.shape
    sw = float(np.linalg.norm(pose[11, :2] - pose[12, :2]))
    for i in (13, 14):
        if _vis(pose, i):
            ring = np.zeros((h, w), np.uint8)
            cv2.circle(ring, (round(float(pose[i, 0])), round(float(pose[i, 1]))), max(1, round(0.12 * sw)), 1, -1)
            at = (ring > 0) & inside
            if at.sum() >= 10 and (hair & at).sum() >= SLEEVE_HAIR * at.sum():
                return True
    return False


HAND_POINTS = range(15, 23)   # pose's wrists, pinkies, index fingers and thumbs
HAND_PIECE = 0.15             # a piece holding only those, this share of her size or less, is her forearm


def _her_pieces(inside: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """The pieces of the person mask that hold one of her pose points: someone
    else in the photo (further back on a runway, a friend beside her) is not
    part of her outfit."""
    h, w = inside.shape
    near = np.zeros((h, w), np.uint8)
    hands = np.zeros((h, w), np.uint8)
    r = max(2, round(0.03 * w))       # a wrist point just off a forearm's edge still counts
    for i, (x, y) in enumerate(pose[:, :2]):
        if pose[i, 2] >= 0.5:
            cv2.circle(hands if i in HAND_POINTS else near, (round(float(x)), round(float(y))), r, 1, -1)
    mine = _joined_to(inside, near > 0)
    # a piece that holds only her hand is her forearm split off at the elbow,
    # if small; a big one is a table she leans on or someone she holds by the
    # hand, and of it only her hand counts
    _, labels, stats, _ = cv2.connectedComponentsWithStats((inside & ~mine).astype(np.uint8), connectivity=8)
    held = np.unique(labels[hands > 0])
    small = [j for j in held[held > 0] if stats[j, cv2.CC_STAT_AREA] <= HAND_PIECE * max(1, int(mine.sum()))]
    return mine | np.isin(labels, small) | (inside & (hands > 0))


def _keep_big_parts(seg: np.ndarray, seeds: np.ndarray, unlikely: np.ndarray | None = None) -> np.ndarray:
    """Drop specks: keep connected parts that touch a seed or are large, and
    of the unseeded ones not those lying mostly in `unlikely` (a raised shoe
    on its own, past a bare shin)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(seg, connectivity=8)
    if n <= 2:
        return seg
    keep = np.zeros(n, bool)
    seeded = np.unique(labels[seeds & (seg > 0)])
    biggest = stats[1:, cv2.CC_STAT_AREA].max()
    keep[1:] |= stats[1:, cv2.CC_STAT_AREA] > 0.15 * biggest
    if unlikely is not None:
        inside_unlikely = np.bincount(labels[unlikely], minlength=n)
        keep &= inside_unlikely < 0.5 * stats[:, cv2.CC_STAT_AREA]
    keep[seeded] = True
    keep[0] = False
    return keep[labels].astype(np.uint8)


OUTLINE_SCALE = 1.5   # a photo's outline is cut again at this multiple of the work size (at most full size)
OUTLINE_BAND = 0.02   # ... within this share of that width either side of the first cut


def refine_outline(bgr: np.ndarray, seg: np.ndarray, off: np.ndarray | None = None) -> np.ndarray:
    """The garment `seg` (work size, {0,1}) cut again along its outline at a
    higher resolution: uint8 {0,1} at OUTLINE_SCALE x the work size. The work
    size cut places the outline to a few photo pixels, and a band GrabCut on
    the sharper image snaps it to the cloth's edge. `off` (work size, bool):
    pixels the second cut may not take (her head, the shoes she stands on).
    Photos only: it costs more than a kiosk frame has."""
    h, w = bgr.shape[:2]
    tw = min(w, round(seg.shape[1] * OUTLINE_SCALE))
    th = max(1, round(h * tw / w))
    up = cv2.resize(seg.astype(np.float32), (tw, th), interpolation=cv2.INTER_LINEAR) >= 0.5
    if up.sum() < 50:
        return up.astype(np.uint8)
    k = max(2, round(OUTLINE_BAND * tw))
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    outer = cv2.dilate(up.astype(np.uint8), ker) > 0
    gc = np.full((th, tw), cv2.GC_BGD, np.uint8)
    gc[outer] = cv2.GC_PR_BGD
    gc[up] = cv2.GC_PR_FGD
    gc[cv2.erode(up.astype(np.uint8), ker) > 0] = cv2.GC_FGD
    if off is not None:
        gc[cv2.resize(off.astype(np.uint8), (tw, th), interpolation=cv2.INTER_NEAREST) > 0] = cv2.GC_BGD
    ys, xs = np.nonzero(outer)
    y0, y1, x0, x1 = max(0, ys.min() - 2), ys.max() + 3, max(0, xs.min() - 2), xs.max() + 3
    img = cv2.resize(bgr, (tw, th), interpolation=cv2.INTER_AREA) if tw != w else bgr
    box = gc[y0:y1, x0:x1].copy()
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.setRNGSeed(GRABCUT_SEED)
        cv2.grabCut(np.ascontiguousarray(img[y0:y1, x0:x1]), box, None, bgd, fgd, 2, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return up.astype(np.uint8)
    out = np.zeros((th, tw), np.uint8)
    out[y0:y1, x0:x1] = (box == cv2.GC_FGD) | (box == cv2.GC_PR_FGD)
    return out


def part_of_outline(fine: np.ndarray, seg: np.ndarray, part: np.ndarray) -> np.ndarray:
    """`part` (work size) carried onto the refined outline `fine`: each of its
    pixels takes the part of the nearest pixel the first cut gave to any part,
    so the split between top and bottom stays where it was and every pixel
    goes to exactly one part."""
    size = (fine.shape[1], fine.shape[0])
    mine = cv2.resize(part.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    first = cv2.resize(seg.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    if not mine.any():
        return np.zeros_like(fine)
    if not (first & ~mine).any():
        return fine
    # DIST_LABEL_PIXEL numbers the zero pixels of its input 1, 2, ... in raster order
    _, nearest = cv2.distanceTransformWithLabels((~first).astype(np.uint8), cv2.DIST_L2, 3,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    owner = np.concatenate([[False], mine[first]])
    return ((fine > 0) & owner[nearest]).astype(np.uint8)


def refine_to(mask: np.ndarray, bgr: np.ndarray, feather_px: int = 4, scale: float = 0.0) -> np.ndarray:
    """Bring a soft mask to `bgr`'s size with edges that follow the image.

    The guided filter runs at 1/`scale` of full size (about 2x the mask's own
    resolution is plenty) and is then upsampled; `scale` 0 picks it from the
    mask's size.
    """
    h, w = bgr.shape[:2]
    if not scale:
        scale = max(1.0, w / mask.shape[1] / 2)
    gw, gh = max(2, round(w / scale)), max(2, round(h / scale))
    src = cv2.resize(mask.astype(np.float32), (gw, gh), interpolation=cv2.INTER_LINEAR)
    guide = cv2.cvtColor(shrink(bgr, (gw, gh)), cv2.COLOR_BGR2GRAY)
    try:
        src = cv2.ximgproc.guidedFilter(guide.astype(np.float32) / 255.0, src, 3, 1e-3)
    except AttributeError:  # opencv without contrib
        src = cv2.GaussianBlur(src, (0, 0), 1.5)
    if feather_px > 0:
        src = cv2.GaussianBlur(src, (0, 0), max(0.5, feather_px / scale / 2))
    up = cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(up, 0.0, 1.0)


PHOTO_VIEWS = ((1.0, False), (1.0, True), (0.8, False))   # (scale, mirrored): the views a photo is cut in


class PhotoSegmenter:
    """The careful path for single photos (`mirror segment`, `mirror recolor`)."""

    def __init__(self):
        self.person = PersonSegmenter(width=256)
        self.pose = PoseEstimator(static=True, body_mask=True)
        self.faces = FaceFinder()
        self.hands = HandTracker(static=True, model="full", max_hands=2, width=None)
        self.last_model: GarmentModel | None = None

    def garment(self, bgr: np.ndarray, feather_px: int = 3, part: str = "full") -> np.ndarray:
        """Soft garment matte, float32 [0,1], same size as `bgr` (zeros if no person);
        `part` picks one part of her clothing (see PARTS)."""
        return self.garments(bgr, feather_px, (part,))[part]

    def garments(self, bgr: np.ndarray, feather_px: int = 3,
                 parts: tuple[str, ...] = ("upper", "lower", "full")) -> dict[str, np.ndarray]:
        """`garment` for several parts at once, from one cut of each view.

        The careful cut is knife-edged on some photos: the same photo
        mirrored, or a little smaller, can read a dress as a top and a skirt,
        or join a crop top to trousers across her midriff. So the photo is cut
        in each of PHOTO_VIEWS, and a pixel is garment where most views say
        so: the per-pixel median of the views' mattes, which keeps their soft
        edges. `last_model` is the photo's own (unmirrored, full-size) view."""
        for part in parts:
            check_part(part)
        h, w = bgr.shape[:2]
        if all(part == "none" for part in parts):
            return {part: np.zeros((h, w), np.float32) for part in parts}
        votes: dict[str, list[np.ndarray]] = {part: [] for part in parts}
        own = None
        for i, (scale, mirrored) in enumerate(PHOTO_VIEWS):
            view = bgr[:, ::-1] if mirrored else bgr
            if scale != 1.0:
                view = cv2.resize(view, (max(1, round(w * scale)), max(1, round(h * scale))),
                                  interpolation=cv2.INTER_AREA)
            mattes = self._one_view(np.ascontiguousarray(view), feather_px, parts)
            if i == 0:
                own = self.last_model
            for part, m in mattes.items():
                if scale != 1.0:
                    m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
                votes[part].append(m[:, ::-1] if mirrored else m)
        self.last_model = own
        return {part: np.median(np.stack(v), axis=0).astype(np.float32) for part, v in votes.items()}

    def _one_view(self, bgr: np.ndarray, feather_px: int, parts: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The careful path on one view. A person who fills only part of the
        photo (further from the camera) would get few pixels in the models
        and in GrabCut, so it runs on a crop around her and the mattes are
        pasted back."""
        h, w = bgr.shape[:2]
        person = self.person.process(bgr)
        box = self._person_box(bgr, person)
        if box is not None:
            x0, y0, x1, y1 = box
            if (x1 - x0) * (y1 - y0) < 0.6 * w * h:
                crop = bgr[y0:y1, x0:x1]
                out = {}
                for part, m in self._garment(crop, feather_px, self.person.process(crop, halves=True), parts).items():
                    out[part] = np.zeros((h, w), np.float32)
                    out[part][y0:y1, x0:x1] = m
                return out
        return self._garment(bgr, feather_px, self.person.add_halves(bgr, person), parts)

    def _person_box(self, bgr: np.ndarray, person: np.ndarray) -> tuple[int, int, int, int] | None:
        """Her box (x0, y0, x1, y1) with a margin, in pixels of `bgr`, or None."""
        h, w = bgr.shape[:2]
        box = person_box(person, (w, h), 0.15)
        if box is not None:
            return box
        # Too small for the selfie model at 256 px; the face detector
        # still finds her face, and a body is about four faces wide.
        face = self.faces.process(bgr)
        if face is None:
            return None
        fx, fy, fw, fh = face
        return box_with_margin(fx - 1.8 * fw, fy - 0.6 * fh, 4.6 * fw, 9.0 * fh, 0.15, (w, h))

    def _garment(self, bgr: np.ndarray, feather_px: int, person: np.ndarray,
                 parts: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The careful path on `bgr`; `person`: its person mask, with halves."""
        h, w = bgr.shape[:2]
        pose, body = self.pose.landmarks_and_body(bgr)
        her, maybe = with_body(person, body)
        face = self.faces.process(bgr, pose)
        model = GarmentModel.build(bgr, her, pose, iterations=4, face_box=face, maybe=maybe)
        self.last_model = model
        if model is None:
            return {part: np.zeros((h, w), np.float32) for part in parts}
        person_full = np.clip(cv2.resize(np.maximum(her, person), (w, h), interpolation=cv2.INTER_LINEAR) * 1.5, 0, 1)
        on_face = None
        if face is not None:
            # The edge refinement can spill a few pixels into the eyes next
            # to a sleeve; the face is never garment.
            keep_out = np.zeros((h, w), np.uint8)
            _ellipse(keep_out, *face_ellipse(face), 1)
            on_face = keep_out > 0
        hands = self.hands.process(bgr)
        # her hands, on her hips or over her top, are never garment
        not_hands = 1.0 - hand_mask(hands, (h, w), forearm=PHOTO_FOREARM) if hands else None
        fine = None
        out = {}
        for part in parts:
            if part == "none":
                out[part] = np.zeros((h, w), np.float32)
                continue
            if part == "full" or model.part_mask(part).any():
                fine = refine_outline(bgr, model.seg, model.off) if fine is None else fine
                mask = fine if part == "full" else part_of_outline(fine, model.seg, model.part_mask(part))
            else:
                mask = model.part_mask(part)        # nothing of that part (a dress has no lower)
            matte = refine_to(mask, bgr, feather_px) * person_full
            if on_face is not None:
                matte[on_face] = 0.0
            if not_hands is not None:
                matte *= not_hands
            out[part] = matte
        return out
